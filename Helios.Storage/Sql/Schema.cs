using Helios.Storage.Indexing;

namespace Helios.Storage.Sql;

/// <summary>
/// Versioned schema migrations, the same statements for SQLite and PostgreSQL apart from column types. Each index
/// row belongs to one resource version (by <c>seq</c>) and is never rewritten; searches join to the current version.
/// </summary>
internal static class Schema
{
    public static IReadOnlyList<string[]> Migrations(bool postgres, SearchParameterRegistry registry)
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
        // Index rows keyed by the parameter's integer key instead of (resource type, parameter name) texts: half the
        // bytes per row and integer comparisons in every index build and lookup; derived parameters store no rows.
        // PostgreSQL compares all keys bytewise (COLLATE "C"): no locale-aware comparisons in index builds.
        var ctext = postgres ? "TEXT COLLATE \"C\"" : "TEXT";
        var bytewise = postgres ? " COLLATE \"C\"" : string.Empty;
        var version3 = new List<string>
        {
            $"CREATE TABLE search_params (pid INTEGER PRIMARY KEY, res_type {ctext} NOT NULL, param {ctext} NOT NULL, stored INTEGER NOT NULL)",
            SearchParamsUpsert(registry),
            // One unique index on the natural key is enough: the current version is the highest (the store's single
            // writer keeps it so), and each random-key index costs a bulk load about a third of its write time
            // (every batch dirties pages all over it).
            "DROP INDEX IF EXISTS ux_resources_current",
        };
        foreach (var (table, columns) in IndexTables(ctext, real))
        {
            var names = string.Join(", ", columns.Select(c => c[..c.IndexOf(' ', StringComparison.Ordinal)]));
            var old = string.Join(", ", columns.Select(c => "t." + c[..c.IndexOf(' ', StringComparison.Ordinal)]));
            version3.Add($"ALTER TABLE {table} RENAME TO {table}_v2");
            version3.Add($"CREATE TABLE {table} (seq BIGINT NOT NULL, pid INTEGER NOT NULL, {string.Join(", ", columns)})");
            version3.Add($"INSERT INTO {table} (seq, pid, {names}) SELECT t.seq, p.pid, {old} FROM {table}_v2 t JOIN search_params p ON p.res_type = t.res_type{bytewise} AND p.param = t.param{bytewise} AND p.stored = 1");
            version3.Add($"DROP TABLE {table}_v2");
        }

        if (postgres)
        {
            version3.Add("ALTER TABLE resources ALTER COLUMN res_type TYPE TEXT COLLATE \"C\", ALTER COLUMN res_id TYPE TEXT COLLATE \"C\"");
            version3.Add("ALTER TABLE compartment ALTER COLUMN res_type TYPE TEXT COLLATE \"C\", ALTER COLUMN patient_id TYPE TEXT COLLATE \"C\"");
            version3.Add("ALTER TABLE patient_sets ALTER COLUMN set_id TYPE TEXT COLLATE \"C\", ALTER COLUMN patient_id TYPE TEXT COLLATE \"C\"");
            // Resources over 2 kB are compressed when stored: LZ4 (where the server has it) costs a fraction of the
            // default pglz, on load and on every export read.
            version3.Add("""
                DO $$ BEGIN
                  IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
                    ALTER TABLE resources ALTER COLUMN json SET COMPRESSION lz4;
                  END IF;
                END $$
                """);
        }

        return [version1, version2, [.. version3]];
    }

    private static IEnumerable<(string Table, string[] Columns)> IndexTables(string text, string real) =>
    [
        ("idx_token", [$"system {text} NULL", $"code {text} NULL"]),
        ("idx_string", [$"normalized {text} NOT NULL", $"exact {text} NOT NULL"]),
        ("idx_reference", [$"target_type {text} NULL", $"target_id {text} NOT NULL"]),
        ("idx_date", ["low BIGINT NOT NULL", "high BIGINT NOT NULL"]),
        ("idx_number", [$"value {real} NOT NULL"]),
        ("idx_quantity", [$"system {text} NULL", $"code {text} NULL", $"value {real} NOT NULL"]),
        ("idx_uri", [$"value {text} NOT NULL"]),
    ];

    /// <summary>The map from index keys to parameters, for people reading the tables (and the v3 migration):
    /// written at the migration and refreshed at every start, so a newer SDK's parameters appear.</summary>
    public static string SearchParamsUpsert(SearchParameterRegistry registry)
    {
        var sb = new System.Text.StringBuilder("INSERT INTO search_params (pid, res_type, param, stored) VALUES ");
        var first = true;
        foreach (var parameter in registry.All.OrderBy(p => p.Key))
        {
            sb.Append(first ? "" : ", ").Append('(').Append(parameter.Key.ToString(System.Globalization.CultureInfo.InvariantCulture))
              .Append(", '").Append(parameter.ResourceType).Append("', '").Append(parameter.Name).Append("', ").Append(parameter.IsStored ? '1' : '0').Append(')');
            first = false;
        }

        return sb.Append(" ON CONFLICT (pid) DO UPDATE SET res_type = excluded.res_type, param = excluded.param, stored = excluded.stored").ToString();
    }

    /// <summary>The unique index on the natural key (type, id, version), created by migration 1. A bulk load into
    /// an empty store drops it and builds it at the end with the secondary indexes.</summary>
    public const string NaturalKeyIndex = "CREATE UNIQUE INDEX IF NOT EXISTS ux_resources_version ON resources (res_type, res_id, version)";

    /// <summary>
    /// Secondary indexes, kept out of the migrations so that a bulk load into a store can drop them and build them
    /// once at the end (sorted builds are far faster than row-by-row maintenance). Every startup re-creates any that
    /// are missing, so an interrupted load heals on the next start.
    /// </summary>
    public static IReadOnlyList<(string Name, string Definition)> SecondaryIndexes(bool postgres) =>
    [
        ("ix_resources_type_seq", "resources (res_type, seq)"),
        ("ix_resources_last_updated", "resources (last_updated)"),
        ("ix_idx_token", "idx_token (pid, code, system, seq)"),
        ("ix_idx_string", postgres ? "idx_string (pid, normalized text_pattern_ops, seq)" : "idx_string (pid, normalized, seq)"),
        ("ix_idx_reference", "idx_reference (pid, target_id, target_type, seq)"),
        ("ix_idx_reference_seq", "idx_reference (seq)"),
        ("ix_idx_date", "idx_date (pid, low, high, seq)"),
        ("ix_idx_date_seq", "idx_date (seq, pid)"),
        ("ix_idx_number", "idx_number (pid, value, seq)"),
        ("ix_idx_quantity", "idx_quantity (pid, value, seq)"),
        ("ix_idx_uri", "idx_uri (pid, value, seq)"),
        ("ix_compartment", "compartment (patient_id, res_type, seq)"),
        ("ix_compartment_seq", "compartment (seq, patient_id)"),
    ];
}
