using System.Globalization;
using CsCheck;
using Helios.Hosting;
using Microsoft.Extensions.Configuration;

namespace Helios.Api.Tests;

/// <summary><c>Helios:Worker:Nice</c> is read at startup: 0-19 or nothing; anything else stops the worker with a
/// message naming the setting. (That the threads of a running worker are lowered is checked on the AppHost's local
/// stack, where the workers run at nice 10.)</summary>
public sealed class WorkerCpuPriorityTests
{
    private static int Read(string? value) => WorkerCpuPriority.ReadNice(
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [WorkerCpuPriority.SettingName] = value }).Build());

    [Fact]
    public void NiceValues_FromZeroToNineteen_AreTaken_AndNothingElse()
    {
        Assert.Equal(0, Read(null));
        Assert.Equal(0, Read(" "));
        Gen.Int[-1000, 1000].Sample(nice =>
        {
            var text = nice.ToString(CultureInfo.InvariantCulture);
            if (nice is >= 0 and <= 19)
            {
                Assert.Equal(nice, Read(text));
            }
            else
            {
                Assert.Contains(WorkerCpuPriority.SettingName, Assert.Throws<InvalidOperationException>(() => Read(text)).Message, StringComparison.Ordinal);
            }
        }, iter: 2000);
        Gen.String.Where(s => !string.IsNullOrWhiteSpace(s) && !int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)).Sample(text =>
            Assert.Throws<InvalidOperationException>(() => Read(text)), iter: 2000);
    }
}
