namespace ProxyOrleans.Abstractions;

/// <summary>Base of the errors the cluster reports on purpose; the message says what is wrong and what to do.</summary>
[GenerateSerializer]
public class ProxyOrleansException : Exception
{
    public ProxyOrleansException() { }
    public ProxyOrleansException(string message) : base(message) { }
    public ProxyOrleansException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>No active silo hosts the model (not transient: retrying will not help until one is started).</summary>
[GenerateSerializer]
public sealed class ModelNotHostedException : ProxyOrleansException
{
    [Id(0)] public string Model { get; init; } = "";
    public ModelNotHostedException() { }
    public ModelNotHostedException(string model, IEnumerable<string> hosted)
        : base($"Model '{model}' is not hosted by any active silo. Hosted models: [{string.Join(", ", hosted)}]. " +
               $"Start a silo with ProxyOrleans:Models:0:Name={model} (and :Path=<model dir>), or pick a hosted model.")
        => Model = model;
}

/// <summary>The model's KV-cache memory budget is full; retry later or raise ProxyOrleans:KvBudgetMB.</summary>
[GenerateSerializer]
public sealed class CapacityExceededException : ProxyOrleansException
{
    public CapacityExceededException() { }
    public CapacityExceededException(string message) : base(message) { }
}

/// <summary>The session is not open on this activation (its silo restarted or it idled out): re-open it.</summary>
[GenerateSerializer]
public sealed class SessionNotFoundException : ProxyOrleansException
{
    public SessionNotFoundException() { }
    public SessionNotFoundException(string message) : base(message) { }
}

/// <summary>
/// A model's forward failed for one session: that session was closed and its KV memory freed; other sessions (other
/// tenants in the same batch included) are unaffected. Not retried: the same step would fail the same way.
/// </summary>
[GenerateSerializer]
public sealed class ModelFaultException : ProxyOrleansException
{
    public ModelFaultException() { }
    public ModelFaultException(string message) : base(message) { }
}

/// <summary>The coordinator's silo is draining: start the generation again (a new coordinator is placed elsewhere).</summary>
[GenerateSerializer]
public sealed class CoordinatorDrainingException : ProxyOrleansException
{
    public CoordinatorDrainingException() { }
    public CoordinatorDrainingException(string message) : base(message) { }
}

/// <summary>The request is malformed (names the field and the problem).</summary>
[GenerateSerializer]
public sealed class InvalidRequestException : ProxyOrleansException
{
    [Id(0)] public string Field { get; init; } = "";
    public InvalidRequestException() { }
    public InvalidRequestException(string field, string message) : base(message) => Field = field;
}

/// <summary>A tenant tried to act on another tenant's request.</summary>
[GenerateSerializer]
public sealed class AccessDeniedException : ProxyOrleansException
{
    public AccessDeniedException() { }
    public AccessDeniedException(string message) : base(message) { }
}
