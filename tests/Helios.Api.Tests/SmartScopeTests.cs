using CsCheck;
using Helios.Api.Auth;

namespace Helios.Api.Tests;

/// <summary>The SMART scope parser reads text from outside (the token's scope claim): property-based tests.</summary>
public sealed class SmartScopeTests
{
    [Theory]
    [InlineData("system/*.read", SmartContext.System, "*", SmartPermission.Read | SmartPermission.Search)]
    [InlineData("system/Observation.write", SmartContext.System, "Observation", SmartPermission.Create | SmartPermission.Update | SmartPermission.Delete)]
    [InlineData("user/Patient.*", SmartContext.User, "Patient", SmartPermission.All)]
    [InlineData("system/*.rs", SmartContext.System, "*", SmartPermission.Read | SmartPermission.Search)]
    [InlineData("system/*.cruds", SmartContext.System, "*", SmartPermission.All)]
    [InlineData("patient/Observation.r", SmartContext.Patient, "Observation", SmartPermission.Read)]
    public void KnownScopes_Parse(string text, SmartContext context, string type, SmartPermission permissions)
    {
        Assert.True(SmartScope.TryParse(text, out var scope));
        Assert.Equal((context, type, permissions, (string?)null), (scope!.Value.Context, scope.Value.Type, scope.Value.Permissions, scope.Value.Constraint));
    }

    [Theory]
    [InlineData("openid")]
    [InlineData("launch/patient")]
    [InlineData("system/*.sr")]
    [InlineData("system/*.rr")]
    [InlineData("system/*.")]
    [InlineData("system/.rs")]
    [InlineData("system/Obs-ervation.rs")]
    [InlineData("admin/*.rs")]
    [InlineData("system/*.read?category=x")]
    [InlineData("system/*.rs?")]
    [InlineData("")]
    public void NonScopes_AreRefused(string text) => Assert.False(SmartScope.TryParse(text, out _));

    [Fact]
    public void AnyText_ParsesOrIsRefused_NeverThrows() =>
        Gen.String.Sample(text => { SmartScope.TryParse(text, out _); }, iter: 20_000);

    [Fact]
    public void WellFormedScopes_RoundTripThroughTheirV2Text()
    {
        var context = Gen.OneOf("system", "user", "patient");
        var type = Gen.OneOf("*", "Patient", "Observation", "Group");
        var letters = Gen.Int[1, 31].Select(mask => string.Concat("cruds".Where((_, i) => (mask & (1 << i)) != 0)));
        var constraint = Gen.OneOf("", "?category=laboratory", "?code=http://loinc.org|1234-5");
        Gen.Select(context, type, letters, constraint).Sample((c, t, l, q) =>
        {
            var text = $"{c}/{t}.{l}{q}";
            Assert.True(SmartScope.TryParse(text, out var scope), text);
            Assert.Equal(text, scope!.Value.ToString());
        }, iter: 10_000);
    }

    [Fact]
    public void V1Scopes_MeanTheirV2Equivalents()
    {
        foreach (var (v1, v2) in new[] { ("read", "rs"), ("write", "cud"), ("*", "cruds") })
        {
            Assert.True(SmartScope.TryParse($"system/Observation.{v1}", out var a));
            Assert.True(SmartScope.TryParse($"system/Observation.{v2}", out var b));
            Assert.Equal(b!.Value.Permissions, a!.Value.Permissions);
        }
    }

    [Fact]
    public void Access_FromAScopeList_GrantsExactlyWhatTheScopesCover()
    {
        var type = Gen.OneOf("Patient", "Observation", "Group", "Encounter");
        var permission = Gen.OneOf(SmartPermission.Create, SmartPermission.Read, SmartPermission.Update, SmartPermission.Delete, SmartPermission.Search);
        var scope = Gen.Select(Gen.OneOf("*", "Patient", "Observation"), Gen.Int[1, 31]).Select((t, mask) => new SmartScope(SmartContext.System, t, (SmartPermission)mask, null));
        Gen.Select(scope.Array[0, 4], type, permission).Sample((scopes, t, p) =>
        {
            var principal = new System.Security.Claims.ClaimsPrincipal(new System.Security.Claims.ClaimsIdentity(
                [new System.Security.Claims.Claim("scope", string.Join(' ', scopes.Select(s => s.ToString()))), new System.Security.Claims.Claim("client_id", "c")], "test"));
            var expected = scopes.Any(s => (s.Type == "*" || s.Type == t) && (s.Permissions & p) == p);
            Assert.Equal(expected, SmartAccess.For(principal).Allows(t, p));
        }, iter: 10_000);
    }
}
