using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Hl7.Fhir.Model;

namespace Helios.Api.Fhir;

/// <summary>The CapabilityStatement: exactly the interactions and search parameters this server implements.</summary>
public sealed class CapabilityStatementBuilder(SearchParameterRegistry registry, TimeProvider timeProvider)
{
    public const string BulkDataCapabilityStatement = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data";
    public const string SystemExportDefinition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export";
    public const string PatientExportDefinition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export";
    public const string GroupExportDefinition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export";

    private readonly Lazy<CapabilityStatement> _template = new(() => BuildTemplate(registry));

    /// <summary>The statement for <paramref name="baseUrl"/>; <paramref name="tokenEndpoint"/> is the authorization
    /// server's token endpoint when authorization is on (null: off, and the statement says so).</summary>
    public string Build(string baseUrl, string? tokenEndpoint = null, string? authorizationEndpoint = null)
    {
        var statement = (CapabilityStatement)_template.Value.DeepCopy();
        statement.Implementation!.Url = baseUrl;
        statement.Rest[0].Security = Security(tokenEndpoint, authorizationEndpoint);
        statement.DateElement = new FhirDateTime(timeProvider.GetUtcNow());
        return FhirJson.Serialize(statement);
    }

    private static CapabilityStatement.SecurityComponent Security(string? tokenEndpoint, string? authorizationEndpoint)
    {
        if (tokenEndpoint is null)
        {
            return new CapabilityStatement.SecurityComponent
            {
                Description = "AUTHORIZATION IS OFF: this server accepts every request without a token (the embedded zero-configuration default). Configure Helios:Auth:Authority to require SMART Backend Services tokens.",
            };
        }

        var uris = new Extension { Url = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" };
        uris.Extension.Add(new Extension("token", new FhirUri(tokenEndpoint)));
        if (authorizationEndpoint is not null)
        {
            uris.Extension.Add(new Extension("authorize", new FhirUri(authorizationEndpoint)));
        }

        var security = new CapabilityStatement.SecurityComponent
        {
            Service = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/restful-security-service", "SMART-on-FHIR", "SMART-on-FHIR")],
            Description = "SMART Backend Services: client_credentials with private_key_jwt (RS384 or ES384); SMART v1 and v2 system scopes. See /.well-known/smart-configuration.",
        };
        security.Extension.Add(uris);
        return security;
    }

    /// <summary>What the Bulk Data IG asks servers to document about their exports.</summary>
    private const string ExportDocumentation =
        "Parameters (GET or POST Parameters): _outputFormat (application/fhir+ndjson, application/ndjson, ndjson), _since, _until, _type, " +
        "_typeFilter (any search parameter of the type's searchParam list, OR-ed per type), _elements, patient (Patient and Group level), " +
        "includeAssociatedData (LatestProvenanceResources, RelevantProvenanceResources, and _referenced: the resources of other types the exported " +
        "resources reference, one hop, each once), organizeOutputBy (Patient), allowPartialManifests. Files hold one resource type each (except " +
        "organizeOutputBy), split at a configured size. Group _since: members who joined after _since get only changes, unless the server is " +
        "configured to give them all their data (Helios:Export:GroupSinceNewMembers=AllData). Deleted resources of a _since window are listed in deleted.";

    private static CapabilityStatement BuildTemplate(SearchParameterRegistry registry)
    {
        var interactions = new[]
        {
            CapabilityStatement.TypeRestfulInteraction.Read, CapabilityStatement.TypeRestfulInteraction.Vread,
            CapabilityStatement.TypeRestfulInteraction.Update, CapabilityStatement.TypeRestfulInteraction.Delete,
            CapabilityStatement.TypeRestfulInteraction.HistoryInstance, CapabilityStatement.TypeRestfulInteraction.HistoryType,
            CapabilityStatement.TypeRestfulInteraction.Create, CapabilityStatement.TypeRestfulInteraction.SearchType,
        };
        var rest = new CapabilityStatement.RestComponent
        {
            Mode = CapabilityStatement.RestfulCapabilityMode.Server,
            Interaction =
            [
                new CapabilityStatement.SystemInteractionComponent { Code = CapabilityStatement.SystemRestfulInteraction.Transaction },
                new CapabilityStatement.SystemInteractionComponent { Code = CapabilityStatement.SystemRestfulInteraction.Batch },
                new CapabilityStatement.SystemInteractionComponent { Code = CapabilityStatement.SystemRestfulInteraction.HistorySystem },
            ],
            SearchParam =
            [
                new CapabilityStatement.SearchParamComponent { Name = "_id", Type = SearchParamType.Token },
                new CapabilityStatement.SearchParamComponent { Name = "_lastUpdated", Type = SearchParamType.Date },
            ],
        };
        foreach (var type in registry.ResourceTypes.Order(StringComparer.Ordinal))
        {
            var component = new CapabilityStatement.ResourceComponent
            {
                Type = type,
                Versioning = CapabilityStatement.ResourceVersionPolicy.Versioned,
                ReadHistory = true,
                UpdateCreate = true,
                ConditionalCreate = true,
                ConditionalUpdate = false,
                ConditionalDelete = CapabilityStatement.ConditionalDeleteStatus.NotSupported,
                Interaction = interactions.Select(i => new CapabilityStatement.ResourceInteractionComponent { Code = i }).ToList(),
                SearchInclude = registry.ForType(type).Where(p => p.Kind == IndexKind.Reference).Select(p => $"{type}:{p.Name}").Order(StringComparer.Ordinal).ToList(),
            };
            component.SearchParam.Add(new CapabilityStatement.SearchParamComponent { Name = "_id", Type = SearchParamType.Token });
            component.SearchParam.Add(new CapabilityStatement.SearchParamComponent { Name = "_lastUpdated", Type = SearchParamType.Date });
            foreach (var p in registry.ForType(type).OrderBy(p => p.Name, StringComparer.Ordinal))
            {
                component.SearchParam.Add(new CapabilityStatement.SearchParamComponent { Name = p.Name, Type = p.Type, Documentation = p.Expression });
            }

            if (type is "Patient" or "Group")
            {
                component.Operation.Add(new CapabilityStatement.OperationComponent
                {
                    Name = "export",
                    Definition = type == "Patient" ? PatientExportDefinition : GroupExportDefinition,
                    Documentation = ExportDocumentation,
                });
            }

            rest.Resource.Add(component);
        }

        rest.Operation.Add(new CapabilityStatement.OperationComponent { Name = "export", Definition = SystemExportDefinition, Documentation = ExportDocumentation });

        return new CapabilityStatement
        {
            Status = PublicationStatus.Active,
            Kind = CapabilityStatementKind.Instance,
            Name = "Helios",
            Title = "Helios FHIR R4 server",
            FhirVersion = FHIRVersion.N4_0_1,
            Format = ["application/fhir+json", "json"],
            Software = new CapabilityStatement.SoftwareComponent { Name = "Helios", Version = typeof(CapabilityStatementBuilder).Assembly.GetName().Version?.ToString() },
            Implementation = new CapabilityStatement.ImplementationComponent { Description = "Helios FHIR R4 server" },
            Instantiates = [BulkDataCapabilityStatement],
            Rest = [rest],
        };
    }
}
