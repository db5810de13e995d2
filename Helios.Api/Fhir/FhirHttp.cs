using System.Globalization;
using System.Text;
using Helios.Hosting;
using Microsoft.Extensions.Options;

namespace Helios.Api.Fhir;

/// <summary>HTTP helpers of the FHIR endpoints: base URL, body reading, response writing.</summary>
internal static class FhirHttp
{
    public const string FhirJson = "application/fhir+json";

    public static string BaseUrl(HttpContext context)
    {
        var configured = context.RequestServices.GetRequiredService<IOptions<HeliosOptions>>().Value.BaseUrl;
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return configured.TrimEnd('/');
        }

        var request = context.Request;
        return $"{request.Scheme}://{request.Host}{request.PathBase}".TrimEnd('/');
    }

    public static async Task<string> ReadBodyAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var contentType = context.Request.ContentType;
        if (contentType is not null && !contentType.Contains("json", StringComparison.OrdinalIgnoreCase))
        {
            throw new FhirOperationException(415, $"Content-Type '{contentType}' is not supported: send application/fhir+json.", Hl7.Fhir.Model.OperationOutcome.IssueType.NotSupported);
        }

        var limit = context.RequestServices.GetRequiredService<IOptions<HeliosOptions>>().Value.MaxRequestBodyBytes;
        if (context.Request.ContentLength > limit)
        {
            throw TooLarge(limit);
        }

        // Kestrel enforces the limit too; this also covers chunked bodies and hosts without Kestrel.
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await context.Request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                throw TooLarge(limit);
            }

            buffer.Write(chunk, 0, read);
        }

        var body = Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
        if (string.IsNullOrWhiteSpace(body))
        {
            throw new FhirOperationException(400, "The request has no body; send a FHIR resource as application/fhir+json.", Hl7.Fhir.Model.OperationOutcome.IssueType.Required);
        }

        return body;
    }

    private static FhirOperationException TooLarge(long limit) => new(
        413,
        $"The request body is larger than this server accepts ({limit} bytes, Helios:MaxRequestBodyBytes). Split the data into smaller requests or use the bulk load path.",
        Hl7.Fhir.Model.OperationOutcome.IssueType.TooCostly);

    public static async Task WriteAsync(HttpContext context, FhirResponse response, CancellationToken cancellationToken)
    {
        var http = context.Response;
        http.StatusCode = response.Status;
        if (response.Location is not null)
        {
            http.Headers.Location = response.Location;
            if (response.Status == 201)
            {
                http.Headers.ContentLocation = response.Location;
            }
        }

        if (response.ETag is not null)
        {
            http.Headers.ETag = response.ETag;
        }

        if (response.LastModified is { } lm)
        {
            http.Headers.LastModified = lm.ToString("R", CultureInfo.InvariantCulture);
        }

        var body = response.Body;
        if (body is not null && response.Status < 400 && PreferMinimal(context))
        {
            body = null;
        }

        if (body is null)
        {
            return;
        }

        http.ContentType = FhirJson + "; charset=utf-8";
        await http.WriteAsync(body, Encoding.UTF8, cancellationToken);
    }

    private static bool PreferMinimal(HttpContext context) =>
        context.Request.Method is "POST" or "PUT" &&
        context.Request.Headers["Prefer"].Any(p => p is not null && p.Contains("return=minimal", StringComparison.OrdinalIgnoreCase));

    /// <summary><c>Prefer: handling=strict</c>; lenient is the default.</summary>
    public static bool IsStrict(HttpContext context) =>
        context.Request.Headers["Prefer"].Any(p => p is not null && p.Contains("handling=strict", StringComparison.OrdinalIgnoreCase));

    public static List<KeyValuePair<string, string>> QueryPairs(HttpContext context) =>
        context.Request.Query.SelectMany(q => q.Value.Select(v => new KeyValuePair<string, string>(q.Key, v ?? string.Empty))).ToList();
}
