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
