using System.Text;
using Helios.Storage.Sql;

namespace Helios.Storage.Tests;

public sealed class NdjsonBufferTests
{
    private sealed class Collect : ISnapshotSink
    {
        public MemoryStream Bytes { get; } = new();

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            Bytes.Write(data.Span);
            return ValueTask.CompletedTask;
        }
    }

    [Theory]
    [InlineData("{\"resourceType\":\"Patient\",\"id\":\"bad\",\"name\":[{\"fam")]
    [InlineData("{\n  \"resourceType\": \"Patient\",\n  \"id\": \"bad\"\n}")]
    [InlineData("{\"resourceType\":\"Patient\",\"id\":\"bad\"}\r")]
    [InlineData("\"resourceType\":\"Patient\",\"id\":\"bad\"}")]
    [InlineData("[{\"resourceType\":\"Patient\",\"id\":\"bad\"}]")]
    [InlineData("")]
    public async Task LinesThatBreakTheNdjsonFraming_AreTakenBackOut_AndDescribed(string bad)
    {
        var sink = new Collect();
        var buffer = new NdjsonBuffer(sink);
        foreach (var line in new[] { "{\"resourceType\":\"Patient\",\"id\":\"a\"}", bad, "{\"resourceType\":\"Patient\",\"id\":\"c\",\"x\":{\"y\":[1,2]}}" })
        {
            var bytes = Encoding.UTF8.GetBytes(line);
            await buffer.EnsureRoomAsync(bytes.Length, CancellationToken.None);
            buffer.Append(bytes);
        }

        await buffer.FlushAsync(CancellationToken.None);
        var text = Encoding.UTF8.GetString(sink.Bytes.ToArray());
        Assert.Equal("{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Patient\",\"id\":\"c\",\"x\":{\"y\":[1,2]}}\n", text);
        Assert.Equal(text.Length, buffer.Total);
        Assert.Equal(1, buffer.Rejected);
        Assert.Contains(bad.Length == 0 ? "A resource (id unreadable)" : "Patient/bad", Assert.Single(buffer.Problems), StringComparison.Ordinal);
    }
}
