using Helios.Api.Auth;
using Helios.Api.Fhir;
using Helios.Export;
using Helios.Export.Engine;
using Helios.Export.Files;
using Helios.Export.Jobs;
using Helios.Storage.Indexing;
using Helios.Storage.Search;
using Microsoft.Extensions.Options;

namespace Helios.Api.Export;

/// <summary>The services the <c>$export</c> handlers take, bound with <c>[AsParameters]</c>.</summary>
public sealed record ExportEndpointServices(
    ExportKickoff Kickoff,
    IExportJobStore Jobs,
    IExportFileStore Files,
    SearchParameterRegistry Registry,
    SearchQueryParser SearchParser,
    FhirRequestReader Reader,
    TimeProvider TimeProvider,
    IOptions<ExportOptions> Options,
    ExportStatusCache StatusCache,
    SmartAccess Access);
