using System.Globalization;

namespace Helios.Storage.Indexing;

/// <summary>
/// Turns FHIR date, dateTime and instant strings of any precision into an inclusive range of microseconds since
/// the Unix epoch ("2020-05" is the whole of May 2020). Values without a zone are taken as UTC.
/// </summary>
public static class FhirDateRange
{
    public const long MinValue = -62135596800000000L; // 0001-01-01
    public const long MaxValue = 253402300799999999L; // 9999-12-31T23:59:59.999999

    public static bool TryParse(string? text, out long low, out long high)
    {
        low = high = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        text = text.Trim();
        var inv = CultureInfo.InvariantCulture;
        if (text.Length == 4 && int.TryParse(text, NumberStyles.None, inv, out var year) && year >= 1)
        {
            var start = new DateTime(year, 1, 1, 0, 0, 0, DateTimeKind.Utc);
            return Set(start, year == 9999 ? null : start.AddYears(1), out low, out high);
        }

        if (text.Length == 7 && DateTime.TryParseExact(text, "yyyy-MM", inv, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var month))
        {
            var start = DateTime.SpecifyKind(month, DateTimeKind.Utc);
            return Set(start, start.Year == 9999 && start.Month == 12 ? null : start.AddMonths(1), out low, out high);
        }

        if (text.Length == 10 && DateTime.TryParseExact(text, "yyyy-MM-dd", inv, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var day))
        {
            var start = DateTime.SpecifyKind(day, DateTimeKind.Utc);
            return Set(start, start.Date == DateTime.MaxValue.Date ? null : start.AddDays(1), out low, out high);
        }

        if (text.Length > 10 && text[10] == 'T')
        {
            var hasZone = text.EndsWith('Z') || text.LastIndexOfAny(['+', '-']) > 10;
            if (!DateTimeOffset.TryParse(text, inv, hasZone ? DateTimeStyles.None : DateTimeStyles.AssumeUniversal, out var dto))
            {
                return false;
            }

            // Precision: seconds (or finer) when the text has seconds, else minutes.
            var timePart = text[11..];
            var zoneAt = timePart.IndexOfAny(['Z', '+', '-']);
            var clock = zoneAt >= 0 ? timePart[..zoneAt] : timePart;
            TimeSpan precision;
            var dot = clock.IndexOf('.');
            if (dot >= 0)
            {
                var digits = clock.Length - dot - 1;
                precision = TimeSpan.FromTicks((long)Math.Pow(10, 7 - Math.Min(7, digits)));
            }
            else
            {
                precision = clock.Length > 5 ? TimeSpan.FromSeconds(1) : TimeSpan.FromMinutes(1);
            }

            var start = dto.UtcDateTime;
            return Set(start, DateTime.MaxValue.Ticks - start.Ticks < precision.Ticks ? null : start + precision, out low, out high);
        }

        return false;
    }

    public static long ToMicros(DateTimeOffset value) => (value.UtcTicks - DateTime.UnixEpoch.Ticks) / 10;

    public static DateTimeOffset FromMicros(long micros) => new(DateTime.UnixEpoch.Ticks + (micros * 10), TimeSpan.Zero);

    /// <summary>The range [start, end); a null end is past the last representable instant (a value in 9999 whose
    /// period runs to the end of time), so the range ends at <see cref="MaxValue"/>.</summary>
    private static bool Set(DateTime startUtc, DateTime? endExclusiveUtc, out long low, out long high)
    {
        low = (startUtc.Ticks - DateTime.UnixEpoch.Ticks) / 10;
        high = endExclusiveUtc is { } end ? ((end.Ticks - DateTime.UnixEpoch.Ticks) / 10) - 1 : MaxValue;
        return true;
    }
}
