using System.Buffers;
using System.Text;
using System.Text.Json;
using CsCheck;
using Helios.Storage.Fhir;
using Helios.Storage.Synthetic;

namespace Helios.Storage.Tests;

public sealed class ElementsProjectionTests
{
    private static readonly byte[][] Resources = [.. new SyntheticDataGenerator(3).Generate(4).Select(FhirJson.SerializeToUtf8)];

    private static JsonElement Project(ElementsProjection projection, byte[] json)
    {
        var output = new ArrayBufferWriter<byte>();
        projection.Write(json, output);
        return JsonDocument.Parse(output.WrittenMemory).RootElement;
    }

    /// <summary>Any subset of a resource's root elements gives a resource that still parses strictly (the mandatory
    /// elements stay), keeps exactly the asked-for elements that were there, and is tagged SUBSETTED once.</summary>
    [Fact]
    public void AnySubset_StillParses_KeepsWhatWasAsked_TaggedOnce()
    {
        Gen.Select(Gen.Int[0, Resources.Length - 1], Gen.Int[0, int.MaxValue], Gen.Bool).Sample((index, mask, twice) =>
        {
            var json = Resources[index];
            var original = JsonDocument.Parse(json).RootElement;
            var type = original.GetProperty("resourceType").GetString()!;
            var names = original.EnumerateObject().Select(p => p.Name.TrimStart('_')).Where(n => n is not ("resourceType" or "id" or "meta")).Distinct().ToList();
            var asked = names.Where((_, i) => (mask & (1 << (i % 31))) != 0).ToList();
            var projection = ElementsProjection.For(type, asked.Select(BaseName(type)))!;
            var projected = Project(projection, json);
            if (twice)
            {
                projected = Project(projection, Encoding.UTF8.GetBytes(projected.GetRawText()));
            }

            FhirJson.ParseResource(Encoding.UTF8.GetBytes(projected.GetRawText()));
            Assert.Equal(original.GetProperty("id").GetString(), projected.GetProperty("id").GetString());
            foreach (var name in asked)
            {
                Assert.True(projected.TryGetProperty(name, out var kept) || projected.TryGetProperty("_" + name, out kept), $"{type}.{name} was dropped");
                Assert.Equal(original.TryGetProperty(name, out var was) ? was.GetRawText() : original.GetProperty("_" + name).GetRawText(), kept.GetRawText());
            }

            Assert.Single(projected.GetProperty("meta").GetProperty("tag").EnumerateArray(), t => t.GetProperty("code").GetString() == ElementsProjection.SubsettedCode);
        }, iter: 2_000);
    }

    /// <summary>valueQuantity → value, multipleBirthBoolean → multipleBirth: the prefix before an upper-case letter
    /// that names an element of the type.</summary>
    private static Func<string, string> BaseName(string type) => jsonName =>
        ElementsProjection.IsRootElement(type, jsonName)
            ? jsonName
            : Enumerable.Range(1, jsonName.Length - 1).Where(i => char.IsUpper(jsonName[i])).Select(i => jsonName[..i]).First(p => ElementsProjection.IsRootElement(type, p));

    [Fact]
    public void RootElements_AreKnownByBaseName()
    {
        Assert.True(ElementsProjection.IsRootElement("Observation", "value"));
        Assert.True(ElementsProjection.IsRootElement("Patient", "birthDate"));
        Assert.False(ElementsProjection.IsRootElement("Patient", "valueQuantity"));
        Assert.False(ElementsProjection.IsRootElement("Patient", "status"));
        Assert.False(ElementsProjection.IsRootElement("HumanName", "family"));
        Assert.False(ElementsProjection.IsRootElement("NotAType", "id"));
    }

    [Fact]
    public void MandatoryElements_Stay_EvenWhenNotAsked()
    {
        var observation = """{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"valueString":"v","note":[{"text":"n"}]}"""u8.ToArray();
        var projected = Project(ElementsProjection.For("Observation", ["id"])!, observation);
        Assert.Equal(["resourceType", "id", "status", "code", "meta"], projected.EnumerateObject().Select(p => p.Name));
    }
}
