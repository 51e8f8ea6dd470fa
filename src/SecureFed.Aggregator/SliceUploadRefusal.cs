using Grpc.Core;

namespace SecureFed.Aggregator;

/// <summary>Why a slice upload (protocol version 4) is refused: the gRPC status, a one-word category, and the reason.</summary>
/// <param name="Code">The status the caller gets.</param>
/// <param name="Category">The low-cardinality label (malformed_upload, oversized_chunk, digest_mismatch, …).</param>
/// <param name="Reason">The full reason, naming what is wrong.</param>
public sealed record SliceUploadRefusal(StatusCode Code, string Category, string Reason);
