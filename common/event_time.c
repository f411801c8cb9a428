/*  event_time — the RFC 3339 timestamps of events: a proleptic Gregorian
    calendar, the canonical formatter, the general reader (event_ts_parse:
    any offset and fraction) and the canonical one the fast path reads
    every stored line's ts with.
*/
#include "event_internal.h"

#include <assert.h>
#include <string.h>
#include <time.h>

static bool s_is_leap (int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int s_days_in_month (int64_t year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && s_is_leap (year) ? 29 : days[month - 1];
}

static int64_t s_floor_div (int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

//  Civil date of a day count since 1970-01-01 (inverse of s_days_from_civil).
static void s_civil_from_days (int64_t days, int64_t *year, int *month, int *day)
{
    days += 719468;
    int64_t era = s_floor_div (days, 146097);
    int64_t day_of_era = days - era * 146097;
    int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year =
        day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t month_index = (5 * day_of_year + 2) / 153; // March = 0
    *day = (int)(day_of_year - (153 * month_index + 2) / 5 + 1);
    *month = (int)(month_index < 10 ? month_index + 3 : month_index - 9);
    *year = year_of_era + era * 400 + (*month <= 2);
}

//  Exactly count decimal digits of value, zero-padded.
static void s_put_digits (char *out, int64_t value, int count)
{
    for (int i = count - 1; i >= 0; i--, value /= 10)
        out[i] = (char)('0' + value % 10);
}

//  By hand rather than gmtime_r + snprintf: the stream formats one per event.
void event_ts_format (int64_t ts_ms, char *buffer)
{
    int64_t days = s_floor_div (ts_ms, 86400000);
    int64_t ms_of_day = ts_ms - days * 86400000;
    int64_t year;
    int month, day;
    s_civil_from_days (days, &year, &month, &day);
    //  Years outside 0..9999 do not fit RFC 3339; only a caller bug gets here.
    assert (year >= 0 && year <= 9999);
    memcpy (buffer, "0000-00-00T00:00:00.000Z", EVENT_TS_BYTES + 1);
    s_put_digits (buffer, year, 4);
    s_put_digits (buffer + 5, month, 2);
    s_put_digits (buffer + 8, day, 2);
    s_put_digits (buffer + 11, ms_of_day / 3600000, 2);
    s_put_digits (buffer + 14, ms_of_day / 60000 % 60, 2);
    s_put_digits (buffer + 17, ms_of_day / 1000 % 60, 2);
    s_put_digits (buffer + 20, ms_of_day % 1000, 3);
}

//  Reads exactly count digits; -1 if any is not a digit.
static int s_digits (const char *text, int count, int *value)
{
    int result = 0;
    for (int i = 0; i < count; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        result = result * 10 + (text[i] - '0');
    }
    *value = result;
    return 0;
}

//  RFC 3339 date-time: YYYY-MM-DD(T|t| )HH:MM:SS[.frac](Z|z|(+|-)HH:MM).
int event_ts_parse (const char *text, int64_t *ts_ms)
{
    int year, month, day, hour, minute, second;
    if (s_digits (text, 4, &year) || text[4] != '-' || s_digits (text + 5, 2, &month) ||
        text[7] != '-' || s_digits (text + 8, 2, &day) ||
        (text[10] != 'T' && text[10] != 't' && text[10] != ' ') ||
        s_digits (text + 11, 2, &hour) || text[13] != ':' ||
        s_digits (text + 14, 2, &minute) || text[16] != ':' ||
        s_digits (text + 17, 2, &second))
        return -1;
    if (month < 1 || month > 12 || day < 1 || day > s_days_in_month (year, month) ||
        hour > 23 || minute > 59 || second > 60)
        return -1;
    const char *p = text + 19;
    int ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        for (; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        if (digits == 0 || digits > 9)
            return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int offset_minutes = 0;
    if (*p == 'Z' || *p == 'z')
        p++;
    else if (*p == '+' || *p == '-') {
        int off_hour, off_minute;
        if (s_digits (p + 1, 2, &off_hour) || p[3] != ':' ||
            s_digits (p + 4, 2, &off_minute) || off_hour > 23 || off_minute > 59)
            return -1;
        offset_minutes = (off_hour * 60 + off_minute) * (*p == '-' ? -1 : 1);
        p += 6;
    } else
        return -1;
    if (*p != '\0')
        return -1;
    struct tm tm = {
        .tm_year = year - 1900,
        .tm_mon = month - 1,
        .tm_mday = day,
        .tm_hour = hour,
        .tm_min = minute,
        .tm_sec = second,
    };
    int64_t seconds = (int64_t)timegm (&tm) - (int64_t)offset_minutes * 60;
    *ts_ms = seconds * 1000 + ms;
    //  Offsets and leap seconds can step outside what the canonical form
    //  (four-digit UTC years) can write back.
    if (*ts_ms < EVENT_TS_MIN_MS || *ts_ms > EVENT_TS_MAX_MS)
        return -1;
    return 0;
}

//  Days since 1970-01-01 of a valid civil date (proleptic Gregorian).
static int64_t s_days_from_civil (int64_t year, int month, int day)
{
    year -= month <= 2;
    int64_t era = s_floor_div (year, 400);
    int64_t year_of_era = year - era * 400;
    int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t day_of_era =
        year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

//  The canonical 24-byte form only; false for anything else.
static bool s_fast_ts_full (const char *t, int64_t *minute_ms, int64_t *ts_ms)
{
    int year, month, day, hour, minute, second, ms;
    if (s_digits (t, 4, &year) || t[4] != '-' || s_digits (t + 5, 2, &month) ||
        t[7] != '-' || s_digits (t + 8, 2, &day) || t[10] != 'T' ||
        s_digits (t + 11, 2, &hour) || t[13] != ':' || s_digits (t + 14, 2, &minute) ||
        t[16] != ':' || s_digits (t + 17, 2, &second) || t[19] != '.' ||
        s_digits (t + 20, 3, &ms) || t[23] != 'Z')
        return false;
    if (month < 1 || month > 12 || day < 1 || day > s_days_in_month (year, month) ||
        hour > 23 || minute > 59 || second > 59)
        return false;
    int64_t days = s_days_from_civil (year, month, day);
    *minute_ms = ((days * 24 + hour) * 60 + minute) * 60000;
    *ts_ms = *minute_ms + second * 1000 + ms;
    return true;
}

//  Events arrive in ts order, so most share the previous one's minute: its
//  "YYYY-MM-DDTHH:MM" prefix (validated then) is remembered per thread and
//  only the seconds are read again.
#define TS_MINUTE_BYTES 16
typedef struct {
    char prefix[TS_MINUTE_BYTES];
    int64_t minute_ms;
    bool valid; // false until a first ts is read (the zeroed prefix is not one)
} ts_cache_t;
static _Thread_local ts_cache_t s_ts_cache;

bool event_ts_parse_canonical (const char *t, int64_t *ts_ms)
{
    ts_cache_t *cache = &s_ts_cache;
    if (cache->valid && memcmp (t, cache->prefix, TS_MINUTE_BYTES) == 0) {
        int second, ms;
        if (t[16] != ':' || s_digits (t + 17, 2, &second) || t[19] != '.' ||
            s_digits (t + 20, 3, &ms) || t[23] != 'Z' || second > 59)
            return false;
        *ts_ms = cache->minute_ms + second * 1000 + ms;
        return true;
    }
    int64_t minute_ms;
    if (!s_fast_ts_full (t, &minute_ms, ts_ms))
        return false;
    memcpy (cache->prefix, t, TS_MINUTE_BYTES);
    cache->minute_ms = minute_ms;
    cache->valid = true;
    return true;
}

void event_ts_cache_reset (void)
{
    memset (&s_ts_cache, 0, sizeof s_ts_cache);
}
