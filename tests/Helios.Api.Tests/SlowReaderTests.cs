using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Helios.Api.Tests;

/// <summary>PostgreSQL with the local file store (so the Api streams the files itself), served by Kestrel on a real
/// port: a slow reader then holds the response back for real.</summary>
public sealed class SlowReaderFactory : HeliosApiFactory
{
    private readonly string _exports = Path.Combine(Path.GetTempPath(), "helios-slow-" + Guid.NewGuid().ToString("N")[..12]);

    public SlowReaderFactory()
        : base(postgres: true)
    {
        ExportTestSettings.Apply(this, slow: false);
        Settings["Helios:Export:FileStore"] = "local";
        Settings["Helios:Export:LocalDirectory"] = _exports;
        Settings["Helios:Export:PartitionRows"] = "100000";
        Settings["Helios:Export:MaxPartBytes"] = "67108864";
        Settings["Helios:Export:ReadBatchRows"] = "5000";
        UseKestrel(0);
    }

    public Uri Address => new(Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().Replace("[::]", "127.0.0.1", StringComparison.Ordinal));

    protected override Task DisposeExtrasAsync()
    {
        if (Directory.Exists(_exports))
        {
            Directory.Delete(_exports, recursive: true);
        }

        return Task.CompletedTask;
    }
}

/// <summary>
/// Eight clients download a 9 MB export file and stop reading after the first 64 KiB, with tiny receive windows: the
/// Api is still streaming each file (it holds it open), and meanwhile it holds no database connection for them.
/// </summary>
public sealed class SlowReaderTests(SlowReaderFactory factory) : IClassFixture<SlowReaderFactory>
{
    [Fact]
    public async Task SlowDownloads_HoldNoDatabaseConnection()
    {
        var counts = await LargeSeed.EnsureAsync(factory);
        factory.StartServer();
        using var client = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096, NoDelay = true };
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            },
            MaxConnectionsPerServer = 100,
        })
        { BaseAddress = factory.Address };
        var exports = new ExportClient(client, null);
        var manifest = await exports.WaitForManifestAsync(await exports.KickoffAsync($"{factory.Address}$export?_type=Observation"));
        var file = manifest.GetProperty("output")[0];
        var url = file.GetProperty("url").GetString()!;
        var fileName = url[(url.LastIndexOf('/') + 1)..];

        // Connections in use in this factory's Npgsql pool, as Npgsql reports them.
        var database = new Npgsql.NpgsqlConnectionStringBuilder(factory.Services.GetRequiredService<Microsoft.Extensions.Configuration.IConfiguration>()["ConnectionStrings:helios-db"]).Database!;
        long used = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "Npgsql" && instrument.Name == "db.client.connection.count")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<int>((_, value, tags, _) => Observe(value, tags));
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) => Observe(value, tags));
        void Observe(long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            bool ours = false, inUse = false;
            foreach (var tag in tags)
            {
                ours |= tag.Value?.ToString()?.Contains(database, StringComparison.Ordinal) == true;
                inUse |= tag.Key == "db.client.connection.state" && tag.Value as string == "used";
            }

            if (ours && inUse)
            {
                Interlocked.Add(ref used, value);
            }
        }

        listener.Start();

        // The gauge sees a connection the Api's data source hands out (so a zero below means none is in use).
        await using (await factory.Services.GetRequiredService<Npgsql.NpgsqlDataSource>().OpenConnectionAsync())
        {
            listener.RecordObservableInstruments();
            Assert.True(Interlocked.Read(ref used) >= 1, "Npgsql's connection gauge did not see an open connection");
        }

        const int Readers = 8;
        var responses = new List<(HttpResponseMessage Response, Stream Body)>();
        for (var i = 0; i < Readers; i++)
        {
            var response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[64 * 1024];
            await body.ReadExactlyAsync(buffer);
            responses.Add((response, body));
        }

        // Hold still: the Api has every file open (it is mid-stream), and the pool has no connection in use for them.
        var samples = new List<long>();
        for (var i = 0; i < 10; i++)
        {
            await Task.Delay(200);
            Assert.True(OpenHandles(fileName) >= Readers, $"the Api holds {OpenHandles(fileName)} handles of the file: the downloads were not still streaming");
            Interlocked.Exchange(ref used, 0);
            listener.RecordObservableInstruments();
            samples.Add(Interlocked.Read(ref used));
        }

        Assert.True(samples.Max() < Readers, $"connections in use while {Readers} downloads stalled: {string.Join(", ", samples)}");
        Assert.True(samples.Count(s => s == 0) >= samples.Count / 2, $"connections in use while {Readers} downloads stalled: {string.Join(", ", samples)}");

        // The rest of each file still arrives whole.
        Assert.Equal(file.GetProperty("count").GetInt64(), counts["Observation"]);
        foreach (var (response, body) in responses)
        {
            using var rest = new MemoryStream();
            await body.CopyToAsync(rest);
            Assert.Equal(response.Content.Headers.ContentLength!.Value, 64 * 1024 + rest.Length);
            response.Dispose();
        }
    }

    /// <summary>Open file descriptors of this process (the in-process Api) on the export file.</summary>
    private static int OpenHandles(string fileName) =>
        Directory.GetFiles("/proc/self/fd").Count(fd =>
        {
            try
            {
                return new FileInfo(fd).LinkTarget?.EndsWith("/" + fileName, StringComparison.Ordinal) == true;
            }
            catch (IOException)
            {
                return false;
            }
        });
}
