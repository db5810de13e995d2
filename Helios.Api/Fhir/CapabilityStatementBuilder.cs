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

    public string Build(string baseUrl)
    {
        var statement = (CapabilityStatement)_template.Value.DeepCopy();
        statement.Implementation!.Url = baseUrl;
        statement.DateElement = new FhirDateTime(timeProvider.GetUtcNow());
        return FhirJson.Serialize(statement);
    }

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
                });
            }

            rest.Resource.Add(component);
        }

        rest.Operation.Add(new CapabilityStatement.OperationComponent { Name = "export", Definition = SystemExportDefinition });

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
