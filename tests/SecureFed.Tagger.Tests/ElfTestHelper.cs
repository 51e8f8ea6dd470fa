using System.Buffers.Binary;
using System.Text;

namespace SecureFed.Tagger.Tests;

/// <summary>Independent re-implementation of the Verneed walk, to check the build task's output.</summary>
internal static class ElfTestHelper
{
    public static ushort? VernauxFlags(byte[] elf, string name)
    {
        ReadOnlySpan<byte> b = elf;
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(b[0x28..]);
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(b[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(b[0x3C..]);
        for (int i = 0; i < shnum; i++)
        {
            int sh = (int)shoff + (i * shentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(b[(sh + 4)..]) != 0x6ffffffe)
            {
                continue;
            }

            int off = (int)BinaryPrimitives.ReadUInt64LittleEndian(b[(sh + 0x18)..]);
            int link = (int)BinaryPrimitives.ReadUInt32LittleEndian(b[(sh + 0x28)..]);
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(b[(sh + 0x2C)..]);
            int strOff = (int)BinaryPrimitives.ReadUInt64LittleEndian(b[((int)shoff + (link * shentsize) + 0x18)..]);
            int vn = off;
            for (int n = 0; n < count; n++)
            {
                int cnt = BinaryPrimitives.ReadUInt16LittleEndian(b[(vn + 2)..]);
                int vna = vn + (int)BinaryPrimitives.ReadUInt32LittleEndian(b[(vn + 8)..]);
                for (int a = 0; a < cnt; a++)
                {
                    int nameOff = strOff + (int)BinaryPrimitives.ReadUInt32LittleEndian(b[(vna + 8)..]);
                    int end = b[nameOff..].IndexOf((byte)0);
                    if (Encoding.ASCII.GetString(b.Slice(nameOff, end)) == name)
                    {
                        return BinaryPrimitives.ReadUInt16LittleEndian(b[(vna + 4)..]);
                    }

                    vna += (int)BinaryPrimitives.ReadUInt32LittleEndian(b[(vna + 12)..]);
                }

                vn += (int)BinaryPrimitives.ReadUInt32LittleEndian(b[(vn + 12)..]);
            }
        }

        return null;
    }

    public static bool HostLibstdcxxHas(string version)
    {
        byte[] needle = Encoding.ASCII.GetBytes(version + "\0");
        foreach (string p in new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" })
        {
            if (File.Exists(p) && File.ReadAllBytes(p).AsSpan().IndexOf(needle) >= 0)
            {
                return true;
            }
        }

        return false;
    }

    public static string? FindNuGetCacheCopy()
    {
        string root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        return File.Exists(path) ? path : null;
    }
}
