namespace Helios.Storage.Fhir;

/// <summary>
/// A fast check of the common shapes of FHIR date, dateTime, instant and time values on their UTF-8 text, for the
/// bulk path (the SDK's check parses with a regular expression and <see cref="DateTimeOffset"/>, a fifth of the
/// structural check's time on Synthea data). It only ever says "certainly valid": anything outside the strict
/// shapes below (leap seconds, years outside 1000-9998, more than 7 fraction digits, escapes...) is left to the SDK, so
/// the two can never disagree on what is accepted (a test holds this over a generated corpus).
/// </summary>
internal static class FhirDateText
{
    public enum Kind
    {
        Date,
        DateTime,
        Instant,
        Time,
    }

    /// <summary>True when <paramref name="text"/> is one of the strict shapes of <paramref name="kind"/> and a real
    /// calendar date; false means "ask the SDK", not "invalid".</summary>
    public static bool IsCertainlyValid(ReadOnlySpan<byte> text, Kind kind)
    {
        switch (kind)
        {
            case Kind.Time:
                return TimeOfDay(text, out var consumed) && consumed == text.Length;
            case Kind.Date:
                return text.Length is 4 or 7 or 10 && DatePart(text);
            case Kind.DateTime:
                if (text.Length is 4 or 7 or 10)
                {
                    return DatePart(text);
                }

                return text.Length > 10 && DatePart(text[..10]) && text[10] == (byte)'T' && TimeWithZone(text[11..]);
            case Kind.Instant:
                return text.Length > 10 && DatePart(text[..10]) && text[10] == (byte)'T' && TimeWithZone(text[11..]);
            default:
                return false;
        }
    }

    /// <summary>YYYY, YYYY-MM or YYYY-MM-DD with a year from 1000 to 9998 and a day that exists in its month.</summary>
    private static bool DatePart(ReadOnlySpan<byte> text)
    {
        // Years 1000 to 9998: an offset can move an instant in 9999 past what a DateTimeOffset holds.
        if (!Digits(text[..4], out var year) || year is < 1000 or > 9998)
        {
            return false;
        }

        if (text.Length == 4)
        {
            return true;
        }

        if (text[4] != (byte)'-' || !Digits(text.Slice(5, 2), out var month) || month is < 1 or > 12)
        {
            return false;
        }

        if (text.Length == 7)
        {
            return true;
        }

        return text[7] == (byte)'-' && Digits(text.Slice(8, 2), out var day) && day >= 1 && day <= DateTime.DaysInMonth(year, month);
    }

    /// <summary>hh:mm:ss, optionally with 1 to 7 fraction digits.</summary>
    private static bool TimeOfDay(ReadOnlySpan<byte> text, out int consumed)
    {
        consumed = 0;
        if (text.Length < 8 || text[2] != (byte)':' || text[5] != (byte)':'
            || !Digits(text[..2], out var hour) || hour > 23
            || !Digits(text.Slice(3, 2), out var minute) || minute > 59
            || !Digits(text.Slice(6, 2), out var second) || second > 59)
        {
            return false;
        }

        consumed = 8;
        if (text.Length > 8 && text[8] == (byte)'.')
        {
            var fraction = 0;
            while (8 + 1 + fraction < text.Length && IsDigit(text[8 + 1 + fraction]))
            {
                fraction++;
            }

            if (fraction is < 1 or > 7)
            {
                return false;
            }

            consumed += 1 + fraction;
        }

        return true;
    }

    /// <summary>A time of day followed by Z or a +hh:mm / -hh:mm offset within ±14:00.</summary>
    private static bool TimeWithZone(ReadOnlySpan<byte> text)
    {
        if (!TimeOfDay(text, out var consumed))
        {
            return false;
        }

        var zone = text[consumed..];
        if (zone.Length == 1)
        {
            return zone[0] == (byte)'Z';
        }

        return zone.Length == 6 && zone[0] is (byte)'+' or (byte)'-' && zone[3] == (byte)':'
            && Digits(zone.Slice(1, 2), out var hours) && Digits(zone.Slice(4, 2), out var minutes)
            && ((hours <= 13 && minutes <= 59) || (hours == 14 && minutes == 0));
    }

    private static bool Digits(ReadOnlySpan<byte> text, out int value)
    {
        value = 0;
        foreach (var b in text)
        {
            if (!IsDigit(b))
            {
                return false;
            }

            value = (value * 10) + (b - '0');
        }

        return true;
    }

    private static bool IsDigit(byte b) => b is >= (byte)'0' and <= (byte)'9';
}
