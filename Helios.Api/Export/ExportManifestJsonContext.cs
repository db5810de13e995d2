using System.Text.Json.Serialization;

namespace Helios.Api.Export;

/// <summary>Source-generated serialization of the manifest (indented, as clients read it by eye too).</summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(ExportManifest))]
internal sealed partial class ExportManifestJsonContext : JsonSerializerContext;
