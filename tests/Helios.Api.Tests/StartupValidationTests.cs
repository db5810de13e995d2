using Microsoft.AspNetCore.Mvc.Testing;

namespace Helios.Api.Tests;

/// <summary>Invalid topology and export settings stop the Api at startup with a message that says what to change.</summary>
public sealed class StartupValidationTests
{
    private static Exception StartWith(params (string Key, string Value)[] settings)
    {
        using var factory = new WebApplicationFactory<ApiEntryPoint>().WithWebHostBuilder(builder =>
        {
            builder.UseSetting("Helios:DataDirectory", Path.Combine(Path.GetTempPath(), "helios-invalid-" + Guid.NewGuid().ToString("N")[..8]));
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }
        });
        return Assert.ThrowsAny<Exception>(() => factory.CreateClient());
    }

    private static string Messages(Exception exception)
    {
        var text = new List<string>();
        for (var e = exception; e is not null; e = e.InnerException)
        {
            text.Add(e.Message);
        }

        return string.Join(" | ", text);
    }

    [Fact]
    public void PostgresS3_WithoutAConnectionString_Fails() =>
        Assert.Contains("ConnectionStrings:helios-db is not set", Messages(StartWith(("Helios:Topology", "postgres-s3"))));

    [Fact]
    public void PostgresS3_WithoutS3Settings_Fails()
    {
        var message = Messages(StartWith(("Helios:Topology", "postgres-s3"), ("ConnectionStrings:helios-db", "Host=127.0.0.1;Username=x;Password=y;Database=z")));
        Assert.Contains("Helios:Export:S3:ServiceUrl", message);
        Assert.Contains("Helios:Export:S3:AccessKey", message);
    }

    [Fact]
    public void Embedded_WithoutWorkers_Fails() =>
        Assert.Contains("RunWorkers=false is not valid", Messages(StartWith(("Helios:Topology", "embedded"), ("Helios:Export:RunWorkers", "false"))));

    [Fact]
    public void DirectDownloadUrls_WithLocalFiles_Fails() =>
        Assert.Contains("DirectDownloadUrls=true needs presigned URLs", Messages(StartWith(("Helios:Topology", "embedded"), ("Helios:Export:DirectDownloadUrls", "true"))));

    [Fact]
    public void UnknownFileStore_Fails() =>
        Assert.Contains("FileStore 'ftp'", Messages(StartWith(("Helios:Export:FileStore", "ftp"))));
}
