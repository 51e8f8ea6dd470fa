using System.Collections.Concurrent;
using System.Net;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// Counts, per endpoint (host:port), the request bytes agents put on the wire in <c>UploadMaskedInput</c> calls (the
/// gRPC frames: protobuf chunks with their 5-byte prefixes, before TLS): an outside measurement of what each silo received;
/// and, per endpoint, the number of such calls (a retried upload is a second call).
/// </summary>
internal sealed class UploadBytesCounter(HttpMessageHandler inner, ConcurrentDictionary<string, long> bytes, ConcurrentDictionary<string, long> calls) : DelegatingHandler(inner)
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.RequestUri?.AbsolutePath.EndsWith("/UploadMaskedInput", StringComparison.Ordinal) == true && request.Content is { } content)
        {
            request.Content = new CountingContent(content, request.RequestUri.Authority, bytes);
            calls.AddOrUpdate(request.RequestUri.Authority, 1, (_, n) => n + 1);
        }

        return base.SendAsync(request, cancellationToken);
    }

    private sealed class CountingContent : HttpContent
    {
        private readonly HttpContent _inner;
        private readonly string _authority;
        private readonly ConcurrentDictionary<string, long> _bytes;

        public CountingContent(HttpContent inner, string authority, ConcurrentDictionary<string, long> bytes)
        {
            _inner = inner;
            _authority = authority;
            _bytes = bytes;
            foreach (KeyValuePair<string, IEnumerable<string>> header in inner.Headers)
            {
                Headers.TryAddWithoutValidation(header.Key, header.Value);
            }
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
            => _inner.CopyToAsync(new CountingStream(stream, n => _bytes.AddOrUpdate(_authority, n, (_, total) => total + n)), context);

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    private sealed class CountingStream(Stream inner, Action<long> onWrite) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            inner.Write(buffer, offset, count);
            Count(count);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await inner.WriteAsync(buffer, cancellationToken);
            Count(buffer.Length);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private void Count(long n) => onWrite(n);
    }
}
