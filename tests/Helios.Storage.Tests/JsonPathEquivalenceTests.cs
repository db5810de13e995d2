using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Helios.Storage.Synthetic;

namespace Helios.Storage.Tests;

/// <summary>
/// The bulk path reads resources as JSON (<see cref="JsonResource"/>, <see cref="JsonIndexExtractor"/>) while REST
/// writes go through the SDK's POCOs (<see cref="FhirJson"/>, <see cref="IndexExtractor"/>). These tests hold the
/// two paths to the same answers: every resource accepted by one is accepted by the other, with the same index rows
/// and the same stored content.
/// </summary>
public sealed class JsonPathEquivalenceTests
{
    private static readonly IndexExtractor s_poco = new(SearchParameterRegistry.Instance);
    private static readonly JsonIndexExtractor s_json = new(SearchParameterRegistry.Instance);

    /// <summary>Hand-made resources for what generated data lacks: choice types, primitive companions (<c>_given</c>),
    /// contained resources, Money, Timing, bound codes, Patient.deceased (an expression the SDK evaluates), a Bundle.</summary>
    public static readonly string[] Fixtures =
    [
        """{"resourceType":"Patient","id":"f1","meta":{"profile":["http://example.org/p"],"versionId":"9","lastUpdated":"2001-01-01T00:00:00Z","tag":[{"system":"s","code":"t"}]},"name":[{"family":"Zoë","given":["Ann",null,"Bo"],"_given":[null,{"extension":[{"url":"http://e","valueString":"x"}]},null],"prefix":["Dr"],"text":"Dr Ann Zoë"}],"gender":"female","birthDate":"1970-03","deceasedDateTime":"2020-01-02T03:04:05+01:00","address":[{"line":["1 Main St","Apt 2"],"city":"Springfield","state":"MA","postalCode":"01101","country":"US","period":{"start":"2000"}}],"telecom":[{"system":"phone","value":"555-1234","use":"home"},{"value":"no system"}],"identifier":[{"system":"urn:ssn","value":"123"},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"value":"mr-1"}],"active":true,"multipleBirthInteger":2,"generalPractitioner":[{"reference":"Practitioner/pr1"}],"managingOrganization":{"reference":"http://other.org/fhir/Organization/o1"},"link":[{"other":{"reference":"Patient/f2"},"type":"seealso"}],"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"en-US"}],"text":"English"}}]}""",
        """{"resourceType":"Patient","id":"f2","deceasedBoolean":false,"gender":"other","_gender":{"extension":[{"url":"http://e","valueCode":"x"}]}}""",
        """{"resourceType":"Patient","id":"f3","deceasedBoolean":true,"_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}}""",
        """{"resourceType":"Observation","id":"o1","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"HR"},"subject":{"reference":"Patient/f1"},"encounter":{"reference":"urn:uuid:0b9f4b1e-1111-2222-3333-444455556666"},"effectivePeriod":{"start":"2020-01-01T10:00:00Z","end":"2020-01-01T11:00:00Z"},"issued":"2020-01-01T12:00:00.123Z","valueQuantity":{"value":72.50,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"text":"note"},"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"1234"}]}},{"code":{"text":"s"},"valueString":"hello"}],"performer":[{"reference":"#pr","display":"contained"}],"contained":[{"resourceType":"Practitioner","id":"pr","name":[{"family":"Inner"}]}],"hasMember":[{"type":"Observation","identifier":{"value":"x"}}]}""",
        """{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"t"},"subject":{"reference":"Patient/f2/_history/3"},"effectiveDateTime":"2021-06","valueBoolean":true}""",
        """{"resourceType":"Observation","id":"o3","status":"final","code":{"text":"t"},"subject":{"type":"Group","reference":"Group/g1"},"effectiveInstant":"2021-06-01T00:00:00Z","valueRange":{"low":{"value":1},"high":{"value":2}}}""",
        """{"resourceType":"Claim","id":"c1","status":"active","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"institutional"}]},"use":"claim","patient":{"reference":"Patient/f1"},"created":"2020-01-01","provider":{"reference":"Organization/o1"},"priority":{"coding":[{"code":"normal"}]},"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/cv1"}}],"item":[{"sequence":1,"productOrService":{"text":"x"},"net":{"value":12.30,"currency":"USD"},"servicedDate":"2020-01-01","encounter":[{"reference":"Encounter/e1"}]}],"total":{"value":12.3,"currency":"USD"}}""",
        """{"resourceType":"MedicationRequest","id":"m1","status":"active","intent":"order","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"313782"}]},"subject":{"reference":"Patient/f1"},"authoredOn":"2020-02-02T10:00:00-05:00","dosageInstruction":[{"timing":{"event":["2020-02-02","2020-02-03T08:00:00Z"],"repeat":{"frequency":1,"period":1,"periodUnit":"d","boundsDuration":{"value":5,"unit":"d","system":"http://unitsofmeasure.org","code":"d"}}},"doseAndRate":[{"doseQuantity":{"value":1,"unit":"tablet"}}]}]}""",
        """{"resourceType":"Condition","id":"cd1","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/f1"},"onsetAge":{"value":40,"unit":"a","system":"http://unitsofmeasure.org","code":"a"},"abatementString":"later","recordedDate":"2019","evidence":[{"detail":[{"reference":"Observation/o1"}]}]}""",
        """{"resourceType":"Bundle","id":"b1","type":"collection","timestamp":"2020-01-01T00:00:00Z","identifier":{"system":"urn:b","value":"1"},"entry":[{"fullUrl":"urn:uuid:6f1c2e9a-1b2c-4d5e-8f90-a1b2c3d4e5f6","resource":{"resourceType":"Patient","id":"inner","gender":"male"}}]}""",
        """{"resourceType":"Group","id":"g1","type":"person","actual":true,"quantity":2,"member":[{"entity":{"reference":"Patient/f1"},"period":{"start":"2020"},"inactive":false},{"entity":{"reference":"Patient/f2"}}],"characteristic":[{"code":{"text":"c"},"valueQuantity":{"value":3.0,"unit":"x"},"exclude":false}]}""",
        """{"resourceType":"Coverage","id":"cv1","status":"active","beneficiary":{"reference":"Patient/f1"},"payor":[{"reference":"Organization/o1"}],"class":[{"type":{"coding":[{"code":"group"}]},"value":"G1"}],"costToBeneficiary":[{"valueMoney":{"value":10,"currency":"USD"}}]}""",
        """{"resourceType":"ValueSet","id":"vs1","url":"http://example.org/vs","version":"1","status":"draft","date":"2020-01-01T00:00:00Z","useContext":[{"code":{"system":"http://terminology.hl7.org/CodeSystem/usage-context-type","code":"focus"},"valueCodeableConcept":{"coding":[{"code":"x"}]}},{"code":{"code":"age"},"valueQuantity":{"value":18,"code":"a"}}],"jurisdiction":[{"coding":[{"system":"urn:iso:std:iso:3166","code":"US"}]}],"compose":{"include":[{"system":"http://loinc.org"}]}}""",
        // Elements before resourceType, id and meta, spaces between tokens, an escaped property name: the stored text
        // is cut around them, not re-serialized.
        """{ "text" : {"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"} , "resourceType":"Patient", "active" : true, "id":"f4", "meta":{"source":"s","versionId":"2"}, "gender":"male" , "birthDate":"2000-02-29" }""",
        """{"resourceType":"Patient","id":"f5","\u0067ender":"female","birthDate":"1999-12-31","meta":{"tag":[{"code":"t"}]}}""",
        """{"resourceType":"Patient","meta":{"lastUpdated":"2001-01-01T00:00:00Z"},"id":"f6"}""",
        // Date and time shapes at the edges of the fast check (the SDK decides what it does not know).
        """{"resourceType":"Observation","id":"o4","status":"final","code":{"text":"t"},"effectiveDateTime":"2019-02-29","issued":"2020-01-01T10:00:00.123456789+14:00"}""",
        """{"resourceType":"Observation","id":"o5","status":"final","code":{"text":"t"},"effectiveDateTime":"2016-12-31T23:59:60Z","valueTime":"24:00:00"}""",
        """{"resourceType":"Observation","id":"o6","status":"final","code":{"text":"t"},"effectiveDateTime":"0999-01-01","valueDateTime":"2020-06-15T08:30:00-14:00"}""",
        """{"resourceType":"Observation","id":"o7","status":"final","code":{"text":"t"},"effectiveDateTime":"2020-06-15T08:30Z","valueTime":"08:30:00.5"}""",
    ];

    [Fact]
    public void FastDateCheck_NeverAcceptsWhatTheSdkRefuses()
    {
        string[] years = ["0000", "0001", "0999", "1000", "1900", "1970", "2000", "2019", "2020", "2100", "9999", "20x0"];
        string[] months = ["00", "01", "02", "04", "12", "13"];
        string[] days = ["00", "01", "28", "29", "30", "31", "32"];
        string[] times = ["00:00:00", "23:59:59", "24:00:00", "23:60:00", "23:59:60", "12:30:45.1", "12:30:45.1234567", "12:30:45.12345678", "12:30:45.", "1:02:03", "12:30"];
        string[] zones = ["Z", "+00:00", "-05:00", "+13:59", "+14:00", "+14:01", "-14:00", "+15:00", "z", "+0500", ""];
        var dates = new List<string>();
        foreach (var y in years)
        {
            dates.Add(y);
            foreach (var m in months)
            {
                dates.Add($"{y}-{m}");
                dates.AddRange(days.Select(d => $"{y}-{m}-{d}"));
            }
        }

        var dateTimes = dates.Where(d => d.Length == 10).SelectMany(d => times.SelectMany(t => zones.Select(z => $"{d}T{t}{z}"))).ToList();
        var accepted = 0;
        void Check(string text, FhirDateText.Kind kind, Func<string, bool> sdk)
        {
            if (FhirDateText.IsCertainlyValid(Encoding.UTF8.GetBytes(text), kind))
            {
                accepted++;
                Assert.True(sdk(text), $"the fast check accepts the {kind} '{text}', the SDK does not");
            }
        }

        foreach (var text in dates.Concat(dateTimes))
        {
            Check(text, FhirDateText.Kind.Date, Hl7.Fhir.Model.Date.IsValidValue);
            Check(text, FhirDateText.Kind.DateTime, Hl7.Fhir.Model.FhirDateTime.IsValidValue);
            Check(text, FhirDateText.Kind.Instant, Hl7.Fhir.Model.Instant.IsValidValue);
        }

        foreach (var text in times.Concat(dateTimes))
        {
            Check(text, FhirDateText.Kind.Time, Hl7.Fhir.Model.Time.IsValidValue);
        }

        // It does know the common shapes (else it would be no faster).
        Assert.True(accepted > 1000, $"the fast check accepted only {accepted} values");
        Assert.True(FhirDateText.IsCertainlyValid("2020-02-29"u8, FhirDateText.Kind.Date));
        Assert.False(FhirDateText.IsCertainlyValid("2019-02-29"u8, FhirDateText.Kind.Date));
        Assert.True(FhirDateText.IsCertainlyValid("2020-01-01T10:00:00.123+01:00"u8, FhirDateText.Kind.DateTime));
        Assert.True(FhirDateText.IsCertainlyValid("2020-01-01T10:00:00Z"u8, FhirDateText.Kind.Instant));
        Assert.False(FhirDateText.IsCertainlyValid("2020-01-01"u8, FhirDateText.Kind.Instant));
    }

    [Fact]
    public void HandMadeFixtures_GiveTheSameIndexRows_AndTheSameContent()
    {
        foreach (var text in Fixtures)
        {
            AssertEquivalent(text);
        }
    }

    /// <summary>Documents the bulk path must refuse, as REST's strict SDK parse does. (The SDK's lenient parse, which
    /// the bulk path used before, let the unknown choice suffix and the unknown resource type through.)</summary>
    public static readonly TheoryData<string> Refused = new()
    {
        """{"resourceType":"Patient","id":"a","gender":"male","gender":"female"}""",
        """{"resourceType":"Patient","id":"a","name":[{"family":"x","family":"y"}]}""",
        """{"resourceType":"Patient","id":"a","hair":"red"}""",
        """{"resourceType":"Patient","id":"a","active":"yes"}""",
        """{"resourceType":"Patient","id":"a","birthDate":"1970-13-01"}""",
        """{"resourceType":"Patient","id":"a","gender":["male"]}""",
        """{"resourceType":"Observation","id":"o","status":"final","code":{"text":"t"},"valueBanana":1}""",
        """{"resourceType":"Observation","id":"o","status":"final","code":{"text":"t"},"component":[{"code":{"text":"c"},"valueQuantity":{"value":"1"}}]}""",
        """{"resourceType":"Observation","id":"o","status":"final","code":"text"}""",
        """{"resourceType":"Patient","id":"a","contained":[{"resourceType":"Practitioner","id":"p","hair":"red"}]}""",
        """{"resourceType":"NotAType","id":"a"}""",
        """{"id":"a"}""",
        """{"resourceType":"Patient","id":"a",}""",
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void BadDocuments_AreRefusedLikeRestRefusesThem(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        Assert.Throws<FhirParseException>(() => FhirJson.ParseResource(bytes, strict: true));
        using var json = JsonResource.TryParse(bytes, out var issues);
        Assert.Null(json);
        Assert.NotEmpty(issues);
    }

    [Fact]
    public void GeneratedData_GivesTheSameIndexRows_AndTheSameContent()
    {
        var count = 0;
        foreach (var resource in new SyntheticDataGenerator(seed: 7).Generate(25))
        {
            AssertEquivalent(FhirJson.Serialize(resource));
            count++;
        }

        Assert.True(count > 400, $"only {count} resources generated");
    }

    [SharedDataFact]
    public void SharedSyntheaAndUsCoreData_GiveTheSameIndexRows_AndTheSameContent()
    {
        var count = 0;
        foreach (var text in SharedData.AllResourceLines())
        {
            AssertEquivalent(text);
            count++;
        }

        Assert.True(count > 10_000, $"only {count} resources read from the shared data");
    }

    private static void AssertEquivalent(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        Hl7.Fhir.Model.Resource poco;
        try
        {
            poco = FhirJson.ParseResource(bytes, strict: false);
        }
        catch (FhirParseException ex)
        {
            using var refused = JsonResource.TryParse(bytes, out var reasons);
            Assert.True(refused is null, $"The JSON path accepted what the SDK refuses ({string.Join("; ", ex.Issues)}):\n{Shorten(text)}");
            Assert.NotEmpty(reasons);
            return;
        }

        using var json = JsonResource.TryParse(bytes, out var issues);
        Assert.True(json is not null, $"The JSON path refused what the SDK accepts: {string.Join("; ", issues)}\n{Shorten(text)}");
        Assert.Equal(poco.TypeName, json.Type);
        Assert.Equal(poco.Id, json.Id);

        var expected = Rows(s_poco.Extract(poco));
        var actual = Rows(s_json.Extract(json));
        Assert.True(expected.SequenceEqual(actual),
            $"{poco.TypeName}/{poco.Id}: index rows differ.\nonly POCO: {string.Join(" | ", expected.Except(actual))}\nonly JSON: {string.Join(" | ", actual.Except(expected))}");

        // The stored text carries the assigned version and instant first, and otherwise the input's content.
        var stored = json.Compose(4, new DateTimeOffset(2026, 11, 26, 12, 0, 0, 123, TimeSpan.Zero));
        var reparsed = FhirJson.ParseResource(stored, strict: false);
        Assert.Equal("4", reparsed.Meta.VersionId);
        Assert.Equal(new DateTimeOffset(2026, 11, 26, 12, 0, 0, 123, TimeSpan.Zero), reparsed.Meta.LastUpdated);
        poco.Meta ??= new Hl7.Fhir.Model.Meta();
        poco.Meta.VersionId = "4";
        poco.Meta.LastUpdated = reparsed.Meta.LastUpdated;
        Assert.Equal(FhirJson.Serialize(poco), FhirJson.Serialize(reparsed));
    }

    private static List<string> Rows(IndexEntries e) =>
        e.Tokens.Select(t => $"T {t.Param} {t.System}|{t.Code}")
            .Concat(e.Strings.Select(s => $"S {s.Param} {s.Normalized} {s.Exact}"))
            .Concat(e.References.Select(r => $"R {r.Param} {r.TargetType}/{r.TargetId}"))
            .Concat(e.Dates.Select(d => $"D {d.Param} {d.Low} {d.High}"))
            .Concat(e.Numbers.Select(n => $"N {n.Param} {n.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)}"))
            .Concat(e.Quantities.Select(q => $"Q {q.Param} {q.System}|{q.Code} {q.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)}"))
            .Concat(e.Uris.Select(u => $"U {u.Param} {u.Value}"))
            .Concat(e.Compartments.Select(c => $"C {c}"))
            .Order(StringComparer.Ordinal).ToList();

    private static string Shorten(string text) => text.Length > 600 ? text[..600] + "..." : text;
}

/// <summary>Resources of the third-party sets in <c>shared/data</c> (Synthea NDJSON, US Core bundles), when present.</summary>
internal static class SharedData
{
    public static readonly string? Root = Find();

    private static string? Find()
    {
        if (Environment.GetEnvironmentVariable("HELIOS_SHARED_DATA") is { Length: > 0 } configured)
        {
            return Directory.Exists(configured) ? configured : null;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "data");
            if (Directory.Exists(Path.Combine(candidate, "synthea-r4-100")))
            {
                return candidate;
            }
        }

        return null;
    }

    public static IEnumerable<string> AllResourceLines()
    {
        foreach (var set in new[] { "synthea-r4-100", "synthea-uscore-hiv-79", "synthea-uscore-bulk-10" })
        {
            var dir = Path.Combine(Root!, set, "ndjson");
            if (!Directory.Exists(dir))
            {
                continue;
            }

            foreach (var file in Directory.GetFiles(dir, "*.ndjson*").Order(StringComparer.Ordinal))
            {
                using Stream raw = File.OpenRead(file);
                using var stream = file.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(raw, CompressionMode.Decompress) : raw;
                using var reader = new StreamReader(stream);
                while (reader.ReadLine() is { } line)
                {
                    if (!string.IsNullOrWhiteSpace(line))
                    {
                        yield return line;
                    }
                }
            }
        }

        var inferno = Path.Combine(Root!, "inferno-uscore", "resources");
        if (Directory.Exists(inferno))
        {
            foreach (var file in Directory.GetFiles(inferno, "*.json").Order(StringComparer.Ordinal))
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(file));
                if (doc.RootElement.TryGetProperty("entry", out var entries))
                {
                    foreach (var entry in entries.EnumerateArray())
                    {
                        if (entry.TryGetProperty("resource", out var resource))
                        {
                            yield return resource.GetRawText();
                        }
                    }
                }
            }
        }
    }
}

public sealed class SharedDataFactAttribute : FactAttribute
{
    public SharedDataFactAttribute()
    {
        if (SharedData.Root is null)
        {
            Skip = "shared/data (Synthea and US Core sets) was not found above the test directory or at HELIOS_SHARED_DATA.";
        }
    }
}
