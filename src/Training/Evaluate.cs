namespace ProxyOrleans.Training;

public static class Evaluate
{
    public static int Run(Dictionary<string, string> args) => throw new NotImplementedException();
}
