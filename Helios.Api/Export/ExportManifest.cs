using System.Text.Json.Serialization;

namespace Helios.Api.Export;

/// <summary>The Bulk Data complete-status body (IG v2.0.0): what was exported as of <see cref="TransactionTime"/>.</summary>
public sealed record ExportManifest(
    [property: JsonPropertyName("transactionTime")] string TransactionTime,
    [property: JsonPropertyName("request")] string Request,
    [property: JsonPropertyName("requiresAccessToken")] bool RequiresAccessToken,
    [property: JsonPropertyName("output")] IReadOnlyList<ExportManifestOutput> Output,
    [property: JsonPropertyName("deleted")] IReadOnlyList<ExportManifestOutput> Deleted,
    [property: JsonPropertyName("error")] IReadOnlyList<ExportManifestOutput> Error)
{
    /// <summary>With <c>organizeOutputBy</c>: the resource type the output files are organized by.</summary>
    [JsonPropertyName("outputOrganizedBy")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? OutputOrganizedBy { get; init; }

    /// <summary>With <c>allowPartialManifests</c>: the next manifest page, once it exists.</summary>
    [JsonPropertyName("link")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ExportManifestLink>? Link { get; init; }
}

/// <summary>A manifest link (Bulk Data STU3): <c>relation</c> is always <c>next</c>.</summary>
public sealed record ExportManifestLink(
    [property: JsonPropertyName("relation")] string Relation,
    [property: JsonPropertyName("url")] string Url);
