using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Federation;
using SecureFed.Wire.V1;

namespace SecureFed.Cluster.Front;

/// <summary>
/// The gRPC service of a silo that is not the coordinator (docs/cluster.md §6, protocol version 4): only
/// <c>UploadMaskedInput</c>, and only for a slice this silo hosts. Every other RPC answers Unimplemented (the base
/// class). The caller is identified by its mTLS certificate as the coordinator does; the round, session, cohort, stage
/// and slice are checked by the round grain (<see cref="SliceAdmission"/>); at most one slice per upload is buffered,
/// checked against its SHA-256 and handed to the local slice grain, and the round grain records the slice and its digest.
/// Every refusal is a gRPC status with the reason, and is logged (the audit log is the coordinator's).
/// </summary>
[BindServiceMethod(typeof(SliceUploadService), nameof(BindService))]
internal sealed partial class SliceUploadService : Wire.V1.Aggregation.AggregationBase
{
    private static readonly TimeSpan GrainTimeout = TimeSpan.FromSeconds(30);
    private readonly SliceFront _front;
    private readonly ILogger<SliceUploadService> _logger;

    public SliceUploadService(SliceFront front, ILogger<SliceUploadService> logger)
    {
        _front = front;
        _logger = logger;
    }

    /// <summary>
    /// Binds the methods with request deserializers that answer malformed bytes with InvalidArgument (as the
    /// coordinator's service does) instead of Unknown.
    /// </summary>
    public static void BindService(ServiceBinderBase binder, Wire.V1.Aggregation.AggregationBase? service)
        => Wire.V1.Aggregation.BindService(new CheckedRequestBinder(binder), service!);

    public override async Task<Ack> UploadMaskedInput(IAsyncStreamReader<MaskedInputChunk> requestStream, ServerCallContext context)
    {
        string site = Identify(context);
        CancellationToken ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct).ConfigureAwait(false))
        {
            throw Refuse(site, StatusCode.InvalidArgument, "the masked-input stream is empty");
        }

        MaskedInputChunk first = requestStream.Current;
        Header? header = first.Header;
        if (header is null)
        {
            throw Refuse(site, StatusCode.InvalidArgument, "the first masked-input chunk must carry the header");
        }

        if (header.FederationId != _front.Federation)
        {
            throw Refuse(site, StatusCode.InvalidArgument, $"the message is for federation '{header.FederationId}'; this aggregator serves '{_front.Federation}'");
        }

        if (header.Sender != site)
        {
            throw Refuse(site, StatusCode.PermissionDenied, $"the header names sender '{header.Sender}' but the client certificate belongs to '{site}'");
        }

        if (header.Stage != Stage.MaskedInput)
        {
            throw Refuse(site, StatusCode.InvalidArgument, $"{context.Method}: the header's stage is {header.Stage}; this call carries STAGE_MASKED_INPUT");
        }

        if (!first.HasSlice)
        {
            throw Refuse(site, StatusCode.FailedPrecondition,
                "this silo takes slices of the masked input only (protocol version 4: the first chunk names its slice); send the whole vector to the coordinator");
        }

        long round = (long)Math.Min(header.Round, long.MaxValue);
        var grains = new ClusterRoundClient(_front.Grains, _front.Federation, round);
        SliceAdmission admission = await grains.Round.AdmitSliceAsync(round, header.SessionId, site, first.Slice).WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
        if (!admission.Admitted)
        {
            throw Refuse(site, Code(admission.Refusal), admission.Reason ?? admission.Refusal.ToString());
        }

        int slice = (int)first.Slice;
        string host = await grains.Slice(slice).SiloAsync().WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
        if (!string.Equals(host, _front.SiloAddress, StringComparison.Ordinal))
        {
            string endpoint = await grains.Slice(slice).EndpointAsync().WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
            throw Refuse(site, StatusCode.FailedPrecondition, $"slice {slice} is not hosted by this silo; upload it to {(endpoint.Length > 0 ? endpoint : "the endpoint the round announcement names")}");
        }

        SliceUploadRefusal? refusal = SliceUploadReader.CheckFirst(first, slice, admission.Length);
        if (refusal is not null)
        {
            throw Refuse(site, refusal.Code, refusal.Reason);
        }

        using IDisposable slot = await _front.AcquireUploadAsync(ct).ConfigureAwait(false);
        // Exactly the slice, handed to the local slice grain, which keeps this array until the commit: one copy of the
        // words in this process (a pooled buffer would be rounded up to a power of two and then copied).
        uint[] buffer = GC.AllocateUninitializedArray<uint>(admission.Length);
        refusal = await SliceUploadReader.ReadAsync(first, requestStream, buffer, admission.Length, slice, ct).ConfigureAwait(false);
        _front.Received(admission.Length);
        if (refusal is not null)
        {
            throw Refuse(site, refusal.Code, refusal.Reason);
        }

        string sha = first.Sha256.ToLowerInvariant();
        bool fresh;
        try
        {
            fresh = await grains.SendOwnedSliceAsync(admission.Index, slice, buffer, sha, ct).WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
        }
        catch (ClusterProtocolException ex)
        {
            StatusCode code = ex.Message.Contains("already sent", StringComparison.Ordinal) ? StatusCode.AlreadyExists : StatusCode.InvalidArgument;
            throw Refuse(site, code, ex.Message);
        }
        catch (ClusterRoundAbortedException ex)
        {
            throw Refuse(site, StatusCode.Aborted, $"round {round} ended: {ex.Message}");
        }

        if (fresh)
        {
            _front.Accepted();
        }

        Log.Accepted(_logger, site, round, slice, admission.Length, fresh);
        return new Ack { Duplicate = !fresh };
    }

    internal static StatusCode Code(SliceRefusalKind kind) => kind switch
    {
        SliceRefusalKind.StaleOrReplay or SliceRefusalKind.WrongStage => StatusCode.FailedPrecondition,
        SliceRefusalKind.NotInCohort => StatusCode.PermissionDenied,
        SliceRefusalKind.AlreadySent => StatusCode.AlreadyExists,
        _ => StatusCode.InvalidArgument,
    };

    private string Identify(ServerCallContext context)
    {
        var certificate = context.GetHttpContext().Connection.ClientCertificate;
        if (certificate is null)
        {
            throw Refuse("(no certificate)", StatusCode.Unauthenticated, "a client certificate issued by the federation CA is required");
        }

        string? site = PeerTrust.IdentifySite(certificate, _front.Kit.Manifest, out string? error);
        return site ?? throw Refuse("(unidentified certificate)", StatusCode.PermissionDenied, error ?? "the client certificate does not identify a provisioned site");
    }

    private RpcException Refuse(string site, StatusCode code, string reason)
    {
        Log.Refused(_logger, site, code.ToString(), reason);
        return new RpcException(new Status(code, reason));
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Slice upload from {Site} refused ({Code}): {Reason}")]
        public static partial void Refused(ILogger logger, string site, string code, string reason);

        [LoggerMessage(2, LogLevel.Debug, "Slice upload from {Site}: round {Round} slice {Slice} ({Words} words) accepted, fresh {Fresh}")]
        public static partial void Accepted(ILogger logger, string site, long round, int slice, int words, bool fresh);
    }
}
