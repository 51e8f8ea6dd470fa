using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace SecureFed.Federation.Internal;

/// <summary>Writes and reads PEM files holding secrets, wiping every intermediate buffer.</summary>
internal static class SecretPem
{
    public static void WritePrivateKey(string path, ECDsa key)
    {
        byte[] der = key.ExportPkcs8PrivateKey();
        char[]? pem = null;
        byte[]? bytes = null;
        try
        {
            pem = PemEncoding.Write("PRIVATE KEY", der);
            bytes = new byte[pem.Length + 1];
            int n = Encoding.ASCII.GetBytes(pem, bytes);
            bytes[n] = (byte)'\n';
            AtomicFile.WriteAllBytes(path, bytes, AtomicFile.SecretFileMode);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
            if (pem is not null)
            {
                CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(pem.AsSpan()));
            }

            if (bytes is not null)
            {
                CryptographicOperations.ZeroMemory(bytes);
            }
        }
    }

    /// <summary>Reads a PEM file (a key or a certificate, at most 64 KiB, a regular file) into a char array the caller must wipe.</summary>
    /// <exception cref="IOException">The file cannot be read, or it is not a regular file.</exception>
    /// <exception cref="InvalidDataException">The file is larger than 64 KiB.</exception>
    public static char[] ReadChars(string path)
    {
        byte[] bytes = RegularFile.ReadAllBytes(path, RegularFile.KeyFileLimit, "PEM file");
        try
        {
            char[] chars = new char[Encoding.UTF8.GetCharCount(bytes)];
            Encoding.UTF8.GetChars(bytes, chars);
            return chars;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    public static void Wipe(char[] chars) => CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(chars.AsSpan()));
}
