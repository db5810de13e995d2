using System.Diagnostics;
using System.Text.Json;
using Helios.Export.Diagnostics;
using Helios.Export.Files;
using Helios.Export.Jobs;
using Helios.Export.Requests;
using Helios.Storage.Indexing;
using Helios.Storage.Snapshots;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Helios.Export.Engine;

/// <summary>
/// Cuts an accepted export into partitions (one type, one key range of about <see cref="ExportOptions.PartitionRows"/>
/// current versions each), saves them with the job's move to running, then enqueues one Hangfire job per partition
/// so every worker can take part. Patient and Group exports first fix their patient population in a patient set.
/// </summary>
public sealed partial class ExportPlanner(
    IExportJobStore jobs,
    IExportSource source,
    IExportFileStore files,
    IExportScheduler scheduler,
    SearchParameterRegistry registry,
    ExportRanges ranges,
    IOptions<ExportOptions> options,
    ILogger<ExportPlanner> logger)
{
    public async Task PlanAsync(string jobId, CancellationToken cancellationToken)
    {
        var job = await jobs.GetJobAsync(jobId, cancellationToken);
        if (job is not { Status: ExportJobStatus.Accepted })
        {
            return;
        }

        using var activity = ExportTelemetry.StartStage("helios.export.plan", job);
        using var scope = ExportTelemetry.BeginJobScope(logger, jobId);

        try
        {
            var patientSet = await ResolvePatientsAsync(job, cancellationToken);
            if (patientSet is { Error: { } error })
            {
                await jobs.FailJobAsync(jobId, error, options.Value.OutputTtl, cancellationToken);
                ExportTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
                return;
            }

            var partitions = new List<ExportPartitionPlan>();
            var types = (await ResolveTypesAsync(job, cancellationToken)).ToList();
            var notes = new List<string>();
            var organized = job.Request.OrganizeOutputBy == "Patient";
            if (organized)
            {
                var outside = types.Where(t => !registry.PatientCompartmentTypeSet.Contains(t)).ToList();
                if (outside.Count > 0)
                {
                    notes.Add($"organizeOutputBy=Patient: {string.Join(", ", outside)} belong to no Patient compartment, so they are in no patient block and were left out (export them without organizeOutputBy, or add includeAssociatedData=_referenced for those the patients' data references).");
                    types.RemoveAll(outside.Contains);
                }
            }

            var associated = await ResolveAssociatedAsync(job, types, cancellationToken);
            IEnumerable<(string Type, string Kind)> work = organized
                ? types.Count > 0 ? [("Patient", ExportFileKinds.PatientBlocks)] : []
                : types.Select(t => (t, ExportFileKinds.Output));
            // _since: keys and instants rise together, so what changed after it has keys above the last one written by
            // then, and the partitions start there (they read the window, not the whole store). Not when Group members
            // who joined later get all their data.
            var floor = job.Request.Since is { } since && patientSet?.NewMembers is null or 0
                ? await source.GetSeqAtAsync(since, cancellationToken)
                : 0;
            foreach (var (type, kind) in work.Concat(associated.Select(t => (t, ExportFileKinds.Associated))))
            {
                // Associated resources go with the selection whatever their last update; a patient block is cut by
                // its Patient's key, and an unchanged Patient may still have changed data.
                var from = kind == ExportFileKinds.Output ? floor : 0;
                foreach (var range in await source.GetKeyRangesAsync(type, job.SnapshotSeq, options.Value.PartitionRows, cancellationToken, from))
                {
                    partitions.Add(new ExportPartitionPlan(partitions.Count, type, range.AfterSeq, range.UpToSeq, range.Rows) { Kind = kind });
                }
            }

            if (job.Request.Since is not null)
            {
                // A _since export also lists what was deleted in the window: one deletions partition per type that
                // has any there.
                foreach (var type in types)
                {
                    if (!await source.HasDeletionsAsync(type, floor, job.SnapshotSeq, cancellationToken))
                    {
                        continue;
                    }

                    partitions.Add(new ExportPartitionPlan(partitions.Count, type, floor, job.SnapshotSeq, 0) { Kind = ExportFileKinds.Deleted });
                }
            }

            var extraFiles = new List<ExportFile>();
            IReadOnlyList<string> warnings = [.. job.Request.Ignored, .. patientSet?.Warnings ?? [], .. notes];
            if (warnings.Count > 0)
            {
                extraFiles.Add(await WriteWarningsAsync(job, warnings, cancellationToken));
            }

            if (!await jobs.SavePlanAsync(jobId, partitions, extraFiles, options.Value.OutputTtl, cancellationToken))
            {
                LogPlanRaced(logger, jobId);
                return;
            }

            activity?.SetTag("helios.export.partitions", partitions.Count);
            ExportTelemetry.PartitionsQueued.Add(partitions.Count);
            LogPlanned(logger, jobId, partitions.Count, partitions.Sum(p => p.EstimatedRows));
            if (partitions.Count == 0)
            {
                ExportTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("outcome", "completed"));
            }

            // Each run claims partitions until none is left; this many let every worker of the cluster take part.
            for (var i = 0; i < Math.Min(partitions.Count, options.Value.MaxParallelism); i++)
            {
                scheduler.EnqueueRun(jobId);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogPlanFailed(logger, ex, jobId);
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            await jobs.FailJobAsync(jobId, "The export could not be planned: " + ex.Message, options.Value.OutputTtl, CancellationToken.None);
            ExportTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
        }
    }

    private async Task<IReadOnlyList<string>> ResolveTypesAsync(ExportJob job, CancellationToken cancellationToken)
    {
        var present = await source.GetTypesAsync(job.SnapshotSeq, cancellationToken);
        IEnumerable<string> types = present;
        if (job.Request.Level != ExportLevel.System)
        {
            types = types.Where(registry.PatientCompartmentTypeSet.Contains);
        }

        if (job.Request.Types is { } requested)
        {
            var wanted = new HashSet<string>(requested, StringComparer.Ordinal);
            types = types.Where(wanted.Contains);
        }

        return types.ToList();
    }

    /// <summary>
    /// <c>includeAssociatedData</c>: fills the id sets of the associated resources and returns their types. Provenance
    /// (Relevant wins over Latest, the least restrictive) leaves <paramref name="types"/> and is read from its set: every
    /// Provenance naming an exported resource, plus those the level selects anyway; or only the latest per exported
    /// resource. <c>_referenced</c> adds, per other type, what the exported resources reference.
    /// </summary>
    private async Task<IReadOnlyList<string>> ResolveAssociatedAsync(ExportJob job, List<string> types, CancellationToken cancellationToken)
    {
        var requested = job.Request.AssociatedData ?? [];
        if (requested.Count == 0)
        {
            return [];
        }

        var associated = new List<string>();
        var relevant = requested.Contains(AssociatedData.RelevantProvenance);
        var latest = !relevant && requested.Contains(AssociatedData.LatestProvenance);
        var provenanceSet = ExportRanges.AssociatedSetId(job.Id, "Provenance");
        var sources = types.Where(t => t != "Provenance").ToList();
        if (ExportRanges.ProvenanceFromSet(job.Request, types.Contains("Provenance")))
        {
            foreach (var type in sources)
            {
                await source.FillProvenanceSetAsync(provenanceSet, ranges.Selected(job, type), latest, cancellationToken);
            }

            if (relevant && types.Contains("Provenance"))
            {
                await source.FillIdSetAsync(provenanceSet, ranges.Selected(job, "Provenance"), cancellationToken);
            }

            types.Remove("Provenance");
            associated.Add("Provenance");
        }

        if (requested.Contains(AssociatedData.Referenced))
        {
            var present = await source.GetTypesAsync(job.SnapshotSeq, cancellationToken);
            var targets = present.Where(t => !types.Contains(t) && !associated.Contains(t)).ToList();
            foreach (var type in sources)
            {
                await source.FillReferencedSetsAsync(ExportRanges.AssociatedSetPrefix(job.Id), ranges.Selected(job, type), targets, cancellationToken);
            }

            var filled = await source.CountSetsAsync(ExportRanges.AssociatedSetPrefix(job.Id), cancellationToken);
            associated.AddRange(targets.Where(t => filled.GetValueOrDefault(ExportRanges.AssociatedSetId(job.Id, t)) > 0));
        }

        return associated;
    }

    /// <summary>The outcome of fixing the population: a fatal error, and warnings for the error file (requested
    /// patients left out, and why).</summary>
    private sealed record PatientSetResult(string? Error, IReadOnlyList<string> Warnings)
    {
        /// <summary>Group members who joined after <c>_since</c> and get all their data.</summary>
        public int NewMembers { get; init; }
    }

    private async Task<PatientSetResult?> ResolvePatientsAsync(ExportJob job, CancellationToken cancellationToken)
    {
        switch (job.Request.Level)
        {
            case ExportLevel.Patient when job.Request.Patients is { } requested:
            {
                // The `patient` parameter: these patients only; one that does not exist at the snapshot is reported.
                var present = new List<string>();
                var warnings = new List<string>();
                foreach (var id in requested)
                {
                    if (await source.ReadAtSnapshotAsync("Patient", id, job.SnapshotSeq, cancellationToken) is { IsDeleted: false })
                    {
                        present.Add(id);
                    }
                    else
                    {
                        warnings.Add($"patient: Patient/{id} does not exist at the export's transaction time, so nothing of it was exported.");
                    }
                }

                await source.DeletePatientSetAsync(job.Id, cancellationToken);
                await source.AddToPatientSetAsync(job.Id, present, cancellationToken);
                return new PatientSetResult(null, warnings);
            }

            case ExportLevel.Patient:
            case ExportLevel.System when job.Request.OrganizeOutputBy is not null:
                // Every Patient (patient blocks read the population from a set at every level).
                await source.DeletePatientSetAsync(job.Id, cancellationToken);
                await source.FillPatientSetFromSnapshotAsync(job.Id, job.SnapshotSeq, cancellationToken);
                return null;
            case ExportLevel.Group:
            {
                var members = await ResolveGroupAsync(job, job.SnapshotSeq, job.TransactionTime, cancellationToken);
                if (members is null)
                {
                    return new PatientSetResult($"Group/{job.Request.GroupId} did not exist at the export's transaction time.", []);
                }

                var warnings = new List<string>();
                if (job.Request.Patients is { } requested)
                {
                    // The `patient` parameter: the members among these patients; any other is reported, not dropped silently.
                    var memberSet = members.ToHashSet(StringComparer.Ordinal);
                    warnings.AddRange(requested.Where(id => !memberSet.Contains(id)).Select(id =>
                        $"patient: Patient/{id} is not an active member of Group/{job.Request.GroupId} at the export's transaction time, so nothing of it was exported."));
                    members = requested.Where(memberSet.Contains).ToList();
                }

                await source.DeletePatientSetAsync(job.Id, cancellationToken);
                await source.AddToPatientSetAsync(job.Id, members, cancellationToken);
                if (job.Request.Since is { } since && options.Value.GroupSinceNewMembers == NewGroupMemberData.AllData)
                {
                    // Members who were not active members of the Group as it was at _since get all their data.
                    var then = await ResolveGroupAsync(job, await source.GetSeqAtAsync(since, cancellationToken), since, cancellationToken) ?? [];
                    var joined = members.Except(then, StringComparer.Ordinal).ToList();
                    await source.AddToPatientSetAsync(ExportRanges.NewMembersSetId(job.Id), joined, cancellationToken);
                    LogNewMembers(logger, job.Id, joined.Count);
                    return new PatientSetResult(null, warnings) { NewMembers = joined.Count };
                }

                return new PatientSetResult(null, warnings);
            }

            default:
                return null;
        }
    }

    /// <summary>The patient members of the Group as of key <paramref name="seq"/> and instant <paramref name="at"/> (the
    /// snapshot, or <c>_since</c>): nested Groups flattened (each visited once), inactive members and members whose
    /// period does not cover <paramref name="at"/> left out; null when the Group did not exist then.</summary>
    private async Task<IReadOnlyCollection<string>?> ResolveGroupAsync(ExportJob job, long seq, DateTimeOffset at, CancellationToken cancellationToken)
    {
        var patients = new HashSet<string>(StringComparer.Ordinal);
        var visited = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Queue<string>();
        pending.Enqueue(job.Request.GroupId!);
        var first = true;
        while (pending.TryDequeue(out var groupId))
        {
            if (!visited.Add(groupId))
            {
                continue;
            }

            var group = await source.ReadAtSnapshotAsync("Group", groupId, seq, cancellationToken);
            if (group is null || group.IsDeleted)
            {
                if (first)
                {
                    return null;
                }

                LogNestedGroupMissing(logger, job.Id, groupId);
                continue;
            }

            first = false;
            foreach (var (type, id) in GroupMembers.Active(group.Json, at, job.BaseUrl))
            {
                if (type == "Patient")
                {
                    patients.Add(id);
                }
                else if (type == "Group")
                {
                    pending.Enqueue(id);
                }
            }
        }

        return patients;
    }

    private async Task<ExportFile> WriteWarningsAsync(ExportJob job, IReadOnlyList<string> warnings, CancellationToken cancellationToken)
    {
        var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("resourceType", "OperationOutcome");
            writer.WriteStartArray("issue");
            foreach (var message in warnings)
            {
                writer.WriteStartObject();
                writer.WriteString("severity", "warning");
                writer.WriteString("code", "not-supported");
                writer.WriteString("diagnostics", message);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        buffer.WriteByte((byte)'\n');
        await using var part = await files.CreateAsync(job.Id, ExportFileNames.IgnoredParameters, cancellationToken);
        await part.WriteAsync(buffer.ToArray(), cancellationToken);
        await part.PublishAsync(cancellationToken);
        return new ExportFile(job.Id, ExportFileNames.IgnoredParameters, ExportFileKinds.Error, "OperationOutcome", -1, 0, 1, buffer.Length);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Export {JobId} planned: {Partitions} partitions, about {Rows} resources")]
    private static partial void LogPlanned(ILogger logger, string jobId, int partitions, long rows);

    [LoggerMessage(Level = LogLevel.Information, Message = "Export {JobId} was already planned (or ended) elsewhere; this plan is dropped")]
    private static partial void LogPlanRaced(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Export {JobId} could not be planned")]
    private static partial void LogPlanFailed(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Export {JobId}: {Count} Group members joined after _since and get all their data")]
    private static partial void LogNewMembers(ILogger logger, string jobId, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Export {JobId}: nested Group/{GroupId} does not exist at the snapshot; its members are skipped")]
    private static partial void LogNestedGroupMissing(ILogger logger, string jobId, string groupId);
}
