using System.Globalization;
using System.Text;
using System.Text.Json;
using Helios.Storage;

namespace Helios.Api.Fhir;

/// <summary>Writes Bundles around stored resource JSON without re-serializing the resources.</summary>
internal static class BundleWriter
{
    private static readonly JsonWriterOptions s_writerOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public sealed record Entry(StoredResource Resource, string? SearchMode);

    public static string SearchSet(string selfUrl, string? nextUrl, long? total, IEnumerable<Entry> entries, string baseUrl, string? outcomeJson, DateTimeOffset now)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, s_writerOptions))
        {
            Header(w, "searchset", now);
            if (total is { } t)
            {
                w.WriteNumber("total", t);
            }

            Links(w, selfUrl, nextUrl);
            w.WriteStartArray("entry");
            foreach (var entry in entries)
            {
                w.WriteStartObject();
                w.WriteString("fullUrl", $"{baseUrl}/{entry.Resource.Type}/{entry.Resource.Id}");
                w.WritePropertyName("resource");
                w.WriteRawValue(entry.Resource.Json, skipInputValidation: true);
                w.WriteStartObject("search");
                w.WriteString("mode", entry.SearchMode ?? "match");
                w.WriteEndObject();
                w.WriteEndObject();
            }

            if (outcomeJson is not null)
            {
                w.WriteStartObject();
                w.WritePropertyName("resource");
                w.WriteRawValue(outcomeJson, skipInputValidation: true);
                w.WriteStartObject("search");
                w.WriteString("mode", "outcome");
                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public static string History(string selfUrl, string? nextUrl, IEnumerable<StoredResource> versions, string baseUrl, DateTimeOffset now)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, s_writerOptions))
        {
            Header(w, "history", now);
            Links(w, selfUrl, nextUrl);
            w.WriteStartArray("entry");
            foreach (var v in versions)
            {
                w.WriteStartObject();
                w.WriteString("fullUrl", $"{baseUrl}/{v.Type}/{v.Id}");
                if (!v.IsDeleted)
                {
                    w.WritePropertyName("resource");
                    w.WriteRawValue(v.Json, skipInputValidation: true);
                }

                w.WriteStartObject("request");
                w.WriteString("method", v.IsDeleted ? "DELETE" : v.VersionId == 1 ? "POST" : "PUT");
                w.WriteString("url", v.VersionId == 1 && !v.IsDeleted ? v.Type : $"{v.Type}/{v.Id}");
                w.WriteEndObject();
                w.WriteStartObject("response");
                w.WriteString("status", v.IsDeleted ? "204" : v.VersionId == 1 ? "201" : "200");
                w.WriteString("etag", FhirResponse.WeakETag(v.VersionId));
                w.WriteString("lastModified", v.LastUpdated.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffffzzz", CultureInfo.InvariantCulture));
                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>A batch-response or transaction-response.</summary>
    public static string Response(string type, IReadOnlyList<FhirResponse> responses, string baseUrl, DateTimeOffset now)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, s_writerOptions))
        {
            Header(w, type, now);
            w.WriteStartArray("entry");
            foreach (var r in responses)
            {
                w.WriteStartObject();
                var isResource = r.Body is not null && r.Status < 400;
                if (isResource && r.Location is not null)
                {
                    var historyAt = r.Location.IndexOf("/_history/", StringComparison.Ordinal);
                    w.WriteString("fullUrl", historyAt > 0 ? r.Location[..historyAt] : r.Location);
                }

                if (isResource)
                {
                    w.WritePropertyName("resource");
                    w.WriteRawValue(r.Body!, skipInputValidation: true);
                }

                w.WriteStartObject("response");
                w.WriteString("status", StatusLine(r.Status));
                if (r.Location is not null)
                {
                    w.WriteString("location", r.Location);
                }

                if (r.ETag is not null)
                {
                    w.WriteString("etag", r.ETag);
                }

                if (r.LastModified is { } lm)
                {
                    w.WriteString("lastModified", lm.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffffzzz", CultureInfo.InvariantCulture));
                }

                if (r.Body is not null && r.Status >= 400)
                {
                    w.WritePropertyName("outcome");
                    w.WriteRawValue(r.Body, skipInputValidation: true);
                }

                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static string StatusLine(int status) =>
        (status.ToString(CultureInfo.InvariantCulture) + " " + Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status)).TrimEnd();

    private static void Header(Utf8JsonWriter w, string type, DateTimeOffset now)
    {
        w.WriteStartObject();
        w.WriteString("resourceType", "Bundle");
        w.WriteString("id", Guid.NewGuid().ToString());
        w.WriteStartObject("meta");
        w.WriteString("lastUpdated", now.ToString("yyyy-MM-dd'T'HH:mm:ss.fffzzz", CultureInfo.InvariantCulture));
        w.WriteEndObject();
        w.WriteString("type", type);
    }

    private static void Links(Utf8JsonWriter w, string selfUrl, string? nextUrl)
    {
        w.WriteStartArray("link");
        w.WriteStartObject();
        w.WriteString("relation", "self");
        w.WriteString("url", selfUrl);
        w.WriteEndObject();
        if (nextUrl is not null)
        {
            w.WriteStartObject();
            w.WriteString("relation", "next");
            w.WriteString("url", nextUrl);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }
}
