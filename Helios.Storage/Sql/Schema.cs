namespace Helios.Storage.Sql;

/// <summary>
/// Versioned schema migrations, the same statements for SQLite and PostgreSQL apart from column types. Each index
/// row belongs to one resource version (by <c>seq</c>) and is never rewritten; searches join to the current version.
/// </summary>
internal static class Schema
{
    public static IReadOnlyList<string[]> Migrations(bool postgres)
    {
        var text = "TEXT";
        var real = postgres ? "DOUBLE PRECISION" : "REAL";
        var version1 = new[]
        {
            "CREATE TABLE store_state (id INTEGER PRIMARY KEY, last_seq BIGINT NOT NULL, last_ts BIGINT NOT NULL)",
            "INSERT INTO store_state (id, last_seq, last_ts) VALUES (1, 0, 0)",
            $"""
            CREATE TABLE resources (
                seq BIGINT PRIMARY KEY,
                res_type {text} NOT NULL,
                res_id {text} NOT NULL,
                version INTEGER NOT NULL,
                last_updated BIGINT NOT NULL,
                deleted INTEGER NOT NULL,
                next_seq BIGINT NULL,
                json {text} NOT NULL)
            """,
            "CREATE UNIQUE INDEX ux_resources_version ON resources (res_type, res_id, version)",
            "CREATE UNIQUE INDEX ux_resources_current ON resources (res_type, res_id) WHERE next_seq IS NULL",
            $"CREATE TABLE idx_token (seq BIGINT NOT NULL, res_type {text} NOT NULL, param {text} NOT NULL, system {text} NULL, code {text} NULL)",
            $"CREATE TABLE idx_string (seq BIGINT NOT NULL, res_type {text} NOT NULL, param {text} NOT NULL, normalized {text} NOT NULL, exact {text} NOT NULL)",
            $"CREATE TABLE idx_reference (seq BIGINT NOT NULL, res_type {text} NOT NULL, param {text} NOT NULL, target_type {text} NULL, target_id {text} NOT NULL)",
            $"CREATE TABLE idx_date (seq BIGINT NOT NULL, res_type {text} NOT NULL, param {text} NOT NULL, low BIGINT NOT NULL, high BIGINT NOT NULL)",
            $"CREATE TABLE idx_number (seq BIGINT NOT NULL, res_type {text} NOT NULL, param {text} NOT NULL, value {real} NOT NULL)",
            $"CREATE TABLE idx_quantity (seq BIGINT NOT NULL, res_type {text} NOT NULL, param {text} NOT NULL, system {text} NULL, code {text} NULL, value {real} NOT NULL)",
            $"CREATE TABLE idx_uri (seq BIGINT NOT NULL, res_type {text} NOT NULL, param {text} NOT NULL, value {text} NOT NULL)",
            $"CREATE TABLE compartment (seq BIGINT NOT NULL, res_type {text} NOT NULL, patient_id {text} NOT NULL)",
        };
        var version2 = new[]
        {
            // Named sets of patient ids (an export's Patient or Group population), joined to the compartment rows.
            $"CREATE TABLE patient_sets (set_id {text} NOT NULL, patient_id {text} NOT NULL, PRIMARY KEY (set_id, patient_id))",
        };
        return [version1, version2];
    }

    /// <summary>
    /// Secondary indexes, kept out of the migrations so that a bulk load into a store can drop them and build them
    /// once at the end (sorted builds are far faster than row-by-row maintenance). Every startup re-creates any that
    /// are missing, so an interrupted load heals on the next start.
    /// </summary>
    public static IReadOnlyList<(string Name, string Definition)> SecondaryIndexes(bool postgres) =>
    [
        ("ix_resources_type_seq", "resources (res_type, seq)"),
        ("ix_resources_last_updated", "resources (last_updated)"),
        ("ix_idx_token", "idx_token (res_type, param, code, system, seq)"),
        ("ix_idx_string", postgres ? "idx_string (res_type, param, normalized text_pattern_ops, seq)" : "idx_string (res_type, param, normalized, seq)"),
        ("ix_idx_reference", "idx_reference (res_type, param, target_id, target_type, seq)"),
        ("ix_idx_reference_seq", "idx_reference (seq)"),
        ("ix_idx_date", "idx_date (res_type, param, low, high, seq)"),
        ("ix_idx_date_seq", "idx_date (seq, param)"),
        ("ix_idx_number", "idx_number (res_type, param, value, seq)"),
        ("ix_idx_quantity", "idx_quantity (res_type, param, value, seq)"),
        ("ix_idx_uri", "idx_uri (res_type, param, value, seq)"),
        ("ix_compartment", "compartment (patient_id, res_type, seq)"),
        ("ix_compartment_seq", "compartment (seq, patient_id)"),
    ];
}
