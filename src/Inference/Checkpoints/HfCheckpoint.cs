using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Checkpoints;

/// <summary>
/// Weights of a Hugging Face model directory, checked name by name and shape by shape.
/// (TorchSharp's load_state_dict broadcasts, so a wrong but broadcastable shape would slip through it.)
/// </summary>
public static class HfCheckpoint
{
    /// <summary>Tensors HF checkpoints may carry that no module needs (old RoPE buffers).</summary>
    private static bool Ignorable(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    /// <summary>
    /// Reads exactly the tensors named in <paramref name="expected"/> (name -> shape) as fp32 CPU tensors.
    /// Missing, unexpected or mis-shaped tensors throw, naming the tensor, the shapes and the file.
    /// <paramref name="optional"/> names may be present in the file without being expected (e.g. lm_head.weight
    /// of a tied model), and are then skipped.
    /// </summary>
    public static Dictionary<string, Tensor> Load(string dir, IReadOnlyDictionary<string, long[]> expected, ISet<string>? optional = null)
    {
        var entries = Safetensors.ReadDirectory(dir);
        Check(dir, entries, expected, optional);
        var result = new Dictionary<string, Tensor>();
        try
        {
            foreach (var name in expected.Keys) result[name] = Safetensors.ReadTensor(entries[name]);
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    public static void Check(string dir, IReadOnlyDictionary<string, SafetensorsEntry> entries,
        IReadOnlyDictionary<string, long[]> expected, ISet<string>? optional = null)
    {
        var problems = new List<string>();
        foreach (var (name, shape) in expected)
        {
            if (!entries.TryGetValue(name, out var e))
                problems.Add($"missing tensor '{name}' (expected shape [{string.Join(", ", shape)}])");
            else if (!e.Shape.SequenceEqual(shape))
                problems.Add($"tensor '{name}' in {Path.GetFileName(e.File)} has shape {e.ShapeText}, expected [{string.Join(", ", shape)}]");
        }
        foreach (var (name, e) in entries)
            if (!expected.ContainsKey(name) && !Ignorable(name) && optional?.Contains(name) != true)
                problems.Add($"unexpected tensor '{name}' {e.ShapeText} in {Path.GetFileName(e.File)}");
        if (problems.Count > 0)
            throw new InvalidDataException(
                $"Checkpoint '{dir}' does not match its config.json: " + string.Join("; ", problems.Take(10)) +
                (problems.Count > 10 ? $"; and {problems.Count - 10} more" : "") +
                ". Check that config.json belongs to these weights.");
    }

    /// <summary>Copies the checkpoint in <paramref name="dir"/> into <paramref name="module"/>'s parameters (HF names).</summary>
    public static void LoadInto(nn.Module module, string dir)
    {
        var state = module.state_dict();
        var expected = state.ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var optional = state.ContainsKey("lm_head.weight") ? null : new HashSet<string> { "lm_head.weight" };
        var loaded = Load(dir, expected, optional);
        using var _ = no_grad();
        foreach (var (name, t) in loaded)
        {
            using (t) state[name].copy_(t);
        }
    }

    /// <summary>Writes <paramref name="module"/>'s state as model.safetensors in <paramref name="dir"/>.</summary>
    public static void Save(nn.Module module, string dir, SafetensorsDType dtype = SafetensorsDType.F32)
    {
        Directory.CreateDirectory(dir);
        Safetensors.Save(Path.Combine(dir, Safetensors.SingleFile), module.state_dict(), dtype);
    }
}
