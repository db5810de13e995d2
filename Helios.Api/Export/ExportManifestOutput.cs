using System.Text.Json.Serialization;

namespace Helios.Api.Export;

/// <summary>One file of an <see cref="ExportManifest"/>: its resource type (none when the output is organized by
/// patient), absolute URL and exact resource count.</summary>
public sealed record ExportManifestOutput(
    [property: JsonPropertyName("type"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Type,
    [property: JsonPropertyName("url")] string Url,
    [property: JsonPropertyName("count")] long Count);
