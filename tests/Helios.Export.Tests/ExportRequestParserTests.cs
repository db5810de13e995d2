using CsCheck;
using Helios.Storage.Indexing;
using Helios.Storage.Search;

namespace Helios.Export.Tests;

public sealed class ExportRequestParserTests
{
    private static readonly HashSet<string> Known = ["Patient", "Observation", "Organization", "Group"];
    private static readonly HashSet<string> Compartment = ["Patient", "Observation", "Group"];

    private static ExportRequest Parse(ExportLevel level, bool lenient, params (string, string)[] pairs) =>
        ExportRequestParser.Parse(level, null, pairs.Select(p => new KeyValuePair<string, string>(p.Item1, p.Item2)).ToList(), lenient, Known, Compartment, new SearchQueryParser(SearchParameterRegistry.Instance));

    [Fact]
    public void RepeatedTypes_AreOneList_AndFormatsAreNormalized()
    {
        var request = Parse(ExportLevel.System, false, ("_type", "Patient,Observation"), ("_type", "Organization, Patient"), ("_outputFormat", "ndjson"));
        Assert.Equal(["Patient", "Observation", "Organization"], request.Types);
        Assert.Equal("application/fhir+ndjson", request.OutputFormat);
        Assert.Equal("application/fhir+ndjson", Parse(ExportLevel.System, false, ("_outputFormat", "application/fhir ndjson")).OutputFormat);
    }

    [Theory]
    [InlineData("2024-01-31T12:00:00Z")]
    [InlineData("2024-01-31T12:00:00.123+02:00")]
    [InlineData("2024-01-31T12:00:00 02:00")]
    public void Since_AcceptsInstants(string value) =>
        Assert.Equal(DateTimeOffset.Parse(value.Replace(' ', '+'), System.Globalization.CultureInfo.InvariantCulture), Parse(ExportLevel.System, false, ("_since", value)).Since);

    [Theory]
    [InlineData("_since", "2024-01-31")]
    [InlineData("_since", "2024-01-31T12:00:00")]
    [InlineData("_type", "Nope")]
    [InlineData("_elements", "Patient.name.given")]
    [InlineData("_typeFilter", "Patient?no-such-parameter=true")]
    [InlineData("organizeOutputBy", "Encounter")]
    [InlineData("allowPartialManifests", "yes")]
    [InlineData("includeAssociatedData", "_everything")]
    [InlineData("bogus", "1")]
    public void Strict_RefusesWithAMessage_Lenient_IgnoresAndRecords(string name, string value)
    {
        var refused = Assert.Throws<ExportRequestException>(() => Parse(ExportLevel.System, false, (name, value)));
        Assert.Contains(name == "_type" ? value : name, refused.Message);
        var lenient = Parse(ExportLevel.System, true, (name, value));
        Assert.Contains(lenient.Ignored, i => i.Contains(name == "_type" ? value : name, StringComparison.Ordinal));
    }

    [Fact]
    public void PatientLevel_RefusesTypesOutsideTheCompartment()
    {
        Assert.Contains("compartment", Assert.Throws<ExportRequestException>(() => Parse(ExportLevel.Patient, false, ("_type", "Organization"))).Message);
        Assert.Equal(["Observation"], Parse(ExportLevel.Group, true, ("_type", "Organization,Observation")).Types);
    }

    [Fact]
    public void UnsupportedOutputFormat_IsAlwaysRefused() =>
        Assert.Throws<ExportRequestException>(() => Parse(ExportLevel.System, true, ("_outputFormat", "text/csv")));

    [Fact]
    public void Until_IsAnInstant_NotBeforeSince()
    {
        var request = Parse(ExportLevel.System, false, ("_since", "2024-01-01T00:00:00Z"), ("_until", "2024-02-01T00:00:00.5 01:00"));
        Assert.Equal(new DateTimeOffset(2024, 2, 1, 0, 0, 0, 500, TimeSpan.FromHours(1)), request.Until);
        Assert.Contains("_until", Assert.Throws<ExportRequestException>(() => Parse(ExportLevel.System, false, ("_until", "2024-02-01"))).Message);
        Assert.Contains("earlier than _since", Assert.Throws<ExportRequestException>(() =>
            Parse(ExportLevel.System, true, ("_since", "2024-03-01T00:00:00Z"), ("_until", "2024-02-01T00:00:00Z"))).Message);
    }

    [Fact]
    public void Patient_TakesPatientReferences_OnPatientAndGroupLevelOnly()
    {
        var request = Parse(ExportLevel.Group, false, ("patient", "Patient/a"), ("patient", "http://example.org/fhir/Patient/b"), ("patient", "Patient/a"));
        Assert.Equal(["a", "b"], request.Patients);
        Assert.Contains("Patient reference", Assert.Throws<ExportRequestException>(() => Parse(ExportLevel.Patient, false, ("patient", "Group/x"))).Message);
        Assert.Contains("Patient- and Group-level", Assert.Throws<ExportRequestException>(() => Parse(ExportLevel.System, false, ("patient", "Patient/a"))).Message);
        Assert.Null(Parse(ExportLevel.Patient, false).Patients);
    }

    [Fact]
    public void TypeFilter_SplitsCommaJoinedQueries_ButNotCommasInsideValues()
    {
        var request = Parse(ExportLevel.System, false,
            ("_typeFilter", "Observation?code=http://loinc.org|4548-4,http://loinc.org|2345-7&status=final,Patient?gender=female"),
            ("_typeFilter", "Observation?value-quantity=gt100"));
        Assert.Equal(3, request.TypeFilters!.Count);
        Assert.Equal([new("code", "http://loinc.org|4548-4,http://loinc.org|2345-7"), new("status", "final")], request.TypeFilters[0].Parameters);
        Assert.Equal("Patient", request.TypeFilters[1].Type);
        Assert.Equal("Observation?value-quantity=gt100", request.TypeFilters[2].ToString());

        // Percent-encoded parts of a query are decoded once more (the IG's double encoding of '&' and '=' in values).
        Assert.Equal("a&b", Parse(ExportLevel.System, false, ("_typeFilter", "Patient?name=a%26b")).TypeFilters![0].Parameters[0].Value);
    }

    [Fact]
    public void TypeFilter_RefusesResultParameters_EvenWhenLenient_AndDropsFiltersOfTypesNotRequested()
    {
        Assert.Contains("_sort", Assert.Throws<ExportRequestException>(() => Parse(ExportLevel.System, true, ("_typeFilter", "Observation?_sort=date"))).Message);
        var request = Parse(ExportLevel.System, false, ("_type", "Patient"), ("_typeFilter", "Observation?status=final"), ("_typeFilter", "Patient?gender=male"));
        Assert.Equal("Patient", Assert.Single(request.TypeFilters!).Type);
        Assert.Contains(request.Ignored, i => i.Contains("Observation?status=final", StringComparison.Ordinal));
    }

    [Fact]
    public void TypeFilter_Lenient_KeepsOnlyTheParametersTheSearchParserTook()
    {
        var request = Parse(ExportLevel.System, true, ("_typeFilter", "Patient?gender=male&no-such=1"));
        Assert.Equal([new("gender", "male")], request.TypeFilters![0].Parameters);
        Assert.Contains(request.Ignored, i => i.Contains("no-such", StringComparison.Ordinal));
    }

    /// <summary>Any text a client sends as a _typeFilter is accepted or refused with a message, never anything else.</summary>
    [Fact]
    public void TypeFilter_AnyText_IsParsedOrRefused()
    {
        var name = Gen.OneOf("Observation", "Patient", "Organization", "Nope", "", "observation");
        var parameter = Gen.OneOf("code", "status", "value-quantity", "date", "subject", "_id", "_lastUpdated", "gender", "_sort", "x", "code:text", "date:missing", "");
        var value = Gen.OneOf(Gen.String, Gen.OneOf("gt100", "http://loinc.org|4548-4", "2024-01-01", "Patient/1", "%", "%zz", "a,b", "le2020", "true", ""));
        var query = Gen.Select(name, Gen.Select(parameter, value).Select((p, v) => p + "=" + v).Array[0, 4], Gen.OneOf("?", "", "??", "&"))
            .Select((n, ps, q) => n + q + string.Join("&", ps));
        Gen.Select(query.Array[1, 3], Gen.Bool, Gen.OneOf(ExportLevel.System, ExportLevel.Patient, ExportLevel.Group)).Sample((queries, lenient, level) =>
        {
            try
            {
                var request = Parse(level, lenient, queries.Select(q => ("_typeFilter", q)).ToArray());
                Assert.All(request.TypeFilters ?? [], f => Assert.Contains(f.Type, Known));
            }
            catch (ExportRequestException ex)
            {
                Assert.Contains("_typeFilter", ex.Message, StringComparison.Ordinal);
            }
        }, iter: 10_000);
    }
}
