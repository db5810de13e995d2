using System.Globalization;
using System.Text;

namespace Helios.Api.Fhir;

/// <summary>An <see cref="IResult"/> that writes a <see cref="FhirResponse"/>: status, Location/ETag/Last-Modified,
/// extra headers, and the JSON body as <c>application/fhir+json</c> (left out under <c>Prefer: return=minimal</c>
/// for a successful POST or PUT).</summary>
public sealed class FhirResult(FhirResponse response) : IResult, IStatusCodeHttpResult
{
    public FhirResponse Response { get; } = response;

    public int? StatusCode => Response.Status;

    /// <summary>Headers that belong to the response (e.g. <c>Retry-After</c>, <c>Content-Location</c>).</summary>
    public IDictionary<string, string> Headers { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);

    public static FhirResult Outcome(int status, string outcomeJson) => new(new FhirResponse(status, outcomeJson));

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        var http = httpContext.Response;
        http.StatusCode = Response.Status;
        if (Response.Location is not null)
        {
            http.Headers.Location = Response.Location;
            if (Response.Status == 201)
            {
                http.Headers.ContentLocation = Response.Location;
            }
        }

        if (Response.ETag is not null)
        {
            http.Headers.ETag = Response.ETag;
        }

        if (Response.LastModified is { } lastModified)
        {
            http.Headers.LastModified = lastModified.ToString("R", CultureInfo.InvariantCulture);
        }

        foreach (var (name, value) in Headers)
        {
            http.Headers[name] = value;
        }

        var body = Response.Body;
        if (body is not null && Response.Status < 400 && httpContext.Request.Method is "POST" or "PUT" &&
            FhirRequestReader.PreferHas(httpContext.Request, "return=minimal"))
        {
            body = null;
        }

        if (body is null)
        {
            return;
        }

        http.ContentType = FhirRequestReader.FhirJson + "; charset=utf-8";
        await http.WriteAsync(body, Encoding.UTF8, httpContext.RequestAborted);
    }
}
