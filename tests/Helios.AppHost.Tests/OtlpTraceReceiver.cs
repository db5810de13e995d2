using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Helios.AppHost.Tests;

/// <summary>A span as an OTLP exporter sent it: ids in hex, the sending service, the span's string attributes.</summary>
internal sealed record ReceivedSpan(string Service, string TraceId, string SpanId, string ParentSpanId, string Name, IReadOnlyDictionary<string, string> Attributes);

/// <summary>
/// An OTLP/HTTP (protobuf) receiver for tests: the stack's processes export their traces here, as they would to the
/// Aspire dashboard, and a test reads what arrived. Only the fields a test asserts on are decoded (trace and span
/// ids, parent, name, string attributes, service.name); metrics and logs are accepted and dropped.
/// </summary>
internal sealed class OtlpTraceReceiver : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;

    public OtlpTraceReceiver()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Endpoint = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Endpoint + "/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public string Endpoint { get; }

    public ConcurrentQueue<ReceivedSpan> Spans { get; } = new();

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            try
            {
                using var body = new MemoryStream();
                var input = context.Request.Headers["Content-Encoding"] == "gzip"
                    ? new GZipStream(context.Request.InputStream, CompressionMode.Decompress)
                    : context.Request.InputStream;
                await input.CopyToAsync(body);
                if (context.Request.Url?.AbsolutePath == "/v1/traces")
                {
                    Decode(body.ToArray());
                }

                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-protobuf";
            }
            catch (Exception)
            {
                context.Response.StatusCode = 400;
            }
            finally
            {
                context.Response.Close();
            }
        }
    }

    // ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
    // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
    // Resource { repeated KeyValue attributes = 1; }   ScopeSpans { repeated Span spans = 2; }
    // Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; repeated KeyValue attributes = 9; }
    private void Decode(ReadOnlyMemory<byte> request)
    {
        foreach (var resourceSpans in Fields(request).Where(f => f.Number == 1))
        {
            var service = "";
            var scopes = new List<ReadOnlyMemory<byte>>();
            foreach (var field in Fields(resourceSpans.Bytes))
            {
                if (field.Number == 1)
                {
                    service = Attributes(field.Bytes, 1).GetValueOrDefault("service.name", "");
                }
                else if (field.Number == 2)
                {
                    scopes.Add(field.Bytes);
                }
            }

            foreach (var span in scopes.SelectMany(s => Fields(s)).Where(f => f.Number == 2))
            {
                string traceId = "", spanId = "", parent = "", name = "";
                foreach (var field in Fields(span.Bytes))
                {
                    switch (field.Number)
                    {
                        case 1: traceId = Convert.ToHexStringLower(field.Bytes.Span); break;
                        case 2: spanId = Convert.ToHexStringLower(field.Bytes.Span); break;
                        case 4: parent = Convert.ToHexStringLower(field.Bytes.Span); break;
                        case 5: name = Encoding.UTF8.GetString(field.Bytes.Span); break;
                    }
                }

                Spans.Enqueue(new ReceivedSpan(service, traceId, spanId, parent, name, Attributes(span.Bytes, 9)));
            }
        }
    }

    // KeyValue { string key = 1; AnyValue value = 2; }  AnyValue { string string_value = 1; int64 int_value = 3; ... }
    private static Dictionary<string, string> Attributes(ReadOnlyMemory<byte> message, int fieldNumber)
    {
        var attributes = new Dictionary<string, string>();
        foreach (var keyValue in Fields(message).Where(f => f.Number == fieldNumber && f.WireType == 2))
        {
            string? key = null, value = null;
            foreach (var field in Fields(keyValue.Bytes))
            {
                if (field.Number == 1)
                {
                    key = Encoding.UTF8.GetString(field.Bytes.Span);
                }
                else if (field.Number == 2)
                {
                    foreach (var any in Fields(field.Bytes))
                    {
                        value = any.Number switch
                        {
                            1 => Encoding.UTF8.GetString(any.Bytes.Span),
                            3 => ((long)any.Varint).ToString(System.Globalization.CultureInfo.InvariantCulture),
                            _ => value,
                        };
                    }
                }
            }

            if (key is not null && value is not null)
            {
                attributes[key] = value;
            }
        }

        return attributes;
    }

    private readonly record struct Field(int Number, int WireType, ulong Varint, ReadOnlyMemory<byte> Bytes);

    /// <summary>The protobuf wire format: a key varint (number &lt;&lt; 3 | wire type), then the value.</summary>
    private static List<Field> Fields(ReadOnlyMemory<byte> message)
    {
        var fields = new List<Field>();
        var data = message.Span;
        var position = 0;
        while (position < data.Length)
        {
            var key = ReadVarint(data, ref position);
            var number = (int)(key >> 3);
            var wireType = (int)(key & 7);
            switch (wireType)
            {
                case 0:
                    fields.Add(new Field(number, wireType, ReadVarint(data, ref position), default));
                    break;
                case 1:
                    fields.Add(new Field(number, wireType, 0, message.Slice(position, 8)));
                    position += 8;
                    break;
                case 2:
                    var length = (int)ReadVarint(data, ref position);
                    fields.Add(new Field(number, wireType, 0, message.Slice(position, length)));
                    position += length;
                    break;
                case 5:
                    fields.Add(new Field(number, wireType, 0, message.Slice(position, 4)));
                    position += 4;
                    break;
                default:
                    throw new InvalidDataException($"protobuf wire type {wireType} is not supported");
            }
        }

        return fields;
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> data, ref int position)
    {
        ulong value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            var b = data[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }

        throw new InvalidDataException("varint too long");
    }

    public void Dispose()
    {
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}
