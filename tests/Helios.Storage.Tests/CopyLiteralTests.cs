using CsCheck;
using Helios.Storage.Postgres;
using Npgsql;

namespace Helios.Storage.Tests;

/// <summary>
/// COPY takes no bind parameters, so the export path inlines search values as SQL literals. Any text a client can
/// send (quotes, backslashes, dollar quotes, comment and statement syntax, unicode) must come back from PostgreSQL as
/// exactly the same string: then it can only ever be a value, never SQL.
/// </summary>
public sealed class CopyLiteralTests
{
    private static readonly Gen<string> Hostile = Gen.OneOf(
        Gen.String,
        Gen.Char['\u0001', '\u007f'].Array[0, 40].Select(c => new string(c)),
        Gen.OneOf("'", "''", "\\'", "\\", "\\\\'", "$$", "$x$", "';--", "'); DROP TABLE resources; --", "/*", "*/", "E'", "\\x41", "\\u0041",
            "%", "_", "@p0", "@p1 @p10", "\n", "\r\n", "é😀\u200b", "\ud83d").Array[1, 6].Select(parts => string.Concat(parts)));

    [Fact]
    public async Task InlinedLiterals_RoundTripEveryString_Exactly()
    {
        var connectionString = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("helios_literals");
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await Hostile.Where(Search.SearchQueryParser.IsStorableText).SampleAsync(async value =>
        {
            var sql = PostgresExportSource.InlineParameters("SELECT @p0, @p1", [new("@p0", value), new("@p1", 7L)]);
            await using var command = dataSource.CreateCommand(sql);
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal(value, reader.GetString(0));
            Assert.Equal(7L, reader.GetInt64(1));
            Assert.False(await reader.ReadAsync());
        }, iter: 10_000, threads: 1);
    }

    // Built here, not in attributes: xunit's serialization of theory data would repair the lone surrogates.
    private static readonly (string Name, string Value)[] s_unstorable =
        [("name", "a" + '\0' + "b"), ("name", "x" + (char)0xD83D), ("na" + (char)0xDC00 + "me", "x"), ("name", (char)0xDE00 + "y" + (char)0xD83D)];

    [Fact]
    public void TextNoDatabaseCanHold_IsRefused_NotInlined_AndTheSearchParserSaysWhy()
    {
        var parser = new Search.SearchQueryParser(Indexing.SearchParameterRegistry.Instance);
        foreach (var (name, value) in s_unstorable)
        {
            Assert.False(Search.SearchQueryParser.IsStorableText(name + value));
            Assert.Throws<ArgumentException>(() => PostgresExportSource.InlineParameters("SELECT @p0", [new("@p0", name + value)]));
            var error = Assert.Throws<Search.SearchException>(() => parser.Parse("Patient", [new(name, value)], strict: false));
            Assert.Contains("unpaired UTF-16 surrogate", error.Message, StringComparison.Ordinal);
        }

        Assert.True(Search.SearchQueryParser.IsStorableText("é😀\u200b"));
    }
}
