using System.Text;
using Helios.Hosting;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Options;

namespace Helios.Api.Fhir;

/// <summary>What FHIR handlers read from a request: the base URL for links, a size-bounded body, the query as
/// name/value pairs and the <c>Prefer</c> handling.</summary>
public sealed class FhirRequestReader(IOptions<HeliosOptions> options)
{
    public const string FhirJson = "application/fhir+json";

    /// <summary>The configured public base URL, or the request's own scheme, host and path base.</summary>
    public string BaseUrl(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var configured = options.Value.BaseUrl;
        return !string.IsNullOrWhiteSpace(configured)
            ? configured.TrimEnd('/')
            : $"{request.Scheme}://{request.Host}{request.PathBase}".TrimEnd('/');
    }

    /// <summary>The body as text; 415 for a non-JSON content type, 413 past <see cref="HeliosOptions.MaxRequestBodyBytes"/>
    /// (checked while reading, so a chunked body is never buffered past the limit), 400 when empty unless
    /// <paramref name="allowEmpty"/>.</summary>
    public async Task<string> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken, bool allowEmpty = false)
    {
        ArgumentNullException.ThrowIfNull(request);
        var contentType = request.ContentType;
        if (contentType is not null && !contentType.Contains("json", StringComparison.OrdinalIgnoreCase))
        {
            throw new FhirOperationException(415, $"Content-Type '{contentType}' is not supported: send application/fhir+json.", OperationOutcome.IssueType.NotSupported);
        }

        var limit = options.Value.MaxRequestBodyBytes;
        if (request.ContentLength > limit)
        {
            throw TooLarge(limit);
        }

        // Kestrel enforces the limit too; this also covers chunked bodies and hosts without Kestrel.
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                throw TooLarge(limit);
            }

            buffer.Write(chunk, 0, read);
        }

        string body;
        try
        {
            body = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
        }
        catch (DecoderFallbackException)
        {
            throw new FhirOperationException(400, "The request body is not valid UTF-8; FHIR JSON must be sent as UTF-8.", OperationOutcome.IssueType.Structure);
        }

        if (string.IsNullOrWhiteSpace(body) && !allowEmpty)
        {
            throw new FhirOperationException(400, "The request has no body; send a FHIR resource as application/fhir+json.", OperationOutcome.IssueType.Required);
        }

        return body;
    }

    internal static FhirOperationException TooLarge(long limit) => new(
        413,
        $"The request body is larger than this server accepts ({limit} bytes, Helios:MaxRequestBodyBytes). Split the data into smaller requests or use the bulk load path.",
        OperationOutcome.IssueType.TooCostly);

    /// <summary><c>Prefer: handling=strict</c>; lenient is the default.</summary>
    public static bool IsStrict(HttpRequest request) => PreferHas(request, "handling=strict");

    /// <summary>Whether a <c>Prefer</c> header value contains <paramref name="token"/> (case-insensitive).</summary>
    public static bool PreferHas(HttpRequest request, string token)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request.Headers["Prefer"].Any(p => p is not null && p.Contains(token, StringComparison.OrdinalIgnoreCase));
    }

    public static List<KeyValuePair<string, string>> QueryPairs(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request.Query.SelectMany(q => q.Value.Select(v => new KeyValuePair<string, string>(q.Key, v ?? string.Empty))).ToList();
    }
}
