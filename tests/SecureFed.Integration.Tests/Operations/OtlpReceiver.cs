using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace SecureFed.Integration.Tests.Operations;

/// <summary>
/// A minimal OpenTelemetry collector for tests: an OTLP/gRPC receiver (HTTP/2 without TLS, as a collector's
/// <c>otlp</c> receiver on port 4317) on 127.0.0.1 that accepts the metrics and trace export calls and decodes what the
/// tests check (resource attributes, scope, metric names and number/histogram points, span names, identifiers and
/// string attributes). The protobuf is read field by field with Google.Protobuf's <see cref="CodedInputStream"/>; the
/// field numbers are those of opentelemetry-proto's <c>collector/{metrics,trace}/v1</c>, <c>metrics/v1/metrics.proto</c>,
/// <c>trace/v1/trace.proto</c>, <c>common/v1/common.proto</c> and <c>resource/v1/resource.proto</c> (Apache-2.0,
/// https://github.com/open-telemetry/opentelemetry-proto); no generated code is vendored.
/// </summary>
internal sealed class OtlpReceiver : IAsyncDisposable
{
    public const string MetricsPath = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    public const string TracesPath = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app) => _app = app;

    /// <summary>The receiver's address (give it as the exporter's endpoint).</summary>
    public Uri Address { get; private set; } = null!;

    public ConcurrentQueue<OtlpMetric> Metrics { get; } = new();

    public ConcurrentQueue<OtlpSpan> Spans { get; } = new();

    /// <summary>Export calls that were not understood (wrong path, content type or framing).</summary>
    public ConcurrentQueue<string> Rejected { get; } = new();

    public static async Task<OtlpReceiver> StartAsync(CancellationToken cancellationToken)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, e => e.Protocols = HttpProtocols.Http2));
        WebApplication app = builder.Build();
        var receiver = new OtlpReceiver(app);
        app.Run(receiver.HandleAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        receiver.Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single());
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private async Task HandleAsync(HttpContext context)
    {
        string path = context.Request.Path.Value ?? "";
        if (!HttpMethods.IsPost(context.Request.Method) || path is not (MetricsPath or TracesPath)
            || context.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) != true)
        {
            Rejected.Enqueue($"{context.Request.Method} {path} {context.Request.ContentType} {context.Request.Protocol}");
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body, context.RequestAborted).ConfigureAwait(false);
        byte[] frame = body.ToArray();
        int length = frame.Length >= 5 ? BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(1)) : -1;
        if (length < 0 || frame.Length != 5 + length)
        {
            Rejected.Enqueue($"{path}: a gRPC frame of {frame.Length} bytes announcing {length}");
            await GrpcStatusAsync(context, 3).ConfigureAwait(false); // INVALID_ARGUMENT
            return;
        }

        byte[] message = frame[5..];
        if (frame[0] == 1)
        {
            using var gzip = new GZipStream(new MemoryStream(message), CompressionMode.Decompress);
            using var plain = new MemoryStream();
            await gzip.CopyToAsync(plain, context.RequestAborted).ConfigureAwait(false);
            message = plain.ToArray();
        }

        if (path == MetricsPath)
        {
            DecodeMetrics(message);
        }
        else
        {
            DecodeSpans(message);
        }

        await GrpcStatusAsync(context, 0).ConfigureAwait(false);
    }

    /// <summary>An empty response message (ExportXxxServiceResponse with no partial_success) and the gRPC status trailer.</summary>
    private static async Task GrpcStatusAsync(HttpContext context, int status)
    {
        context.Response.ContentType = "application/grpc";
        if (status == 0)
        {
            await context.Response.Body.WriteAsync(new byte[5], context.RequestAborted).ConfigureAwait(false);
        }

        context.Response.AppendTrailer("grpc-status", status.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    private void DecodeMetrics(byte[] request)
    {
        foreach (byte[] resourceMetrics in Messages(request, 1))
        {
            IReadOnlyDictionary<string, string> resource = Resource(resourceMetrics);
            foreach (byte[] scopeMetrics in Messages(resourceMetrics, 2))
            {
                string scope = Messages(scopeMetrics, 1).Select(s => Text(s, 1)).FirstOrDefault() ?? "";
                foreach (byte[] metric in Messages(scopeMetrics, 2))
                {
                    var points = new List<OtlpPoint>();
                    foreach (int kind in new[] { 5, 7 }) // gauge, sum: NumberDataPoint (attributes 7, as_double 4, as_int 6)
                    {
                        foreach (byte[] data in Messages(metric, kind))
                        {
                            foreach (byte[] point in Messages(data, 1))
                            {
                                List<Field> fields = Read(point);
                                int asDouble = fields.FindIndex(f => f.Number == 4);
                                double value = asDouble >= 0 ? BitConverter.Int64BitsToDouble((long)fields[asDouble].Value) : (long)fields.Find(f => f.Number == 6).Value;
                                points.Add(new OtlpPoint(Attributes(point, 7), value, Count: 1));
                            }
                        }
                    }

                    foreach (byte[] data in Messages(metric, 9)) // histogram: HistogramDataPoint (attributes 9, count 4, sum 5)
                    {
                        foreach (byte[] point in Messages(data, 1))
                        {
                            List<Field> fields = Read(point);
                            points.Add(new OtlpPoint(
                                Attributes(point, 9),
                                fields.Any(f => f.Number == 5) ? BitConverter.Int64BitsToDouble((long)fields.First(f => f.Number == 5).Value) : double.NaN,
                                (long)fields.FirstOrDefault(f => f.Number == 4).Value));
                        }
                    }

                    Metrics.Enqueue(new OtlpMetric(resource, scope, Text(metric, 1) ?? "", Text(metric, 3) ?? "", points));
                }
            }
        }
    }

    private void DecodeSpans(byte[] request)
    {
        foreach (byte[] resourceSpans in Messages(request, 1))
        {
            IReadOnlyDictionary<string, string> resource = Resource(resourceSpans);
            foreach (byte[] scopeSpans in Messages(resourceSpans, 2))
            {
                string scope = Messages(scopeSpans, 1).Select(s => Text(s, 1)).FirstOrDefault() ?? "";
                foreach (byte[] span in Messages(scopeSpans, 2))
                {
                    Spans.Enqueue(new OtlpSpan(
                        resource,
                        scope,
                        Text(span, 5) ?? "",
                        Hex(span, 1),
                        Hex(span, 2),
                        Hex(span, 4),
                        Attributes(span, 9)));
                }
            }
        }
    }

    /// <summary>The resource's attributes (ResourceXxx.resource = 1, Resource.attributes = 1).</summary>
    private static Dictionary<string, string> Resource(byte[] resourceX)
        => Messages(resourceX, 1).Select(r => Attributes(r, 1)).FirstOrDefault() ?? new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>KeyValue attributes (key 1, AnyValue 2) with their value as text (string 1, bool 2, int 3, double 4).</summary>
    private static Dictionary<string, string> Attributes(byte[] message, int field)
    {
        var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (byte[] keyValue in Messages(message, field))
        {
            string key = Text(keyValue, 1) ?? "";
            byte[]? any = Messages(keyValue, 2).FirstOrDefault();
            if (any is null)
            {
                continue;
            }

            Field value = Read(any).FirstOrDefault();
            attributes[key] = value.Number switch
            {
                1 => System.Text.Encoding.UTF8.GetString(value.Bytes!),
                2 => (value.Value != 0).ToString(),
                3 => ((long)value.Value).ToString(System.Globalization.CultureInfo.InvariantCulture),
                4 => BitConverter.Int64BitsToDouble((long)value.Value).ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                _ => "",
            };
        }

        return attributes;
    }

    private static IEnumerable<byte[]> Messages(byte[] message, int field)
        => Read(message).Where(f => f.Number == field && f.Bytes is not null).Select(f => f.Bytes!);

    private static string? Text(byte[] message, int field)
        => Messages(message, field).Select(b => System.Text.Encoding.UTF8.GetString(b)).FirstOrDefault();

    private static string Hex(byte[] message, int field) => Convert.ToHexStringLower(Messages(message, field).FirstOrDefault() ?? []);

    /// <summary>The fields of one protobuf message: varint and fixed values as bits, length-delimited ones as bytes.</summary>
    private static List<Field> Read(byte[] message)
    {
        var fields = new List<Field>();
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            int number = WireFormat.GetTagFieldNumber(tag);
            switch (WireFormat.GetTagWireType(tag))
            {
                case WireFormat.WireType.Varint:
                    fields.Add(new Field(number, input.ReadUInt64(), null));
                    break;
                case WireFormat.WireType.Fixed64:
                    fields.Add(new Field(number, input.ReadFixed64(), null));
                    break;
                case WireFormat.WireType.Fixed32:
                    fields.Add(new Field(number, input.ReadFixed32(), null));
                    break;
                case WireFormat.WireType.LengthDelimited:
                    fields.Add(new Field(number, 0, input.ReadBytes().ToByteArray()));
                    break;
                default:
                    input.SkipLastField();
                    break;
            }
        }

        return fields;
    }

    private readonly record struct Field(int Number, ulong Value, byte[]? Bytes);
}
