using Helios.Api.Fhir;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Authentication.JwtBearer;

namespace Helios.Api.Auth;

public static partial class AuthHostingExtensions
{
    /// <summary>
    /// SMART Backend Services protection: when an issuer is configured (<c>Helios:Auth:Authority</c>, or the Keycloak
    /// shape), bearer JWTs are validated against its discovery document and JWKS (rotated keys are fetched when an
    /// unknown key id shows up), for its audience; failures answer 401/403 with an OperationOutcome. Without an
    /// issuer authorization is off: said loudly at startup and in <c>/metadata</c>.
    /// </summary>
    public static HeliosAuthSettings AddHeliosAuth(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var settings = HeliosAuthSettings.From(builder.Configuration);
        builder.Services.AddSingleton(settings);
        var authentication = builder.Services.AddAuthentication();
        builder.Services.AddAuthorization();
        if (!settings.Enabled)
        {
            return settings;
        }

        authentication.AddJwtBearer(JwtBearerDefaults.AuthenticationScheme, options =>
        {
            options.Authority = settings.Authority;
            options.Audience = settings.Audience;
            options.RequireHttpsMetadata = !settings.AllowHttp;
            options.MapInboundClaims = false;
            options.RefreshOnIssuerKeyNotFound = true;
            options.TokenValidationParameters.ValidTypes = ["at+jwt", "JWT"];
            options.TokenValidationParameters.ClockSkew = settings.ClockSkew;
            options.TokenValidationParameters.NameClaimType = "client_id";
            // An empty "Authorization: Bearer " is no token to JwtBearer (it answers NoResult), so it gets the challenge
            // below. Scope refusals are not authorization-policy failures (the policy only asks for a valid token):
            // handlers raise SmartForbiddenException, which FhirExceptionMapping answers with 403.
            options.Events = new JwtBearerEvents
            {
                OnChallenge = async context =>
                {
                    context.HandleResponse();
                    var noToken = context.AuthenticateFailure is null && string.IsNullOrEmpty(context.Error);
                    var description = noToken
                        ? "No access token was sent: send Authorization: Bearer <token> from the authorization server (SMART Backend Services, client_credentials)."
                        : $"The access token was refused: {Describe(context.AuthenticateFailure, context.ErrorDescription)}";
                    var error = noToken ? "invalid_request" : "invalid_token";
                    var result = FhirResult.Outcome(401, OperationOutcomes.Error(description, OperationOutcome.IssueType.Login));
                    result.Headers["WWW-Authenticate"] = $"Bearer realm=\"helios\", error=\"{error}\", error_description=\"{Quote(description)}\"";
                    await result.ExecuteAsync(context.HttpContext);
                },
            };
        });
        return settings;
    }

    /// <summary>After authentication: attaches the caller's <see cref="SmartAccess"/> to the request (unrestricted
    /// when authorization is off), for handlers to take as a parameter.</summary>
    public static IApplicationBuilder UseSmartAccess(this IApplicationBuilder app, HeliosAuthSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return app.Use((context, next) =>
        {
            context.Features.Set(settings.Enabled ? SmartAccess.For(context.User) : SmartAccess.Unrestricted);
            return next(context);
        });
    }

    /// <summary>Logs loudly when authorization is off.</summary>
    public static void LogAuthState(this WebApplication app, HeliosAuthSettings settings)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(settings);
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Helios.Auth");
        if (settings.Enabled)
        {
            LogAuthOn(logger, settings.Authority!, settings.Audience);
        }
        else
        {
            LogAuthOff(logger);
        }
    }

    private static string Describe(Exception? failure, string? description) => failure switch
    {
        Microsoft.IdentityModel.Tokens.SecurityTokenExpiredException => "it has expired; get a new one.",
        Microsoft.IdentityModel.Tokens.SecurityTokenInvalidAudienceException => "it was issued for another audience (aud); request it for this server.",
        Microsoft.IdentityModel.Tokens.SecurityTokenInvalidIssuerException => "it was issued by another authorization server (iss).",
        Microsoft.IdentityModel.Tokens.SecurityTokenSignatureKeyNotFoundException or Microsoft.IdentityModel.Tokens.SecurityTokenInvalidSignatureException =>
            "its signature does not verify with the authorization server's keys.",
        null => string.IsNullOrEmpty(description) ? "it is not valid." : description,
        _ => "it is not a valid access token (" + failure.GetType().Name + ").",
    };

    private static string Quote(string text) => text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "'", StringComparison.Ordinal);

    [LoggerMessage(EventId = 5100, Level = LogLevel.Warning, Message = "AUTHORIZATION IS OFF: every route of this server is open to anyone who reaches it. Configure Helios:Auth:Authority (or Keycloak:auth-server-url and Keycloak:realm) to require SMART Backend Services tokens.")]
    private static partial void LogAuthOff(ILogger logger);

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Authorization is on: SMART Backend Services tokens from {Authority} for audience {Audience}")]
    private static partial void LogAuthOn(ILogger logger, string authority, string audience);
}
