namespace Helios.Export.Requests;

/// <summary>
/// A validated kick-off, persisted with the job. Parameters not yet supported are refused (strict) or listed in
/// <see cref="Ignored"/> (lenient) by the parser; new parameters get new properties here.
/// </summary>
public sealed record ExportRequest
{
    public required ExportLevel Level { get; init; }

    /// <summary>The Group id for <see cref="ExportLevel.Group"/>.</summary>
    public string? GroupId { get; init; }

    /// <summary><c>_type</c>: the types asked for, or null for every type the level covers.</summary>
    public IReadOnlyList<string>? Types { get; init; }

    /// <summary><c>_typeFilter</c>: per type, the queries a resource must match one of; types without one are
    /// exported whole. Null when none was given.</summary>
    public IReadOnlyList<ExportTypeFilter>? TypeFilters { get; init; }

    /// <summary><c>_elements</c>: <c>Type.element</c> or <c>element</c> (every type that has it), root elements. A
    /// type to which none applies is exported whole; the others keep these, their mandatory elements, <c>id</c> and <c>meta</c>, and
    /// are tagged SUBSETTED.</summary>
    public IReadOnlyList<string>? Elements { get; init; }

    /// <summary>The elements that apply to <paramref name="type"/> (its own, and bare ones it has), or null when none does.</summary>
    public IReadOnlyList<string>? ElementsFor(string type)
    {
        if (Elements is null)
        {
            return null;
        }

        var prefix = type + ".";
        var applying = Elements.Where(e => !e.Contains('.', StringComparison.Ordinal) || e.StartsWith(prefix, StringComparison.Ordinal))
            .Select(e => e.StartsWith(prefix, StringComparison.Ordinal) ? e[prefix.Length..] : e)
            .Where(e => Storage.Fhir.ElementsProjection.IsRootElement(type, e)).ToList();
        return applying.Count > 0 ? applying : null;
    }

    /// <summary><c>includeAssociatedData</c>: values of <see cref="Requests.AssociatedData"/>, or null.</summary>
    public IReadOnlyList<string>? AssociatedData { get; init; }

    /// <summary><c>allowPartialManifests</c> (STU3): while the export runs, status polls may answer with manifest pages
    /// of the files committed so far, each linking to the next.</summary>
    public bool AllowPartialManifests { get; init; }

    /// <summary><c>organizeOutputBy</c> (STU3): <c>Patient</c> or null. Files then hold one block per patient (a
    /// header, the Patient, its compartment's resources), a block never split across files.</summary>
    public string? OrganizeOutputBy { get; init; }

    /// <summary><c>patient</c> (Patient and Group level): only these patients' compartments (ids).</summary>
    public IReadOnlyList<string>? Patients { get; init; }

    /// <summary><c>_since</c>: only resources last updated after this instant.</summary>
    public DateTimeOffset? Since { get; init; }

    /// <summary><c>_until</c> (Bulk Data STU3): the export is the data as it was at this instant (inclusive), or at
    /// the transaction time when that is earlier.</summary>
    public DateTimeOffset? Until { get; init; }

    /// <summary><c>_outputFormat</c>, normalized (always NDJSON today).</summary>
    public string OutputFormat { get; init; } = ExportFormats.FhirNdjson;

    /// <summary>Parameters ignored under <c>Prefer: handling=lenient</c>, each with why; reported in the manifest's error files.</summary>
    public IReadOnlyList<string> Ignored { get; init; } = [];
}
