/*  test_event_time — the RFC 3339 timestamps (event_time.c): both readers
    and the formatter, against known values and gmtime_r.
*/
#include "event_check.h"

#include <stdlib.h>
#include <time.h>

static void test_ts_parse_and_format (void)
{
    int64_t ms;
    CHECK (event_ts_parse ("1970-01-01T00:00:00.000Z", &ms) == 0 && ms == 0);
    CHECK (event_ts_parse ("1970-01-01T00:00:00Z", &ms) == 0 && ms == 0);
    CHECK (event_ts_parse ("2026-11-22T07:28:47.123Z", &ms) == 0 &&
           ms == 1795332527123LL);
    CHECK (event_ts_parse ("2026-11-22T08:28:47.1239999+01:00", &ms) == 0 &&
           ms == 1795332527123LL);
    CHECK (event_ts_parse ("2026-11-22t02:28:47.5-05:00", &ms) == 0 &&
           ms == 1795332527500LL);
    CHECK (event_ts_parse ("2024-02-29T00:00:00Z", &ms) == 0);
    CHECK (event_ts_parse ("2023-02-29T00:00:00Z", &ms) == -1);
    CHECK (event_ts_parse ("2026-13-01T00:00:00Z", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T24:00:00Z", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T07:28:47.Z", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T07:28:47.1234567890Z", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T07:28:47", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T07:28:47Zjunk", &ms) == -1);
    CHECK (event_ts_parse ("2026-11-22T07:28:47+0100", &ms) == -1);
    CHECK (event_ts_parse ("9999-12-31T23:59:59.999Z", &ms) == 0 &&
           ms == EVENT_TS_MAX_MS);
    CHECK (event_ts_parse ("9999-12-31T23:59:60.999Z", &ms) == -1);
    CHECK (event_ts_parse ("0000-01-01T00:00:00.000+00:01", &ms) == -1);
    CHECK (event_ts_parse ("0000-01-01T00:00:00.000Z", &ms) == 0 &&
           ms == EVENT_TS_MIN_MS);
    char text[EVENT_TS_BYTES + 1];
    event_ts_format (1795332527123LL, text);
    CHECK (strcmp (text, "2026-11-22T07:28:47.123Z") == 0);
    event_ts_format (-1, text);
    CHECK (strcmp (text, "1969-12-31T23:59:59.999Z") == 0);
    srand (7);
    for (int i = 0; i < 100000; i++) {
        int64_t value = ((int64_t)rand () << 20 ^ rand ()) % 253402300800000LL;
        int64_t parsed, fast;
        event_ts_format (value, text);
        CHECK (event_ts_parse (text, &parsed) == 0 && parsed == value);
        CHECK (event_ts_parse_canonical (text, &fast) && fast == value);
    }
}

//  The hand-written formatter against gmtime_r and snprintf.
static void test_ts_format_equals_gmtime (void)
{
    srand (99);
    for (int i = 0; i < 200000; i++) {
        int64_t value = (((int64_t)rand () << 31) ^ rand ()) %
                            (EVENT_TS_MAX_MS - EVENT_TS_MIN_MS + 1) +
                        EVENT_TS_MIN_MS;
        if (i % 4 == 0) // around now, and day boundaries
            value = 1795332527123LL + (int64_t)(rand () % 400000) * 86400000 / 7 - i;
        char text[EVENT_TS_BYTES + 1], expected[96];
        event_ts_format (value, text);
        time_t seconds = (time_t)(value / 1000 - (value % 1000 < 0));
        struct tm tm;
        gmtime_r (&seconds, &tm);
        snprintf (expected, sizeof expected, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                  tm.tm_sec, (int)(value - (int64_t)seconds * 1000));
        CHECK (strcmp (text, expected) == 0);
    }
}

int main (int argc, char **argv)
{
    if (check_bench_requested (argc, argv))
        return 0;
    RUN (test_ts_parse_and_format);
    RUN (test_ts_format_equals_gmtime);
    return check_exit_status ();
}
