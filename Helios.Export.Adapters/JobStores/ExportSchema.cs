namespace Helios.Export.Adapters.JobStores;

/// <summary>The export job tables, as versioned migrations (the same for SQLite and PostgreSQL; times in µs since the
/// epoch). Applied versions are recorded in <c>export_schema_version</c>.</summary>
internal static class ExportSchema
{
    public static IReadOnlyList<string[]> Migrations { get; } =
    [
        Version1,
        ["ALTER TABLE export_jobs ADD COLUMN trace_parent TEXT NULL"],
        ["ALTER TABLE export_jobs ADD COLUMN last_polled_at BIGINT NULL"],
        ["ALTER TABLE export_partitions ADD COLUMN kind TEXT NOT NULL DEFAULT 'output'"],
        ["ALTER TABLE export_files ADD COLUMN manifest_page INTEGER NULL"],
        // When a partition released after a failure may be claimed again (µs; 0: at once): retries back off.
        ["ALTER TABLE export_partitions ADD COLUMN retry_at BIGINT NOT NULL DEFAULT 0"],
    ];

    private static string[] Version1 =>
    [
        """
        CREATE TABLE export_jobs (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            owner TEXT NOT NULL,
            status TEXT NOT NULL,
            request_json TEXT NOT NULL,
            request_url TEXT NOT NULL,
            base_url TEXT NOT NULL,
            transaction_time BIGINT NOT NULL,
            snapshot_seq BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            enqueued_at BIGINT NOT NULL,
            completed_at BIGINT NULL,
            expires_at BIGINT NULL,
            error TEXT NULL)
        """,
        "CREATE INDEX ix_export_jobs_active ON export_jobs (tenant, owner, status)",
        """
        CREATE TABLE export_partitions (
            job_id TEXT NOT NULL,
            partition_no INTEGER NOT NULL,
            res_type TEXT NOT NULL,
            after_seq BIGINT NOT NULL,
            up_to_seq BIGINT NOT NULL,
            estimated_rows BIGINT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            lease_owner TEXT NULL,
            lease_token BIGINT NOT NULL,
            lease_expires BIGINT NOT NULL,
            heartbeat_at BIGINT NULL,
            enqueued_at BIGINT NOT NULL,
            cursor_seq BIGINT NOT NULL,
            next_part INTEGER NOT NULL,
            exported BIGINT NOT NULL,
            last_error TEXT NULL,
            PRIMARY KEY (job_id, partition_no))
        """,
        "CREATE INDEX ix_export_partitions_status ON export_partitions (status, lease_expires)",
        """
        CREATE TABLE export_files (
            job_id TEXT NOT NULL,
            file_name TEXT NOT NULL,
            kind TEXT NOT NULL,
            res_type TEXT NOT NULL,
            partition_no INTEGER NOT NULL,
            part_no INTEGER NOT NULL,
            resource_count BIGINT NOT NULL,
            byte_count BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (job_id, file_name))
        """,
        "CREATE UNIQUE INDEX ux_export_files_part ON export_files (job_id, kind, partition_no, part_no)",
    ];
}
