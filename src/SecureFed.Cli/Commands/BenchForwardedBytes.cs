using System.Globalization;
using System.Text.RegularExpressions;

namespace SecureFed.Cli.Commands;

/// <summary>
/// The bytes a cluster silo's front forwarded to the coordinator, or the coordinator received from the fronts, as the
/// process itself reports them on its output, for <c>bench cluster --front grpc</c>: a front's running totals from the
/// Debug line <c>CoordinatorForwarder</c> writes after every forwarded call (gRPC message bytes: protobuf plus the 5-byte
/// prefix, requests sent on and answers passed back; the largest totals seen, as concurrent calls may log out of order),
/// and the coordinator's total from the line it writes before it stops (<see cref="ServiceCommands.ForwardedBytesLine"/>).
/// </summary>
internal sealed partial class BenchForwardedBytes
{
    private readonly BenchChildProcess _process;
    private long _requestBytes;
    private long _responseBytes;
    private long _fromFronts = -1;

    /// <summary>Listens to <paramref name="process"/>'s lines from now on.</summary>
    public BenchForwardedBytes(BenchChildProcess process)
    {
        _process = process;
        process.LineWritten += OnLine;
    }

    /// <summary>Request bytes this silo's front forwarded to the coordinator (0 when it forwarded nothing).</summary>
    public long RequestBytes => Interlocked.Read(ref _requestBytes);

    /// <summary>Response bytes from the coordinator this silo's front passed back to agents.</summary>
    public long ResponseBytes => Interlocked.Read(ref _responseBytes);

    /// <summary>The coordinator's count of the request bytes the fronts forwarded to it.</summary>
    /// <exception cref="InvalidOperationException">The process never wrote the line (it is not the coordinator, or did not stop normally).</exception>
    public long FromFronts
    {
        get
        {
            long bytes = Interlocked.Read(ref _fromFronts);
            return bytes >= 0 ? bytes : throw new InvalidOperationException(
                $"the {_process.Name} never wrote how many bytes the fronts forwarded to it ('{ServiceCommands.ForwardedBytesLine}…'):\n  {_process.Tail}");
        }
    }

    private void OnLine(string line)
    {
        Match totals = Totals().Match(line);
        if (totals.Success)
        {
            Max(ref _requestBytes, long.Parse(totals.Groups[1].Value, CultureInfo.InvariantCulture));
            Max(ref _responseBytes, long.Parse(totals.Groups[2].Value, CultureInfo.InvariantCulture));
            return;
        }

        int at = line.IndexOf(ServiceCommands.ForwardedBytesLine, StringComparison.Ordinal);
        if (at >= 0)
        {
            string rest = line[(at + ServiceCommands.ForwardedBytesLine.Length)..];
            int end = rest.IndexOf(' ', StringComparison.Ordinal);
            Interlocked.Exchange(ref _fromFronts, long.Parse(end < 0 ? rest : rest[..end], CultureInfo.InvariantCulture));
        }
    }

    private static void Max(ref long field, long value)
    {
        long seen = Interlocked.Read(ref field);
        while (value > seen)
        {
            long before = Interlocked.CompareExchange(ref field, value, seen);
            if (before == seen)
            {
                return;
            }

            seen = before;
        }
    }

    [GeneratedRegex(@"this silo's totals: \d+ calls, forwarded request bytes (\d+), returned response bytes (\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex Totals();
}
