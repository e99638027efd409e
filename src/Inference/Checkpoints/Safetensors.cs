using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Checkpoints;

public enum SafetensorsDType { F32, F16, BF16 }

/// <summary>One tensor's entry in a safetensors header: where its bytes are and what they hold.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End, string File)
{
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// The safetensors format: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets}}
/// (plus "__metadata__"), then the raw little-endian data. Tensors are read into fp32 once at load.
/// </summary>
public static class Safetensors
{
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>Header entries of one file, by name.</summary>
    public static Dictionary<string, SafetensorsEntry> ReadHeader(string path)
    {
        using var f = File.OpenRead(path);
        Span<byte> len = stackalloc byte[8];
        if (f.Read(len) != 8) throw new InvalidDataException($"{path}: too short to be a safetensors file.");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(len);
        if (n == 0 || n > 100_000_000 || (long)n > f.Length - 8)
            throw new InvalidDataException($"{path}: not a safetensors file (header length {n}, file length {f.Length}).");
        var json = new byte[n];
        f.ReadExactly(json);
        JsonObject header;
        try { header = JsonNode.Parse(json) as JsonObject ?? throw new InvalidDataException("header is not an object"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: safetensors header is not valid JSON ({e.Message})."); }

        long dataStart = 8 + (long)n, dataLength = f.Length - dataStart;
        var entries = new Dictionary<string, SafetensorsEntry>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__") continue;
            try
            {
                string dtype = node!["dtype"]!.GetValue<string>();
                long[] shape = node["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
                var offs = node["data_offsets"]!.AsArray();
                long begin = offs[0]!.GetValue<long>(), end = offs[1]!.GetValue<long>();
                long expected = shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype, name, path);
                if (begin < 0 || end < begin || end > dataLength || end - begin != expected)
                    throw new InvalidDataException($"data_offsets [{begin}, {end}] do not fit shape [{string.Join(", ", shape)}] of {dtype} in a data section of {dataLength} bytes");
                entries[name] = new SafetensorsEntry(name, dtype, shape, dataStart + begin, dataStart + end, path);
            }
            catch (Exception e) when (e is not InvalidDataException || !e.Message.StartsWith(path))
            {
                throw new InvalidDataException($"{path}: bad header entry for tensor '{name}': {e.Message}", e);
            }
        }
        return entries;
    }

    /// <summary>
    /// All tensor entries of a model directory: model.safetensors, or the shards named by
    /// model.safetensors.index.json.
    /// </summary>
    public static Dictionary<string, SafetensorsEntry> ReadDirectory(string dir)
    {
        string single = Path.Combine(dir, SingleFile), index = Path.Combine(dir, IndexFile);
        if (File.Exists(index))
        {
            var map = JsonNode.Parse(File.ReadAllText(index))?["weight_map"] as JsonObject
                      ?? throw new InvalidDataException($"{index}: no \"weight_map\" object.");
            var all = new Dictionary<string, SafetensorsEntry>();
            foreach (var shard in map.Select(kv => kv.Value!.GetValue<string>()).Distinct())
            {
                string shardPath = Path.Combine(dir, shard);
                if (!File.Exists(shardPath)) throw new FileNotFoundException($"{index} names shard '{shard}', which is missing.", shardPath);
                foreach (var (name, e) in ReadHeader(shardPath)) all[name] = e;
            }
            foreach (var (name, _) in map)
                if (!all.ContainsKey(name)) throw new InvalidDataException($"{index} maps tensor '{name}' to a shard that does not contain it.");
            return all;
        }
        if (File.Exists(single)) return ReadHeader(single);
        throw new FileNotFoundException($"No {SingleFile} or {IndexFile} in '{dir}': expected a Hugging Face model directory.", single);
    }

    /// <summary>Reads one tensor as fp32 on the CPU (F16/BF16/F64 converted here, once).</summary>
    public static Tensor ReadTensor(SafetensorsEntry e)
    {
        var stored = empty(e.Shape, dtype: ScalarTypeOf(e.DType, e.Name, e.File));
        using (var f = File.OpenRead(e.File))
        {
            f.Seek(e.Begin, SeekOrigin.Begin);
            // The tensor's native memory, filled in place (no managed copy of large weights).
            var dst = stored.bytes;
            if (dst.Length != e.End - e.Begin)
                throw new InvalidDataException($"{e.File}: tensor '{e.Name}' holds {e.End - e.Begin} bytes, shape {e.ShapeText} {e.DType} needs {dst.Length}.");
            f.ReadExactly(dst);
        }
        if (stored.dtype == ScalarType.Float32) return stored;
        using (stored) return stored.to_type(ScalarType.Float32);
    }

    /// <summary>Reads every tensor of a file or model directory as fp32.</summary>
    public static Dictionary<string, Tensor> Load(string fileOrDir)
    {
        var entries = Directory.Exists(fileOrDir) ? ReadDirectory(fileOrDir) : ReadHeader(fileOrDir);
        return entries.ToDictionary(kv => kv.Key, kv => ReadTensor(kv.Value));
    }

    /// <summary>Writes tensors to one safetensors file, converted to <paramref name="dtype"/> (names sorted, as HF does).</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, SafetensorsDType dtype = SafetensorsDType.F32)
    {
        var target = dtype switch { SafetensorsDType.F16 => ScalarType.Float16, SafetensorsDType.BF16 => ScalarType.BFloat16, _ => ScalarType.Float32 };
        var items = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, t) in items)
        {
            long size = t.numel() * (dtype == SafetensorsDType.F32 ? 4 : 2);
            header[name] = new JsonObject
            {
                ["dtype"] = dtype.ToString(),
                ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8; // data starts 8-aligned; pad the header with spaces
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var f = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
        f.Write(len);
        f.Write(json);
        for (int i = json.Length; i < padded; i++) f.WriteByte((byte)' ');
        foreach (var (_, t) in items)
        {
            using var c = t.detach().to(CPU).to_type(target).contiguous();
            f.Write(c.bytes);
        }
    }

    private static int ElementSize(string dtype, string name, string file) => dtype switch
    {
        "F64" or "I64" => 8,
        "F32" or "I32" => 4,
        "F16" or "BF16" or "I16" => 2,
        "I8" or "U8" or "BOOL" => 1,
        _ => throw new InvalidDataException($"{file}: tensor '{name}' has dtype {dtype}, which is not supported."),
    };

    private static ScalarType ScalarTypeOf(string dtype, string name, string file) => dtype switch
    {
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "F64" => ScalarType.Float64,
        _ => throw new InvalidDataException($"{file}: tensor '{name}' has dtype {dtype}; only F32, F16, BF16 and F64 weights can be loaded."),
    };
}
