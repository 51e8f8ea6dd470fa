using Grpc.Core;

namespace SecureFed.Aggregator;

/// <summary>
/// Carries a refusal that <see cref="CheckedRequestBinder"/> makes before a request is parsed (a request over its size
/// limit, an entry shorter than its value, bytes that are not the message) out to <see cref="BulkCallGate"/>'s middleware,
/// which knows the caller and audits it within the caller's share of refusal lines, as it does its own refusals. The
/// marshaller sees only the bytes, not the caller; the middleware runs around the whole call in the same asynchronous
/// flow, so a slot it opens (<see cref="Begin"/>) is the one the marshaller fills (<see cref="Refuse"/>). Before (session
/// 55) such refusals were answered and logged by gRPC only: an auditor saw nothing of a site that sent them.
/// </summary>
internal static class PreParseRefusal
{
    private static readonly AsyncLocal<Slot?> Current = new();

    /// <summary>Opens the slot for the call about to run in this asynchronous flow; read it once the call has ended.</summary>
    public static Slot Begin()
    {
        var slot = new Slot();
        Current.Value = slot;
        return slot;
    }

    /// <summary>
    /// The exception that refuses the request with <paramref name="code"/> and <paramref name="message"/>, recorded in the
    /// call's slot (the first refusal only; none outside a call the middleware opened, e.g. in-process tests of the binder).
    /// </summary>
    public static RpcException Refuse(StatusCode code, string category, string message)
    {
        Current.Value?.Record(code, category, message);
        return new RpcException(new Status(code, message));
    }

    /// <summary>One call's refusal before parsing, if any.</summary>
    internal sealed class Slot
    {
        private readonly Lock _gate = new();

        public StatusCode Code { get; private set; }

        public string? Category { get; private set; }

        public string? Message { get; private set; }

        public void Record(StatusCode code, string category, string message)
        {
            lock (_gate)
            {
                if (Message is null)
                {
                    (Code, Category, Message) = (code, category, message);
                }
            }
        }
    }
}
