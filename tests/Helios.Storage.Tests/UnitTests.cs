using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Helios.Storage.Search;
using Helios.Storage.Synthetic;
using Hl7.Fhir.Model;

namespace Helios.Storage.Tests;

public sealed class FhirDateRangeTests
{
    [Theory]
    [InlineData("2020", "2020-01-01T00:00:00Z", "2020-12-31T23:59:59.999999Z")]
    [InlineData("2020-02", "2020-02-01T00:00:00Z", "2020-02-29T23:59:59.999999Z")]
    [InlineData("2020-02-03", "2020-02-03T00:00:00Z", "2020-02-03T23:59:59.999999Z")]
    [InlineData("2020-02-03T10:15:00+02:00", "2020-02-03T08:15:00Z", "2020-02-03T08:15:00.999999Z")]
    [InlineData("2020-02-03T10:15:00.5Z", "2020-02-03T10:15:00.5Z", "2020-02-03T10:15:00.599999Z")]
    [InlineData("9999", "9999-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z")]
    [InlineData("9999-12", "9999-12-01T00:00:00Z", "9999-12-31T23:59:59.999999Z")]
    [InlineData("9999-12-31", "9999-12-31T00:00:00Z", "9999-12-31T23:59:59.999999Z")]
    [InlineData("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999Z")]
    [InlineData("0001", "0001-01-01T00:00:00Z", "0001-12-31T23:59:59.999999Z")]
    public void Precision_DefinesTheRange(string text, string low, string high)
    {
        Assert.True(FhirDateRange.TryParse(text, out var l, out var h));
        Assert.Equal(DateTimeOffset.Parse(low, System.Globalization.CultureInfo.InvariantCulture), FhirDateRange.FromMicros(l));
        Assert.Equal(DateTimeOffset.Parse(high, System.Globalization.CultureInfo.InvariantCulture), FhirDateRange.FromMicros(h));
    }

    [Theory]
    [InlineData("yesterday")]
    [InlineData("2020-13")]
    [InlineData("")]
    public void Garbage_IsRejected(string text) => Assert.False(FhirDateRange.TryParse(text, out _, out _));
}

public sealed class IndexExtractorTests
{
    private static readonly IndexExtractor s_extractor = new(SearchParameterRegistry.Instance);

    [Fact]
    public void Observation_IndexesCodesReferencesDatesQuantitiesAndCompartment()
    {
        var observation = new Observation
        {
            Id = "o1",
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", "8867-4"),
            Subject = new ResourceReference("Patient/p1"),
            Performer = [new ResourceReference("Practitioner/d1")],
            Effective = new FhirDateTime("2021-03-04"),
            Value = new Quantity(72, "/min") { System = "http://unitsofmeasure.org", Code = "/min" },
        };
        var entries = s_extractor.Extract(observation);
        Assert.Contains(new TokenEntry("code", "http://loinc.org", "8867-4"), entries.Tokens);
        Assert.Contains(new TokenEntry("status", "http://hl7.org/fhir/observation-status", "final"), entries.Tokens);
        Assert.Contains(new ReferenceEntry("subject", "Patient", "p1"), entries.References);
        Assert.Contains(new ReferenceEntry("patient", "Patient", "p1"), entries.References);
        Assert.DoesNotContain(entries.References, r => r.Param == "patient" && r.TargetType == "Practitioner");
        Assert.Contains(entries.Dates, d => d.Param == "date");
        Assert.Contains(new QuantityEntry("value-quantity", "http://unitsofmeasure.org", "/min", 72), entries.Quantities);
        Assert.Equal(["p1"], entries.Compartments);
    }

    [Fact]
    public void EveryR4SearchParameterOfTheIndexedKinds_IsRegistered()
    {
        var registry = SearchParameterRegistry.Instance;
        Assert.NotNull(registry.Find("Patient", "family"));
        Assert.NotNull(registry.Find("Observation", "value-quantity"));
        Assert.NotNull(registry.Find("Encounter", "_tag"));
        Assert.Contains("Observation", registry.PatientCompartmentTypes);
        Assert.Equal(["subject", "performer"], registry.PatientCompartmentParams("Observation"));
    }
}

public sealed class SearchQueryParserTests
{
    private readonly SearchQueryParser _parser = new(SearchParameterRegistry.Instance);

    [Fact]
    public void Lenient_IgnoresUnknownParameters_AndStrictRefusesThem()
    {
        var parsed = _parser.Parse("Patient", [new("nope", "1"), new("family", "x")], strict: false);
        Assert.Single(parsed.Query.Criteria);
        Assert.Single(parsed.Ignored);
        var ex = Assert.Throws<SearchException>(() => _parser.Parse("Patient", [new("nope", "1")], strict: true));
        Assert.Contains("nope", ex.Message);
    }

    [Fact]
    public void EscapedCommas_StayInTheValue()
    {
        var parsed = _parser.Parse("Patient", [new("family", @"a\,b,c")], strict: true);
        Assert.Equal(2, parsed.Query.Criteria[0].Values.Count);
        Assert.Equal("a,b", parsed.Query.Criteria[0].Values[0].Text);
    }

    [Fact]
    public void BadValues_AreSearchExceptionsNamingTheProblem()
    {
        Assert.Contains("date", Assert.Throws<SearchException>(() => _parser.Parse("Patient", [new("birthdate", "soon")], strict: false)).Message);
        Assert.Contains("_count", Assert.Throws<SearchException>(() => _parser.Parse("Patient", [new("_count", "-1")], strict: false)).Message);
        Assert.Contains("sort", Assert.Throws<SearchException>(() => _parser.Parse("Patient", [new("_sort", "family")], strict: false)).Message);
    }
}

public sealed class SyntheticDataGeneratorTests
{
    [Fact]
    public void SameSeed_SameResources_AndEveryResourceIsValid()
    {
        var a = new SyntheticDataGenerator(5).Generate(3).Select(FhirJson.Serialize).ToList();
        var b = new SyntheticDataGenerator(5).Generate(3).Select(FhirJson.Serialize).ToList();
        var c = new SyntheticDataGenerator(6).Generate(3).Select(FhirJson.Serialize).ToList();
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        foreach (var json in a)
        {
            FhirJson.ParseResource(System.Text.Encoding.UTF8.GetBytes(json), strict: true);
        }

        var types = new SyntheticDataGenerator(5).Generate(3).Select(r => r.TypeName).ToHashSet();
        Assert.Superset(new HashSet<string> { "Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "Claim", "Group", "Organization", "Practitioner" }, types);
    }
}

public sealed class LoadKeysTests
{
    [Fact]
    public async System.Threading.Tasks.Task KeysWithTheSameHash_AreTellApartByTheStoredKey_AndKeptExactly()
    {
        // Every key hashes alike: each match must be confirmed against what is stored under its key.
        var keys = new LoadKeys((_, _) => 42);
        var stored = new Dictionary<long, (string Type, string Id)>();
        System.Threading.Tasks.Task<(string Type, string Id)?> KeyOf(long seq) => System.Threading.Tasks.Task.FromResult<(string, string)?>(stored.TryGetValue(seq, out var k) ? k : null);
        long seq = 0;
        async System.Threading.Tasks.Task<Dictionary<(string Type, string Id), int>> Write(params (string Type, string Id)[] batch)
        {
            var found = await keys.LookupAsync(batch.Distinct().ToList(), KeyOf);
            var versions = new Dictionary<(string Type, string Id), int>();
            foreach (var key in batch)
            {
                var version = (versions.TryGetValue(key, out var v) ? v : found.TryGetValue(key, out var f) ? f.Number : 0) + 1;
                versions[key] = version;
                stored[++seq] = key;
                keys.Record(key, new LoadKeys.Version(seq, version, false));
            }

            return versions;
        }

        Assert.Equal(1, (await Write(("Patient", "a"), ("Patient", "b")))[("Patient", "a")]);
        Assert.Equal(2, (await Write(("Patient", "a")))[("Patient", "a")]);
        Assert.Equal(2, (await Write(("Patient", "b")))[("Patient", "b")]);
        Assert.Equal(1, (await Write(("Patient", "c")))[("Patient", "c")]);
        Assert.Equal(1, (await Write(("Observation", "a")))[("Observation", "a")]);
        Assert.Equal(2, (await Write(("Patient", "c")))[("Patient", "c")]);
        Assert.Equal(3, (await Write(("Patient", "a")))[("Patient", "a")]);
        Assert.Equal(2, (await Write(("Observation", "a")))[("Observation", "a")]);
    }
}

public sealed class DerivedParameterMatchTests
{
    [Fact]
    public void InMemoryMatch_OfAUnionParameter_ReadsItsSourcesRows()
    {
        var registry = SearchParameterRegistry.Instance;
        var matcher = new InMemorySearchMatcher(new IndexExtractor(registry));
        var parser = new SearchQueryParser(registry);
        var observation = new Observation
        {
            Id = "bp",
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", "85354-9"),
            Component = [new Observation.ComponentComponent { Code = new CodeableConcept("http://loinc.org", "8480-6"), Value = new Quantity(120, "mm[Hg]") }],
        };
        bool Matches(string name, string value) =>
            matcher.Matches(parser.Parse("Observation", [new(name, value)], strict: true, defaultCount: 10).Query, observation);

        Assert.True(Matches("combo-code", "8480-6"));
        Assert.True(Matches("combo-code", "http://loinc.org|85354-9"));
        Assert.False(Matches("code", "8480-6"));
        Assert.False(Matches("combo-code", "1234-5"));
        Assert.True(Matches("combo-code:missing", "false"));
    }
}
