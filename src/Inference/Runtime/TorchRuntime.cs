using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace ProxyOrleans.Inference.Runtime;

/// <summary>
/// Makes TorchSharp's native library loadable before the first torch call.
/// TorchSharp 0.107's libLibTorchSharp.so asks for GLIBCXX_3.4.32 (GCC 13) for one symbol that no relocation
/// uses; Debian 12's libstdc++ stops at 3.4.30, so the load fails there. Where (and only where) the shipped
/// library does not load, a copy is written with that version requirement marked weak and loaded instead;
/// TorchSharp's own lookup then finds the library already loaded.
/// </summary>
public static class TorchRuntime
{
    private const string LibraryName = "libLibTorchSharp.so";
    private const string MissingVersion = "GLIBCXX_3.4.32";
    private static readonly object Gate = new();
    private static bool ensured;

    /// <summary>How the native library was loaded: "as-shipped", "patched:&lt;path&gt;", or "not-linux".</summary>
    public static string LoadMode { get; private set; } = "not-loaded";

    // Intentional in a library: every app and test that uses Inference gets the fix before its first torch call.
#pragma warning disable CA2255
    [ModuleInitializer]
    internal static void LoadOnAssemblyStart() => EnsureLoaded();
#pragma warning restore CA2255

    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (ensured) return;
            ensured = true;
            if (!OperatingSystem.IsLinux()) { LoadMode = "not-linux"; return; }
            string? original = FindShippedLibrary();
            if (original is null) { LoadMode = "not-found"; return; } // TorchSharp will report its own error.
            if (NativeLibrary.TryLoad(original, out _)) { LoadMode = "as-shipped"; return; }

            string patched = WritePatchedCopy(original);
            NativeLibrary.Load(patched);
            LoadMode = "patched:" + patched;
        }
    }

    private static string? FindShippedLibrary()
    {
        string baseDir = AppContext.BaseDirectory;
        foreach (var candidate in new[]
                 {
                     Path.Combine(baseDir, LibraryName),
                     Path.Combine(baseDir, "runtimes", "linux-x64", "native", LibraryName),
                 })
            if (File.Exists(candidate)) return candidate;
        return null;
    }

    /// <summary>The copy sits beside the original so that its $ORIGIN run-path still finds libtorch.</summary>
    private static string WritePatchedCopy(string original)
    {
        byte[] image = File.ReadAllBytes(original);
        if (!MarkVersionNeedWeak(image, MissingVersion))
            throw new InvalidOperationException(
                $"{original} failed to load and does not need {MissingVersion}; the fix for Debian 12 does not apply. " +
                "Check that libtorch's dependencies are present (ldd) or use a base image with a newer libstdc++.");

        string dir = Path.GetDirectoryName(original)!;
        string target = Path.Combine(dir, "libLibTorchSharp.weak-glibcxx.so");
        if (!IsWritable(dir))
        {
            // Read-only install: preload libtorch from its own folder so the copy's dependencies resolve by soname.
            NativeLibrary.Load(Path.Combine(dir, "libtorch.so"));
            dir = Path.Combine(Path.GetTempPath(), "proxyorleans-native");
            Directory.CreateDirectory(dir);
            target = Path.Combine(dir, "libLibTorchSharp.weak-glibcxx.so");
        }
        if (!File.Exists(target) || !File.ReadAllBytes(target).AsSpan().SequenceEqual(image))
        {
            string temp = target + "." + Environment.ProcessId + ".tmp";
            File.WriteAllBytes(temp, image);
            File.Move(temp, target, overwrite: true); // atomic: concurrent test processes never see half a file
        }
        return target;
    }

    private static bool IsWritable(string dir)
    {
        try
        {
            string probe = Path.Combine(dir, ".write-probe-" + Environment.ProcessId);
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return true;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException) { return false; }
    }

    /// <summary>Sets VER_FLG_WEAK on the Vernaux entry naming <paramref name="version"/> in .gnu.version_r.</summary>
    internal static bool MarkVersionNeedWeak(byte[] elf, string version)
    {
        var span = elf.AsSpan();
        if (span.Length < 64 || span[0] != 0x7F || span[1] != (byte)'E' || span[4] != 2 || span[5] != 1)
            throw new InvalidDataException("Not a little-endian ELF64 file.");
        long sectionHeaders = (long)BinaryPrimitives.ReadUInt64LittleEndian(span[0x28..]);
        int headerSize = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3A..]);
        int sectionCount = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3C..]);
        const uint ShtGnuVerneed = 0x6ffffffe;
        const ushort VerFlgWeak = 0x2;


        for (int i = 0; i < sectionCount; i++)
        {
            var header = elf.AsSpan((int)(sectionHeaders + (long)i * headerSize), headerSize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header[4..]) != ShtGnuVerneed) continue;
            long offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(header[24..]);
            int stringsIndex = (int)BinaryPrimitives.ReadUInt32LittleEndian(header[40..]);
            int needCount = (int)BinaryPrimitives.ReadUInt32LittleEndian(header[44..]);
            long strings = (long)BinaryPrimitives.ReadUInt64LittleEndian(elf.AsSpan((int)(sectionHeaders + (long)stringsIndex * headerSize) + 24));

            long need = offset;
            for (int n = 0; n < needCount; n++)
            {
                int auxCount = BinaryPrimitives.ReadUInt16LittleEndian(span[(int)(need + 2)..]);
                long aux = need + BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(need + 8)..]);
                for (int a = 0; a < auxCount; a++)
                {
                    long name = strings + BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(aux + 8)..]);
                    int end = span[(int)name..].IndexOf((byte)0);
                    if (Encoding.ASCII.GetString(span.Slice((int)name, end)) == version)
                    {
                        var flags = span.Slice((int)(aux + 4), 2);
                        BinaryPrimitives.WriteUInt16LittleEndian(flags, (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(flags) | VerFlgWeak));
                        return true;
                    }
                    aux += BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(aux + 12)..]);
                }
                need += BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(need + 12)..]);
            }
        }
        return false;
    }
}
