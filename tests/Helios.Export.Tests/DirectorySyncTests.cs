namespace Helios.Export.Tests;

/// <summary>The directory fsync that makes a published part's rename durable.</summary>
public sealed class DirectorySyncTests
{
    [Fact]
    public void Sync_OfAnExistingDirectory_Succeeds_AndOfAMissingOne_Throws()
    {
        var directory = Directory.CreateTempSubdirectory("helios-dirsync-").FullName;
        DirectorySync.Sync(directory);
        Directory.Delete(directory);
        if (!OperatingSystem.IsWindows())
        {
            var error = Assert.Throws<IOException>(() => DirectorySync.Sync(directory));
            Assert.Contains(directory, error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task PublishedPart_IsInPlace_AndItsTempFileGone()
    {
        var root = Directory.CreateTempSubdirectory("helios-durable-").FullName;
        try
        {
            var store = new LocalExportFileStore(root);
            await using (var writer = await store.CreateAsync("job1", "Patient-1.ndjson", CancellationToken.None))
            {
                await writer.WriteAsync("{\"resourceType\":\"Patient\"}\n"u8.ToArray(), CancellationToken.None);
                await writer.PublishAsync(CancellationToken.None);
            }

            Assert.Equal(["Patient-1.ndjson"], await store.ListAsync("job1", CancellationToken.None));
            Assert.Equal("{\"resourceType\":\"Patient\"}\n", await File.ReadAllTextAsync(store.GetLocalPath("job1", "Patient-1.ndjson")!));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
