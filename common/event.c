/*  event — validation and canonical serialization of ledger events.

    Two parsers live here. The reference parser uses cJSON for structure and
    string decoding and is the only one that reports errors. Because cJSON
    keeps numbers as doubles, every integer (seq, v, amount, expect versions)
    is validated from its source digits, found by walking the raw text of the
    object alongside cJSON's children (both keep source order).

    The fast path (s_fast_parse_stored) accepts only the exact canonical byte
    layout of a stored line and gives up on anything else, so a line is
    either accepted by both parsers with identical results or handed to the
    reference parser. It exists for catch-up and log scans, where cJSON
    would be the bottleneck.

    Formatting never goes through cJSON's printer (too slow on the append
    path); it writes the canonical form with memcpy and a digit loop.
*/
#include "event.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Expect versions count events per account, bounded by seq.
#define EVENT_VERSION_MAX EVENT_SEQ_MAX
//  Members of one JSON object we look at; real events have at most 10.
#define EVENT_FIELDS_MAX 32
//  0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z
#define EVENT_TS_MIN_MS      (-62167219200000LL)
#define EVENT_TS_MAX_MS      253402300799999LL
#define EVENT_INT_DIGITS_MAX 19 // fits int64 before the overflow check

typedef enum {
    F_SEQ,
    F_ID,
    F_TYPE,
    F_V,
    F_TS,
    F_ACCOUNT,
    F_FROM,
    F_TO,
    F_AMOUNT,
    F_META,
    F_EXPECT,
    F_CURRENCY,
    F_LIMIT,
    F_METADATA,
    F_COUNT
} field_t;

static const char *s_field_names[F_COUNT] = {
    "seq", "id",     "type", "v",      "ts",       "account",         "from",
    "to",  "amount", "meta", "expect", "currency", "overdraft_limit", "metadata",
};

static const char *s_type_names[] = {
    "", "deposited", "withdrawn", "transferred", "account_opened", "account_updated"};
#define EVENT_TYPE_LAST EVENT_ACCOUNT_UPDATED
//  The same as JSON strings, for formatting (they need no escapes).
static const char *s_type_names_quoted[] = {"\"\"",
                                            "\"deposited\"",
                                            "\"withdrawn\"",
                                            "\"transferred\"",
                                            "\"account_opened\"",
                                            "\"account_updated\""};
//  overdraft_limit: 0 .. 10^18, so -limit and balance - limit stay in int64.
#define EVENT_LIMIT_MAX 1000000000000000000LL

//  Raw source text of one JSON value.
typedef struct {
    const char *text;
    size_t bytes;
} span_t;

typedef struct {
    const cJSON *item;
    span_t raw;
} slot_t;

//  Bytes allowed in ids and accounts after the first one.
static unsigned char s_id_chars[256];
static bool s_id_chars_ready;

static void s_id_chars_init (void)
{
    if (s_id_chars_ready)
        return;
    for (int c = 0; c < 256; c++)
        s_id_chars[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                        c == '-';
    s_id_chars_ready = true;
}

static bool s_is_alnum (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

//  Writes a one-line reason; control bytes from the input become '?'.
static int s_fail (char *error, size_t error_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int s_fail (char *error, size_t error_size, const char *format, ...)
{
    if (error && error_size > 0) {
        va_list args;
        va_start (args, format);
        vsnprintf (error, error_size, format, args);
        va_end (args);
        for (char *c = error; *c; c++)
            if ((unsigned char)*c < 0x20)
                *c = '?';
    }
    return -1;
}

void event_init (event_t *self)
{
    assert (self);
    memset (self, 0, sizeof *self);
    self->v = EVENT_SCHEMA_VERSION;
    memcpy (self->currency, EVENT_CURRENCY_V1, sizeof EVENT_CURRENCY_V1);
}

bool event_id_is_valid (const char *text, size_t bytes)
{
    s_id_chars_init ();
    if (bytes < 1 || bytes > EVENT_ID_BYTES_MAX || !s_is_alnum ((unsigned char)text[0]))
        return false;
    for (size_t i = 1; i < bytes; i++)
        if (!s_id_chars[(unsigned char)text[i]])
            return false;
    return true;
}

event_type_t event_type_from_name (const char *name)
{
    for (int type = EVENT_DEPOSITED; type <= EVENT_TYPE_LAST; type++)
        if (strcmp (name, s_type_names[type]) == 0)
            return (event_type_t)type;
    return EVENT_TYPE_UNKNOWN;
}

const char *event_type_name (event_type_t type)
{
    if (type < EVENT_DEPOSITED || type > EVENT_TYPE_LAST)
        return "";
    return s_type_names[type];
}

bool event_type_moves_money (event_type_t type)
{
    return type == EVENT_DEPOSITED || type == EVENT_WITHDRAWN ||
           type == EVENT_TRANSFERRED;
}

bool event_currency_is_valid (const char *text, size_t bytes)
{
    if (bytes < 3 || bytes > EVENT_CURRENCY_BYTES_MAX || text[0] < 'A' || text[0] > 'Z')
        return false;
    for (size_t i = 1; i < bytes; i++)
        if (!((text[i] >= 'A' && text[i] <= 'Z') || (text[i] >= '0' && text[i] <= '9')))
            return false;
    return true;
}

bool event_metadata_key_is_valid (const char *text, size_t bytes)
{
    if (bytes < 1 || bytes > EVENT_METADATA_KEY_BYTES_MAX || text[0] < 'a' ||
        text[0] > 'z')
        return false;
    for (size_t i = 1; i < bytes; i++)
        if (!((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= '0' && text[i] <= '9') ||
              text[i] == '_'))
            return false;
    return true;
}

bool event_principal_is_valid (const char *text, size_t bytes)
{
    if (bytes < 1 || bytes > EVENT_PRINCIPAL_BYTES_MAX || text[0] < 'a' || text[0] > 'z')
        return false;
    for (size_t i = 1; i < bytes; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

bool event_text_is_utf8 (const char *text, size_t bytes)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < bytes) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        unsigned int min, cp;
        if (c >= 0xC2 && c <= 0xDF)
            extra = 1, min = 0x80, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            extra = 2, min = 0x800, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            extra = 3, min = 0x10000, cp = c & 0x07;
        else
            return false;
        if (bytes - i <= extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += extra + 1;
    }
    return true;
}

//  --------------------------------------------------------------------------
//  Timestamps

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

static bool s_fast_ts_parse (const char *t, int64_t *ts_ms)
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

//  --------------------------------------------------------------------------
//  Canonical formatting

typedef struct {
    char *p;
    char *end; // one before the buffer's end, room for the NUL
    bool overflow;
} writer_t;

static void s_put (writer_t *w, const char *data, size_t bytes)
{
    if (w->overflow || (size_t)(w->end - w->p) < bytes) {
        w->overflow = true;
        return;
    }
    memcpy (w->p, data, bytes);
    w->p += bytes;
}

#define s_put_lit(w, literal) s_put ((w), (literal), sizeof (literal) - 1)

size_t event_format_int (char *target, int64_t value)
{
    char digits[EVENT_INT_BYTES_MAX];
    char *start = digits + sizeof digits;
    //  The magnitude as unsigned, so INT64_MIN has one too.
    uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    do {
        *--start = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0)
        *--start = '-';
    size_t bytes = (size_t)(digits + sizeof digits - start);
    memcpy (target, start, bytes);
    return bytes;
}

static void s_put_int (writer_t *w, int64_t value)
{
    char digits[EVENT_INT_BYTES_MAX];
    s_put (w, digits, event_format_int (digits, value));
}

//  Eight bytes at a time (SWAR): whether a word holds a byte that a JSON
//  string cannot carry as it is (a quote, a backslash, a control byte).
//  Exact as a yes/no; which byte it is, is found byte by byte after.
#define SWAR_ONES  0x0101010101010101ULL
#define SWAR_HIGHS 0x8080808080808080ULL

static bool s_word_has_special (uint64_t word)
{
    uint64_t quotes = word ^ (SWAR_ONES * '"');
    uint64_t backslashes = word ^ (SWAR_ONES * '\\');
    uint64_t special = ((word - SWAR_ONES * 0x20) & ~word) |
                       ((quotes - SWAR_ONES) & ~quotes) |
                       ((backslashes - SWAR_ONES) & ~backslashes);
    return (special & SWAR_HIGHS) != 0;
}

static uint64_t s_word (const char *text)
{
    uint64_t word;
    memcpy (&word, text, sizeof word);
    return word;
}

//  The common case, a string with nothing to escape, in one pass: words
//  copied and checked together (the last one overlapping the one before;
//  a short string padded with spaces), then the closing quote. Returns
//  false, with the writer where it was, when there is not room or some
//  byte needs an escape.
static bool s_put_plain_string (writer_t *w, const char *text, size_t bytes)
{
    if (w->overflow || (size_t)(w->end - w->p) < bytes + 2)
        return false;
    char *out = w->p + 1;
    if (bytes < sizeof (uint64_t)) {
        uint64_t word = SWAR_ONES * ' ';
        memcpy (&word, text, bytes);
        if (s_word_has_special (word))
            return false;
        memcpy (out, text, bytes);
    } else {
        uint64_t special = 0;
        for (size_t at = 0; at + sizeof (uint64_t) <= bytes; at += sizeof (uint64_t)) {
            uint64_t word = s_word (text + at);
            special |= s_word_has_special (word);
            memcpy (out + at, &word, sizeof word);
        }
        uint64_t last = s_word (text + bytes - sizeof last);
        if (special || s_word_has_special (last))
            return false;
        memcpy (out + bytes - sizeof last, &last, sizeof last);
    }
    w->p[0] = '"';
    out[bytes] = '"';
    w->p = out + bytes + 1;
    return true;
}

//  Minimal escaping: \" \\ the short control escapes, other controls as \u00xx.
//  Bytes copied as they are, in runs found a word at a time. Kept out of
//  line: inlined, its frame made every plain string cost twice as much.
__attribute__ ((noinline)) static void s_put_escaped (writer_t *w, const char *text,
                                                      size_t bytes)
{
    static const char hex[] = "0123456789abcdef";
    const char *end = text + bytes;
    s_put_lit (w, "\"");
    const char *run = text;
    for (const char *c = text;; c++) {
        while (end - c >= 8 && !s_word_has_special (s_word (c)))
            c += 8;
        while (c < end && (unsigned char)*c >= 0x20 && *c != '"' && *c != '\\')
            c++;
        s_put (w, run, (size_t)(c - run));
        run = c + 1;
        if (c == end)
            break;
        unsigned char byte = (unsigned char)*c;
        char escape[6] = {'\\', 0, 0, 0, 0, 0};
        size_t escape_bytes = 2;
        switch (byte) {
        case '"':
            escape[1] = '"';
            break;
        case '\\':
            escape[1] = '\\';
            break;
        case '\n':
            escape[1] = 'n';
            break;
        case '\r':
            escape[1] = 'r';
            break;
        case '\t':
            escape[1] = 't';
            break;
        case '\b':
            escape[1] = 'b';
            break;
        case '\f':
            escape[1] = 'f';
            break;
        default:
            memcpy (escape + 1, "u00", 3);
            escape[4] = hex[byte >> 4];
            escape[5] = hex[byte & 0xF];
            escape_bytes = 6;
        }
        s_put (w, escape, escape_bytes);
    }
    s_put_lit (w, "\"");
}

static void s_put_type (writer_t *w, event_type_t type)
{
    const char *quoted = s_type_names_quoted[*event_type_name (type) ? type : 0];
    s_put (w, quoted, strlen (quoted));
}

static void s_put_string (writer_t *w, const char *text)
{
    size_t bytes = strlen (text);
    if (!s_put_plain_string (w, text, bytes))
        s_put_escaped (w, text, bytes);
}

//  Everything after ts: the type's fields and meta (shared by both forms).
static void s_put_limit (writer_t *w, int64_t limit)
{
    s_put_lit (w, ",\"overdraft_limit\":");
    if (limit == EVENT_LIMIT_UNLIMITED)
        s_put_lit (w, "null");
    else
        s_put_int (w, limit);
}

//  The fields of account_opened and account_updated.
static void s_put_account_body (writer_t *w, const event_t *self)
{
    s_put_lit (w, ",\"account\":");
    s_put_string (w, self->account);
    if (self->type == EVENT_ACCOUNT_OPENED) {
        s_put_lit (w, ",\"currency\":");
        s_put_string (w, self->currency);
    }
    if (self->type == EVENT_ACCOUNT_OPENED || self->has_limit)
        s_put_limit (w, self->overdraft_limit);
    if (self->metadata_bytes) {
        s_put_lit (w, ",\"metadata\":");
        s_put (w, self->metadata, self->metadata_bytes);
    }
}

static void s_put_body (writer_t *w, const event_t *self)
{
    if (self->type == EVENT_TRANSFERRED) {
        s_put_lit (w, ",\"from\":");
        s_put_string (w, self->from);
        s_put_lit (w, ",\"to\":");
        s_put_string (w, self->to);
    } else if (!event_type_moves_money (self->type)) {
        s_put_account_body (w, self);
    } else {
        s_put_lit (w, ",\"account\":");
        s_put_string (w, self->account);
    }
    if (event_type_moves_money (self->type)) {
        s_put_lit (w, ",\"amount\":");
        s_put_int (w, self->amount);
        //  v1 lines have no currency: they format back to their own bytes.
        if (self->v >= 2) {
            s_put_lit (w, ",\"currency\":");
            s_put_string (w, self->currency);
        }
    }
    const char *values[] = {self->correlation_id, self->request_id, self->reference,
                            self->principal};
    const char *keys[] = {
        "\"correlation_id\":", "\"request_id\":", "\"reference\":", "\"principal\":"};
    bool any = false;
    for (size_t i = 0; i < 4; i++) {
        if (values[i][0] == '\0')
            continue;
        if (any)
            s_put_lit (w, ",");
        else
            s_put_lit (w, ",\"meta\":{");
        any = true;
        s_put (w, keys[i], strlen (keys[i]));
        s_put_string (w, values[i]);
    }
    if (any)
        s_put_lit (w, "}");
}

static size_t s_finish (writer_t *w, char *buffer)
{
    if (w->overflow)
        return 0;
    *w->p = '\0';
    return (size_t)(w->p - buffer);
}

//  The events of one append share their ts: it is formatted once.
static const char *s_cached_ts (int64_t ts_ms)
{
    static _Thread_local int64_t cached_ms = 0;
    static _Thread_local char ts[EVENT_TS_BYTES + 1] = "1970-01-01T00:00:00.000Z";
    if (ts_ms != cached_ms) {
        event_ts_format (ts_ms, ts);
        cached_ms = ts_ms;
    }
    return ts;
}

size_t event_format_stored (const event_t *self, char *buffer, size_t buffer_size)
{
    assert (self && buffer);
    if (buffer_size == 0 || self->type == EVENT_TYPE_UNKNOWN)
        return 0;
    writer_t w = {buffer, buffer + buffer_size - 1, false};
    const char *ts = s_cached_ts (self->ts_ms);
    s_put_lit (&w, "{\"seq\":");
    s_put_int (&w, self->seq);
    s_put_lit (&w, ",\"id\":");
    s_put_string (&w, self->id);
    s_put_lit (&w, ",\"type\":");
    s_put_type (&w, self->type);
    s_put_lit (&w, ",\"v\":");
    s_put_int (&w, self->v);
    s_put_lit (&w, ",\"ts\":\"");
    s_put (&w, ts, EVENT_TS_BYTES);
    s_put_lit (&w, "\"");
    s_put_body (&w, self);
    s_put_lit (&w, "}");
    return s_finish (&w, buffer);
}

//  A canonical proposed text is the stored line without seq and ts (and
//  with expect): {"id":..,"type":..,"v":1 BODY [,"expect":{..}]}. The
//  stored line is that with {"seq":N, for its { and ,"ts":"..." before
//  BODY, expect left out: three copies instead of escaping every string
//  again (formatting was a fifth of the stream's work on a batch).
size_t event_format_stored_splice (const event_t *self, const char *json,
                                   const event_splice_t *splice, char *buffer,
                                   size_t buffer_size)
{
    assert (self && json && splice && buffer);
    if (splice->body == 0)
        return event_format_stored (self, buffer, buffer_size);
    if (buffer_size == 0 || self->type == EVENT_TYPE_UNKNOWN)
        return 0;
    //  The length first, so the copies need no checks of their own.
    char digits[24];
    writer_t number = {digits, digits + sizeof digits - 1, false};
    s_put_int (&number, self->seq);
    size_t seq_bytes = (size_t)(number.p - digits);
    size_t head_bytes = splice->body - 1; // "id":..,"type":..,"v":1
    size_t body_bytes = splice->body_end - splice->body;
    static const char seq_key[] = "{\"seq\":", ts_key[] = ",\"ts\":\"";
    size_t bytes = (sizeof seq_key - 1) + seq_bytes + 1 + head_bytes +
                   (sizeof ts_key - 1) + EVENT_TS_BYTES + 1 + body_bytes + 1;
    if (bytes >= buffer_size)
        return 0;
    char *p = buffer;
    memcpy (p, seq_key, sizeof seq_key - 1);
    p += sizeof seq_key - 1;
    memcpy (p, digits, seq_bytes);
    p += seq_bytes;
    *p++ = ',';
    memcpy (p, json + 1, head_bytes);
    p += head_bytes;
    memcpy (p, ts_key, sizeof ts_key - 1);
    p += sizeof ts_key - 1;
    memcpy (p, s_cached_ts (self->ts_ms), EVENT_TS_BYTES);
    p += EVENT_TS_BYTES;
    *p++ = '"';
    memcpy (p, json + splice->body, body_bytes);
    p += body_bytes;
    *p++ = '}';
    *p = '\0';
    assert ((size_t)(p - buffer) == bytes);
    return bytes;
}

size_t event_format_proposed (const event_t *self, char *buffer, size_t buffer_size)
{
    assert (self && buffer);
    if (buffer_size == 0 || self->type == EVENT_TYPE_UNKNOWN)
        return 0;
    writer_t w = {buffer, buffer + buffer_size - 1, false};
    s_put_lit (&w, "{\"id\":");
    s_put_string (&w, self->id);
    s_put_lit (&w, ",\"type\":");
    s_put_type (&w, self->type);
    s_put_lit (&w, ",\"v\":");
    s_put_int (&w, self->v);
    s_put_body (&w, self);
    for (size_t i = 0; i < self->expect_count; i++) {
        if (i == 0)
            s_put_lit (&w, ",\"expect\":{");
        else
            s_put_lit (&w, ",");
        s_put_string (&w, self->expect[i].account);
        s_put_lit (&w, ":");
        s_put_int (&w, self->expect[i].version);
    }
    if (self->expect_count > 0)
        s_put_lit (&w, "}");
    s_put_lit (&w, "}");
    return s_finish (&w, buffer);
}

static int s_metadata_key_compare (const void *a, const void *b)
{
    return strcmp ((*(const cJSON *const *)a)->string,
                   (*(const cJSON *const *)b)->string);
}

int event_metadata_format (const void *cjson_object, char *out, char *error,
                           size_t error_size)
{
    const cJSON *object = cjson_object;
    assert (out);
    if (!cJSON_IsObject (object))
        return s_fail (error, error_size,
                       "metadata: must be an object of strings (at most %d keys)",
                       EVENT_METADATA_KEYS_MAX);
    const cJSON *members[EVENT_METADATA_KEYS_MAX];
    size_t count = 0;
    for (const cJSON *child = object->child; child; child = child->next) {
        if (count == EVENT_METADATA_KEYS_MAX)
            return s_fail (error, error_size, "metadata: more than %d keys",
                           EVENT_METADATA_KEYS_MAX);
        if (!event_metadata_key_is_valid (child->string, strlen (child->string)))
            return s_fail (error, error_size,
                           "metadata.%.40s: keys must match ^[a-z][a-z0-9_]{0,31}$",
                           child->string);
        if (!cJSON_IsString (child))
            return s_fail (error, error_size, "metadata.%s: must be a string",
                           child->string);
        size_t bytes = strlen (child->valuestring);
        if (bytes > EVENT_METADATA_VALUE_BYTES_MAX ||
            !event_text_is_utf8 (child->valuestring, bytes))
            return s_fail (error, error_size,
                           "metadata.%s: must be valid UTF-8 of at most %d bytes",
                           child->string, EVENT_METADATA_VALUE_BYTES_MAX);
        members[count++] = child;
    }
    qsort (members, count, sizeof members[0], s_metadata_key_compare);
    writer_t w = {out, out + EVENT_METADATA_BYTES_MAX, false};
    s_put_lit (&w, "{");
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && strcmp (members[i]->string, members[i - 1]->string) == 0)
            return s_fail (error, error_size, "metadata.%s: duplicate key",
                           members[i]->string);
        if (i)
            s_put_lit (&w, ",");
        s_put_string (&w, members[i]->string);
        s_put_lit (&w, ":");
        s_put_string (&w, members[i]->valuestring);
    }
    s_put_lit (&w, "}");
    if (w.overflow)
        return s_fail (error, error_size, "metadata: longer than %d bytes as JSON",
                       EVENT_METADATA_BYTES_MAX);
    *w.p = '\0';
    return (int)(w.p - out);
}

//  --------------------------------------------------------------------------
//  Raw JSON walking (input already validated by cJSON; bounded by the NUL)

static const char *s_skip_ws (const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *s_skip_string (const char *p)
{
    for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && p[1])
            p++;
    return *p ? p + 1 : p;
}

static const char *s_skip_value (const char *p)
{
    if (*p == '"')
        return s_skip_string (p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = s_skip_string (p);
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']')
                depth--;
            p++;
            if (depth == 0)
                break;
        }
        return p;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r')
        p++;
    return p;
}

//  Value spans of the members of the object at p, in source order.
//  Returns the member count (spans beyond max are not stored).
static size_t s_raw_members (const char *p, span_t *spans, size_t max)
{
    size_t count = 0;
    if (*p != '{')
        return 0;
    p = s_skip_ws (p + 1);
    while (*p == '"') {
        p = s_skip_ws (s_skip_string (p));
        if (*p != ':')
            break;
        p = s_skip_ws (p + 1);
        const char *value = p;
        p = s_skip_value (p);
        if (count < max)
            spans[count] = (span_t){value, (size_t)(p - value)};
        count++;
        p = s_skip_ws (p);
        if (*p == ',')
            p = s_skip_ws (p + 1);
    }
    return count;
}

//  An integer in [min, max] written as plain JSON digits (no fraction, no
//  exponent, no leading zero), exact at any size.
static bool s_raw_int (span_t raw, int64_t min, int64_t max, int64_t *value)
{
    const char *p = raw.text;
    size_t bytes = raw.bytes;
    bool negative = bytes > 0 && *p == '-';
    if (negative)
        p++, bytes--;
    if (bytes == 0 || bytes > EVENT_INT_DIGITS_MAX || (p[0] == '0' && bytes > 1))
        return false;
    uint64_t magnitude = 0;
    for (size_t i = 0; i < bytes; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        magnitude = magnitude * 10 + (uint64_t)(p[i] - '0');
    }
    if (magnitude > (uint64_t)INT64_MAX)
        return false;
    int64_t result = negative ? -(int64_t)magnitude : (int64_t)magnitude;
    if (result < min || result > max)
        return false;
    *value = result;
    return true;
}

//  cJSON silently cuts a string at \u0000 and lets raw control bytes
//  through; both are refused here from the source text.
static bool s_raw_string_is_clean (span_t raw)
{
    for (size_t i = 1; i + 1 < raw.bytes; i++) {
        unsigned char c = (unsigned char)raw.text[i];
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (raw.text[i + 1] == 'u' && i + 5 < raw.bytes &&
                memcmp (raw.text + i + 2, "0000", 4) == 0)
                return false;
            i++;
        }
    }
    return true;
}

//  --------------------------------------------------------------------------
//  Reference parser (cJSON)

typedef struct {
    bool stored; // stored line (seq, ts) or proposed event (expect)
    char *error;
    size_t error_size;
} parse_ctx_t;

static int s_get_string (parse_ctx_t *ctx, const slot_t *slot, const char *name,
                         char *out, size_t out_max, const char *rule)
{
    if (!cJSON_IsString (slot->item) || !s_raw_string_is_clean (slot->raw))
        return s_fail (ctx->error, ctx->error_size, "%s: %s", name, rule);
    size_t bytes = strlen (slot->item->valuestring);
    if (bytes == 0 || bytes > out_max ||
        !event_text_is_utf8 (slot->item->valuestring, bytes))
        return s_fail (ctx->error, ctx->error_size, "%s: %s", name, rule);
    memcpy (out, slot->item->valuestring, bytes + 1);
    return 0;
}

static int s_get_id (parse_ctx_t *ctx, const slot_t *slot, const char *name, char *out,
                     size_t out_max)
{
    static const char rule[] =
        "must be a string matching ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$";
    if (!slot->item)
        return s_fail (ctx->error, ctx->error_size, "%s: missing", name);
    if (s_get_string (ctx, slot, name, out, out_max, rule))
        return -1;
    if (!event_id_is_valid (out, strlen (out)))
        return s_fail (ctx->error, ctx->error_size, "%s: %s", name, rule);
    return 0;
}

//  Maps members to fields; unknown names are kept for a later verdict.
static int s_collect (parse_ctx_t *ctx, const cJSON *root, const char *root_text,
                      slot_t slots[F_COUNT], const char **unknown)
{
    span_t spans[EVENT_FIELDS_MAX];
    size_t count = s_raw_members (root_text, spans, EVENT_FIELDS_MAX);
    if (count > EVENT_FIELDS_MAX)
        return s_fail (ctx->error, ctx->error_size, "event: more than %d fields",
                       EVENT_FIELDS_MAX);
    if ((int)count != cJSON_GetArraySize (root))
        return s_fail (ctx->error, ctx->error_size, "event: not valid JSON");
    size_t index = 0;
    *unknown = NULL;
    for (const cJSON *child = root->child; child; child = child->next, index++) {
        int field = 0;
        while (field < F_COUNT && strcmp (child->string, s_field_names[field]) != 0)
            field++;
        if (field == F_COUNT) {
            if (!*unknown)
                *unknown = child->string;
            continue;
        }
        if (slots[field].item)
            return s_fail (ctx->error, ctx->error_size, "%s: duplicate field",
                           s_field_names[field]);
        slots[field] = (slot_t){child, spans[index]};
    }
    return 0;
}

static int s_parse_common (parse_ctx_t *ctx, slot_t slots[F_COUNT], event_t *self)
{
    if (ctx->stored) {
        if (!slots[F_SEQ].item)
            return s_fail (ctx->error, ctx->error_size, "seq: missing");
        if (!cJSON_IsNumber (slots[F_SEQ].item) ||
            !s_raw_int (slots[F_SEQ].raw, 1, EVENT_SEQ_MAX, &self->seq))
            return s_fail (ctx->error, ctx->error_size,
                           "seq: must be an integer between 1 and 2^53-1");
    } else if (slots[F_SEQ].item || slots[F_TS].item)
        return s_fail (ctx->error, ctx->error_size,
                       "%s: not allowed in a proposed event (the stream assigns it)",
                       slots[F_SEQ].item ? "seq" : "ts");
    if (s_get_id (ctx, &slots[F_ID], "id", self->id, EVENT_ID_BYTES_MAX))
        return -1;
    if (!slots[F_TYPE].item)
        return s_fail (ctx->error, ctx->error_size, "type: missing");
    static const char type_rule[] =
        "must be deposited, withdrawn, transferred, account_opened or account_updated";
    if (s_get_string (ctx, &slots[F_TYPE], "type", self->type_name, EVENT_TYPE_BYTES_MAX,
                      type_rule))
        return -1;
    self->type = event_type_from_name (self->type_name);
    if (!event_id_is_valid (self->type_name, strlen (self->type_name)) ||
        (!ctx->stored && self->type == EVENT_TYPE_UNKNOWN))
        return s_fail (ctx->error, ctx->error_size, "type: %s", type_rule);
    if (!slots[F_V].item)
        return s_fail (ctx->error, ctx->error_size, "v: missing");
    int64_t v_max = ctx->stored ? 1000000 : EVENT_SCHEMA_VERSION;
    int64_t v;
    if (!cJSON_IsNumber (slots[F_V].item) || !s_raw_int (slots[F_V].raw, 1, v_max, &v))
        return s_fail (ctx->error, ctx->error_size,
                       "v: must be an integer between 1 and %lld", (long long)v_max);
    self->v = (int)v;
    if (ctx->stored) {
        static const char ts_rule[] = "must be RFC 3339 UTC with milliseconds "
                                      "(YYYY-MM-DDTHH:MM:SS.mmmZ)";
        if (!slots[F_TS].item)
            return s_fail (ctx->error, ctx->error_size, "ts: missing");
        if (!cJSON_IsString (slots[F_TS].item) ||
            strlen (slots[F_TS].item->valuestring) != EVENT_TS_BYTES ||
            event_ts_parse (slots[F_TS].item->valuestring, &self->ts_ms))
            return s_fail (ctx->error, ctx->error_size, "ts: %s", ts_rule);
        char canonical[EVENT_TS_BYTES + 1];
        event_ts_format (self->ts_ms, canonical);
        if (strcmp (canonical, slots[F_TS].item->valuestring) != 0)
            return s_fail (ctx->error, ctx->error_size, "ts: %s", ts_rule);
    }
    return 0;
}

static int s_parse_meta (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    static const char rule[] = "must be a non-empty string of at most 256 bytes of "
                               "valid UTF-8 without NUL";
    if (!cJSON_IsObject (slot->item))
        return s_fail (ctx->error, ctx->error_size,
                       "meta: must be an object with correlation_id, request_id, "
                       "reference or principal");
    span_t spans[EVENT_FIELDS_MAX];
    size_t count = s_raw_members (slot->raw.text, spans, EVENT_FIELDS_MAX);
    if (count > 4 || (int)count != cJSON_GetArraySize (slot->item))
        return s_fail (ctx->error, ctx->error_size, "meta: at most 4 fields");
    size_t index = 0;
    for (const cJSON *child = slot->item->child; child; child = child->next, index++) {
        bool principal = strcmp (child->string, "principal") == 0;
        char *out = strcmp (child->string, "correlation_id") == 0 ? self->correlation_id
                    : strcmp (child->string, "request_id") == 0   ? self->request_id
                    : strcmp (child->string, "reference") == 0    ? self->reference
                    : principal                                   ? self->principal
                                                                  : NULL;
        if (!out)
            return s_fail (ctx->error, ctx->error_size, "meta.%.64s: unknown field",
                           child->string);
        if (out[0])
            return s_fail (ctx->error, ctx->error_size, "meta.%s: duplicate field",
                           child->string);
        char name[32];
        snprintf (name, sizeof name, "meta.%s", child->string);
        slot_t member = {child, spans[index]};
        if (principal) {
            static const char principal_rule[] =
                "must be a string matching ^[a-z][a-z0-9_.-]{0,63}$";
            if (s_get_string (ctx, &member, name, out, EVENT_PRINCIPAL_BYTES_MAX,
                              principal_rule))
                return -1;
            if (!event_principal_is_valid (out, strlen (out)))
                return s_fail (ctx->error, ctx->error_size, "%s: %s", name,
                               principal_rule);
        } else if (s_get_string (ctx, &member, name, out, EVENT_META_VALUE_BYTES_MAX,
                                 rule))
            return -1;
    }
    return 0;
}

static bool s_touches (const event_t *self, const char *account)
{
    if (self->type == EVENT_TRANSFERRED)
        return strcmp (account, self->from) == 0 || strcmp (account, self->to) == 0;
    return strcmp (account, self->account) == 0; // every other type names one account
}

static int s_parse_expect (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    span_t spans[EVENT_EXPECT_MAX + 1];
    size_t count = cJSON_IsObject (slot->item)
                       ? s_raw_members (slot->raw.text, spans, EVENT_EXPECT_MAX + 1)
                       : 0;
    if (!cJSON_IsObject (slot->item) || count > EVENT_EXPECT_MAX ||
        (int)count != cJSON_GetArraySize (slot->item))
        return s_fail (ctx->error, ctx->error_size,
                       "expect: must be an object of at most %d accounts to versions",
                       EVENT_EXPECT_MAX);
    size_t index = 0;
    for (const cJSON *child = slot->item->child; child; child = child->next, index++) {
        const char *account = child->string;
        if (!s_touches (self, account))
            return s_fail (ctx->error, ctx->error_size,
                           "expect.%.64s: not an account of this event", account);
        for (size_t k = 0; k < index; k++)
            if (strcmp (self->expect[k].account, account) == 0)
                return s_fail (ctx->error, ctx->error_size, "expect.%s: duplicate field",
                               account);
        event_expect_t *expect = &self->expect[index];
        if (!cJSON_IsNumber (child) ||
            !s_raw_int (spans[index], 0, EVENT_VERSION_MAX, &expect->version))
            return s_fail (ctx->error, ctx->error_size,
                           "expect.%s: must be an integer version >= 0", account);
        memcpy (expect->account, account, strlen (account) + 1);
        self->expect_count = index + 1;
    }
    return 0;
}

static int s_parse_amount (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    if (!slot->item)
        return s_fail (ctx->error, ctx->error_size, "amount: missing");
    if (!cJSON_IsNumber (slot->item) ||
        !s_raw_int (slot->raw, 1, EVENT_AMOUNT_MAX, &self->amount))
        return s_fail (ctx->error, ctx->error_size,
                       "amount: must be an integer between 1 and 10^15");
    return 0;
}

static int s_parse_currency (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    static const char rule[] = "must be a string matching ^[A-Z][A-Z0-9]{2,11}$";
    if (!slot->item)
        return s_fail (ctx->error, ctx->error_size, "currency: missing");
    if (s_get_string (ctx, slot, "currency", self->currency, EVENT_CURRENCY_BYTES_MAX,
                      rule) ||
        !event_currency_is_valid (self->currency, strlen (self->currency)))
        return s_fail (ctx->error, ctx->error_size, "currency: %s", rule);
    return 0;
}

static int s_parse_limit (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    self->has_limit = true;
    if (cJSON_IsNull (slot->item)) {
        self->overdraft_limit = EVENT_LIMIT_UNLIMITED;
        return 0;
    }
    if (!cJSON_IsNumber (slot->item) ||
        !s_raw_int (slot->raw, 0, EVENT_LIMIT_MAX, &self->overdraft_limit))
        return s_fail (ctx->error, ctx->error_size,
                       "overdraft_limit: must be null or an integer between 0 and 10^18");
    return 0;
}

static int s_parse_metadata (parse_ctx_t *ctx, const slot_t *slot, event_t *self)
{
    //  cJSON cuts strings at \u0000: refused from the source, as in meta.
    span_t spans[EVENT_METADATA_KEYS_MAX];
    size_t count = s_raw_members (slot->raw.text, spans, EVENT_METADATA_KEYS_MAX);
    for (size_t i = 0; i < count && i < EVENT_METADATA_KEYS_MAX; i++)
        if (*spans[i].text == '"' && !s_raw_string_is_clean (spans[i]))
            return s_fail (ctx->error, ctx->error_size,
                           "metadata: values must be valid UTF-8 without NUL");
    int bytes =
        event_metadata_format (slot->item, self->metadata, ctx->error, ctx->error_size);
    if (bytes < 0)
        return -1;
    self->metadata_bytes = (size_t)bytes;
    return 0;
}

//  The fields of account_opened and account_updated after account.
static int s_parse_account_body (parse_ctx_t *ctx, slot_t slots[F_COUNT], event_t *self)
{
    if (self->type == EVENT_ACCOUNT_OPENED) {
        if (s_parse_currency (ctx, &slots[F_CURRENCY], self))
            return -1;
        if (!slots[F_LIMIT].item)
            return s_fail (ctx->error, ctx->error_size, "overdraft_limit: missing");
    } else if (!slots[F_LIMIT].item && !slots[F_METADATA].item)
        return s_fail (ctx->error, ctx->error_size,
                       "account_updated: needs overdraft_limit or metadata");
    if (slots[F_LIMIT].item && s_parse_limit (ctx, &slots[F_LIMIT], self))
        return -1;
    if (slots[F_METADATA].item && s_parse_metadata (ctx, &slots[F_METADATA], self))
        return -1;
    return 0;
}

//  The fields of a known type, after the common ones.
static int s_parse_body (parse_ctx_t *ctx, slot_t slots[F_COUNT], const char *unknown,
                         event_t *self)
{
    bool transfer = self->type == EVENT_TRANSFERRED;
    bool money = event_type_moves_money (self->type);
    bool allowed[F_COUNT] = {
        [F_SEQ] = true,
        [F_ID] = true,
        [F_TYPE] = true,
        [F_V] = true,
        [F_TS] = true,
        [F_ACCOUNT] = !transfer,
        [F_FROM] = transfer,
        [F_TO] = transfer,
        [F_AMOUNT] = money,
        [F_META] = true,
        [F_EXPECT] = !ctx->stored,
        [F_CURRENCY] = self->type == EVENT_ACCOUNT_OPENED || (money && self->v >= 2),
        [F_LIMIT] = !money,
        [F_METADATA] = !money,
    };
    for (int field = 0; field < F_COUNT; field++)
        if (slots[field].item && !allowed[field])
            return s_fail (ctx->error, ctx->error_size, "%s: not allowed in a %s %s",
                           s_field_names[field], self->type_name,
                           ctx->stored ? "stored event" : "event");
    if (unknown)
        return s_fail (ctx->error, ctx->error_size, "%.64s: unknown field", unknown);
    if (transfer) {
        if (s_get_id (ctx, &slots[F_FROM], "from", self->from, EVENT_ACCOUNT_BYTES_MAX) ||
            s_get_id (ctx, &slots[F_TO], "to", self->to, EVENT_ACCOUNT_BYTES_MAX))
            return -1;
        if (strcmp (self->from, self->to) == 0)
            return s_fail (ctx->error, ctx->error_size, "to: must differ from from");
    } else if (s_get_id (ctx, &slots[F_ACCOUNT], "account", self->account,
                         EVENT_ACCOUNT_BYTES_MAX))
        return -1;
    if (!money) {
        if (s_parse_account_body (ctx, slots, self))
            return -1;
    } else if (s_parse_amount (ctx, &slots[F_AMOUNT], self) ||
               (self->v >= 2 && s_parse_currency (ctx, &slots[F_CURRENCY], self)))
        return -1;
    if (slots[F_META].item && s_parse_meta (ctx, &slots[F_META], self))
        return -1;
    if (slots[F_EXPECT].item && s_parse_expect (ctx, &slots[F_EXPECT], self))
        return -1;
    return 0;
}

//  The one place that knows old schema versions, after the body is read:
//  a v1 event gets the v2 model's defaults (currency XXX) and keeps v = 1,
//  which only the formatter looks at, so it is written back as the same
//  v1 bytes. Returns -1 for what no version had (account_* in v1).
static int s_upcast (parse_ctx_t *ctx, event_t *self)
{
    switch (self->v) {
    case 1:
        if (!event_type_moves_money (self->type))
            return s_fail (ctx->error, ctx->error_size, "v: %s needs version 2",
                           self->type_name);
        memcpy (self->currency, EVENT_CURRENCY_V1, sizeof EVENT_CURRENCY_V1);
        return 0;
    case EVENT_SCHEMA_VERSION:
        return 0;
    default:
        return s_fail (ctx->error, ctx->error_size, "v: no upcast from version %d",
                       self->v);
    }
}

static int s_parse_json (parse_ctx_t *ctx, const char *json, size_t bytes, event_t *self)
{
    if (bytes > EVENT_LINE_BYTES_MAX)
        return s_fail (ctx->error, ctx->error_size, "event: longer than %d bytes",
                       EVENT_LINE_BYTES_MAX);
    if (memchr (json, '\0', bytes))
        return s_fail (ctx->error, ctx->error_size, "event: contains a NUL byte");
    //  A NUL-terminated copy lets the raw walkers rely on the terminator.
    char text[EVENT_LINE_BYTES_MAX + 1];
    memcpy (text, json, bytes);
    text[bytes] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts (text, &end, false);
    if (!root || *s_skip_ws (end) != '\0') {
        cJSON_Delete (root);
        return s_fail (ctx->error, ctx->error_size, "event: not valid JSON");
    }
    int rc = -1;
    slot_t slots[F_COUNT] = {{0}};
    const char *unknown = NULL;
    if (!cJSON_IsObject (root)) {
        s_fail (ctx->error, ctx->error_size, "event: must be a JSON object");
        goto done;
    }
    if (s_collect (ctx, root, s_skip_ws (text), slots, &unknown) ||
        s_parse_common (ctx, slots, self))
        goto done;
    if (self->type == EVENT_TYPE_UNKNOWN || self->v > EVENT_SCHEMA_VERSION) {
        //  Stored events only: readers skip and count what they do not know.
        self->type = EVENT_TYPE_UNKNOWN;
        rc = 0;
        goto done;
    }
    if (s_parse_body (ctx, slots, unknown, self) == 0 && s_upcast (ctx, self) == 0)
        rc = 0;
done:
    cJSON_Delete (root);
    return rc;
}

//  --------------------------------------------------------------------------
//  Fast path: exact canonical stored lines only

typedef struct {
    const char *p;
    const char *end;
} cursor_t;

static bool s_lit (cursor_t *c, const char *literal, size_t bytes)
{
    if ((size_t)(c->end - c->p) < bytes || memcmp (c->p, literal, bytes) != 0)
        return false;
    c->p += bytes;
    return true;
}

#define s_expect_lit(c, literal) s_lit ((c), (literal), sizeof (literal) - 1)

//  Canonical positive integer in [1, max], followed by a non-digit.
static bool s_fast_uint (cursor_t *c, int64_t max, int64_t *value)
{
    const char *p = c->p;
    if (p == c->end || *p < '1' || *p > '9')
        return false;
    int64_t result = 0;
    int digits = 0;
    for (; p < c->end && *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 16) // our maxima have at most 16 digits
            return false;
        result = result * 10 + (*p - '0');
    }
    if (result > max)
        return false;
    *value = result;
    c->p = p;
    return true;
}

//  An id/account and its closing quote, copied as it is checked: four bytes
//  at a time while all four are id bytes (the table holds 0 or 1, and 0 for
//  the quote), then byte by byte up to the quote.
static bool s_fast_id (cursor_t *c, char *out)
{
    const unsigned char *u = (const unsigned char *)c->p;
    size_t room = (size_t)(c->end - c->p);
    if (room > EVENT_ID_BYTES_MAX + 1)
        room = EVENT_ID_BYTES_MAX + 1; // + 1 for the quote
    if (room == 0 || !s_is_alnum (u[0]))
        return false;
    out[0] = (char)u[0];
    size_t i = 1;
    while (i + 4 <= room && (s_id_chars[u[i]] & s_id_chars[u[i + 1]] &
                             s_id_chars[u[i + 2]] & s_id_chars[u[i + 3]])) {
        memcpy (out + i, u + i, 4);
        i += 4;
    }
    for (; i < room && s_id_chars[u[i]]; i++)
        out[i] = (char)u[i];
    if (i == room || u[i] != '"')
        return false;
    out[i] = '\0';
    c->p = (const char *)u + i + 1;
    return true;
}

static int s_hex_digit (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

//  The byte a canonical escape after a backslash stands for, moving p
//  past it; -1 for anything event_format_* would not have written.
static int s_fast_escape (const char **p_p, const char *end)
{
    const char *p = *p_p;
    if (p == end)
        return -1;
    int byte;
    switch (*p++) {
    case '"':
        byte = '"';
        break;
    case '\\':
        byte = '\\';
        break;
    case 'n':
        byte = '\n';
        break;
    case 'r':
        byte = '\r';
        break;
    case 't':
        byte = '\t';
        break;
    case 'b':
        byte = '\b';
        break;
    case 'f':
        byte = '\f';
        break;
    case 'u': {
        if (end - p < 4 || p[0] != '0' || p[1] != '0')
            return -1;
        int hi = s_hex_digit (p[2]), lo = s_hex_digit (p[3]);
        if (hi < 0 || lo < 0)
            return -1;
        byte = hi * 16 + lo;
        p += 4;
        //  Only controls without a short escape are written so.
        if (byte == 0 || byte >= 0x20 || byte == '\n' || byte == '\r' || byte == '\t' ||
            byte == '\b' || byte == '\f')
            return -1;
        break;
    }
    default:
        return -1;
    }
    *p_p = p;
    return byte;
}

//  One canonically escaped meta value and its closing quote. Runs of
//  plain bytes are found a word at a time and copied at once.
static bool s_fast_string (cursor_t *c, char *out)
{
    const char *p = c->p;
    size_t bytes = 0;
    uint64_t seen = 0; // every plain byte ORed in: its high bits tell non-ASCII
    for (;;) {
        const char *run = p;
        while (c->end - p >= 8 && !s_word_has_special (s_word (p))) {
            seen |= s_word (p);
            p += 8;
        }
        while (p < c->end && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
            seen |= (unsigned char)*p++;
        size_t run_bytes = (size_t)(p - run);
        if (run_bytes > EVENT_META_VALUE_BYTES_MAX - bytes)
            return false;
        memcpy (out + bytes, run, run_bytes);
        bytes += run_bytes;
        if (p == c->end || (unsigned char)*p < 0x20)
            return false;
        if (*p == '"')
            break;
        p++; // the backslash
        int byte = s_fast_escape (&p, c->end);
        if (byte < 0 || bytes == EVENT_META_VALUE_BYTES_MAX)
            return false;
        out[bytes++] = (char)byte; // escapes stand for ASCII only
    }
    if (bytes == 0)
        return false;
    out[bytes] = '\0';
    if ((seen & SWAR_HIGHS) && !event_text_is_utf8 (out, bytes))
        return false;
    c->p = p + 1;
    return true;
}

//  A principal name and its closing quote (no escapes: the pattern has none).
static bool s_fast_principal (cursor_t *c, char *out)
{
    const char *quote = memchr (c->p, '"', (size_t)(c->end - c->p));
    if (!quote || !event_principal_is_valid (c->p, (size_t)(quote - c->p)))
        return false;
    memcpy (out, c->p, (size_t)(quote - c->p));
    out[quote - c->p] = '\0';
    c->p = quote + 1;
    return true;
}

static bool s_fast_meta (cursor_t *c, event_t *self)
{
    bool any = false;
    if (s_expect_lit (c, "\"correlation_id\":\"")) {
        if (!s_fast_string (c, self->correlation_id))
            return false;
        any = true;
    }
    if (any ? s_expect_lit (c, ",\"request_id\":\"")
            : s_expect_lit (c, "\"request_id\":\"")) {
        if (!s_fast_string (c, self->request_id))
            return false;
        any = true;
    }
    if (any ? s_expect_lit (c, ",\"reference\":\"")
            : s_expect_lit (c, "\"reference\":\"")) {
        if (!s_fast_string (c, self->reference))
            return false;
        any = true;
    }
    if (any ? s_expect_lit (c, ",\"principal\":\"")
            : s_expect_lit (c, "\"principal\":\"")) {
        if (!s_fast_principal (c, self->principal))
            return false;
        any = true;
    }
    return any && s_expect_lit (c, "}");
}

//  A currency code and its closing quote.
static bool s_fast_currency (cursor_t *c, char *out)
{
    size_t room = (size_t)(c->end - c->p);
    if (room > EVENT_CURRENCY_BYTES_MAX + 1)
        room = EVENT_CURRENCY_BYTES_MAX + 1;
    const char *quote = memchr (c->p, '"', room);
    if (!quote || !event_currency_is_valid (c->p, (size_t)(quote - c->p)))
        return false;
    memcpy (out, c->p, (size_t)(quote - c->p));
    out[quote - c->p] = '\0';
    c->p = quote + 1;
    return true;
}

//  The type and its closing quote, then ,"v":1 or ,"v":2 (money events
//  only: the account types are rare and go the reference way).
static bool s_fast_type_v (cursor_t *c, event_t *self)
{
    const char *name = c->p;
    if (s_expect_lit (c, "deposited\""))
        self->type = EVENT_DEPOSITED;
    else if (s_expect_lit (c, "withdrawn\""))
        self->type = EVENT_WITHDRAWN;
    else if (s_expect_lit (c, "transferred\""))
        self->type = EVENT_TRANSFERRED;
    else
        return false;
    //  As read, up to the quote just passed.
    size_t bytes = (size_t)(c->p - 1 - name);
    memcpy (self->type_name, name, bytes);
    self->type_name[bytes] = '\0';
    if (s_expect_lit (c, ",\"v\":2"))
        self->v = 2;
    else if (s_expect_lit (c, ",\"v\":1"))
        self->v = 1; // the upcast, as s_upcast does it
    else
        return false;
    return c->p < c->end && *c->p == ',';
}

//  The type's fields and meta: everything s_put_body writes.
static bool s_fast_body (cursor_t *c, event_t *self)
{
    if (self->type == EVENT_TRANSFERRED) {
        if (!s_expect_lit (c, ",\"from\":\"") || !s_fast_id (c, self->from) ||
            !s_expect_lit (c, ",\"to\":\"") || !s_fast_id (c, self->to) ||
            strcmp (self->from, self->to) == 0)
            return false;
    } else if (!s_expect_lit (c, ",\"account\":\"") || !s_fast_id (c, self->account))
        return false;
    if (!s_expect_lit (c, ",\"amount\":") ||
        !s_fast_uint (c, EVENT_AMOUNT_MAX, &self->amount))
        return false;
    if (self->v == 1)
        memcpy (self->currency, EVENT_CURRENCY_V1, sizeof EVENT_CURRENCY_V1);
    else if (!s_expect_lit (c, ",\"currency\":\"") ||
             !s_fast_currency (c, self->currency))
        return false;
    if (s_expect_lit (c, ",\"meta\":{") && !s_fast_meta (c, self))
        return false;
    return true;
}

//  True and self filled if the line is exactly canonical and valid; false
//  (self in any state) for anything the reference parser must judge.
static bool s_fast_parse_stored (const char *line, size_t bytes, event_t *self)
{
    cursor_t c = {line, line + bytes};
    if (!s_expect_lit (&c, "{\"seq\":") || !s_fast_uint (&c, EVENT_SEQ_MAX, &self->seq) ||
        !s_expect_lit (&c, ",\"id\":\"") || !s_fast_id (&c, self->id) ||
        !s_expect_lit (&c, ",\"type\":\"") || !s_fast_type_v (&c, self))
        return false;
    if (!s_expect_lit (&c, ",\"ts\":\"") || c.end - c.p < EVENT_TS_BYTES + 1 ||
        !s_fast_ts_parse (c.p, &self->ts_ms))
        return false;
    c.p += EVENT_TS_BYTES;
    if (!s_expect_lit (&c, "\"") || !s_fast_body (&c, self))
        return false;
    return s_expect_lit (&c, "}") && c.p == c.end;
}

//  A canonical version: 0, or digits without a leading zero.
static bool s_fast_version (cursor_t *c, int64_t *version)
{
    if (c->p < c->end && *c->p == '0') {
        c->p++;
        *version = 0;
        return c->p < c->end && (*c->p < '0' || *c->p > '9');
    }
    return s_fast_uint (c, EVENT_VERSION_MAX, version);
}

//  ,"expect":{"account":version,...} as event_format_proposed writes it:
//  accounts of this event, each at most once.
static bool s_fast_expect (cursor_t *c, event_t *self)
{
    if (!s_expect_lit (c, ",\"expect\":{"))
        return true;
    do {
        if (self->expect_count == EVENT_EXPECT_MAX || !s_expect_lit (c, "\""))
            return false;
        event_expect_t *expect = &self->expect[self->expect_count];
        if (!s_fast_id (c, expect->account) || !s_expect_lit (c, ":") ||
            !s_fast_version (c, &expect->version) || !s_touches (self, expect->account))
            return false;
        for (size_t k = 0; k < self->expect_count; k++)
            if (strcmp (self->expect[k].account, expect->account) == 0)
                return false;
        self->expect_count++;
    } while (s_expect_lit (c, ","));
    return s_expect_lit (c, "}");
}

//  The same for event_format_proposed's form; splice (if not NULL) learns
//  where its body starts and ends.
static bool s_fast_parse_proposed (const char *json, size_t bytes, event_t *self,
                                   event_splice_t *splice)
{
    cursor_t c = {json, json + bytes};
    if (!s_expect_lit (&c, "{\"id\":\"") || !s_fast_id (&c, self->id) ||
        !s_expect_lit (&c, ",\"type\":\"") || !s_fast_type_v (&c, self))
        return false;
    const char *body = c.p;
    if (!s_fast_body (&c, self))
        return false;
    const char *body_end = c.p;
    if (!s_fast_expect (&c, self) || !s_expect_lit (&c, "}") || c.p != c.end)
        return false;
    if (splice) {
        splice->body = (size_t)(body - json);
        splice->body_end = (size_t)(body_end - json);
    }
    return true;
}

//  What the fast paths do not always write: clearing only these (not the
//  whole ~1.3 KiB event) is what event_init amounts to for their readers,
//  since every string they write is NUL-terminated.
static void s_fast_init (event_t *self)
{
    self->seq = 0;
    self->ts_ms = 0;
    self->v = EVENT_SCHEMA_VERSION;
    self->account[0] = '\0';
    self->from[0] = '\0';
    self->to[0] = '\0';
    self->correlation_id[0] = '\0';
    self->request_id[0] = '\0';
    self->reference[0] = '\0';
    self->principal[0] = '\0';
    self->currency[0] = '\0';
    self->has_limit = false;
    self->overdraft_limit = 0;
    self->metadata_bytes = 0;
    self->metadata[0] = '\0';
    self->expect_count = 0;
}

static bool s_fast_stored (const char *line, size_t bytes, event_t *self)
{
    s_fast_init (self);
    return s_fast_parse_stored (line, bytes, self);
}

static bool s_fast_proposed (const char *json, size_t bytes, event_t *self,
                             event_splice_t *splice)
{
    s_fast_init (self);
    return s_fast_parse_proposed (json, bytes, self, splice);
}

int event_parse_stored (const char *line, size_t bytes, event_t *self, char *error,
                        size_t error_size)
{
    assert (line && self);
    s_id_chars_init ();
    if (s_fast_stored (line, bytes, self))
        return 0;
    event_init (self);
    parse_ctx_t ctx = {true, error, error_size};
    return s_parse_json (&ctx, line, bytes, self);
}

//  A type this version does not know (a newer writer's): its fields are
//  not known here, but its form is: JSON's minimal one (what cJSON's
//  unformatted printer gives back: no spaces, keys as given, the same
//  escapes as ours), beginning with the common fields in canonical form.
static int s_unknown_is_canonical (const char *line, size_t bytes, const event_t *self,
                                   char *error, size_t error_size)
{
    char head[EVENT_LINE_BYTES_MAX];
    writer_t w = {head, head + sizeof head - 1, false};
    s_put_lit (&w, "{\"seq\":");
    s_put_int (&w, self->seq);
    s_put_lit (&w, ",\"id\":");
    s_put_string (&w, self->id);
    s_put_lit (&w, ",\"type\":");
    s_put_string (&w, self->type_name);
    s_put_lit (&w, ",\"v\":");
    s_put_int (&w, self->v);
    s_put_lit (&w, ",\"ts\":\"");
    s_put (&w, s_cached_ts (self->ts_ms), EVENT_TS_BYTES);
    s_put_lit (&w, "\"");
    size_t head_bytes = (size_t)(w.p - head);
    if (w.overflow || bytes <= head_bytes || memcmp (line, head, head_bytes) != 0 ||
        (line[head_bytes] != ',' && line[head_bytes] != '}'))
        return s_fail (error, error_size,
                       "event: not in canonical form (seq, id, type, v, ts first)");
    char text[EVENT_LINE_BYTES_MAX + 1];
    memcpy (text, line, bytes);
    text[bytes] = '\0';
    cJSON *root = cJSON_ParseWithLength (text, bytes);
    char *printed = root ? cJSON_PrintUnformatted (root) : NULL;
    bool same =
        printed && strlen (printed) == bytes && memcmp (printed, line, bytes) == 0;
    cJSON_free (printed);
    cJSON_Delete (root);
    if (!same)
        return s_fail (error, error_size,
                       "event: %s (v %d) is not in JSON's minimal form", self->type_name,
                       self->v);
    return 0;
}

int event_parse_canonical (const char *line, size_t bytes, event_t *self, char *error,
                           size_t error_size)
{
    assert (line && self);
    s_id_chars_init ();
    if (s_fast_stored (line, bytes, self))
        return 0; // the fast path reads exact canonical lines only
    event_init (self);
    parse_ctx_t ctx = {true, error, error_size};
    if (s_parse_json (&ctx, line, bytes, self))
        return -1;
    if (self->type == EVENT_TYPE_UNKNOWN)
        return s_unknown_is_canonical (line, bytes, self, error, error_size);
    char canonical[EVENT_LINE_BYTES_MAX];
    size_t canonical_bytes = event_format_stored (self, canonical, sizeof canonical);
    size_t at = 0;
    while (at < bytes && at < canonical_bytes && line[at] == canonical[at])
        at++;
    if (at < bytes || at < canonical_bytes)
        return s_fail (error, error_size,
                       "event: not in canonical form (differs from it at byte %zu: no "
                       "spaces, keys in order, minimal escapes)",
                       at);
    return 0;
}

int event_parse_proposed (const char *json, size_t bytes, event_t *self, char *error,
                          size_t error_size)
{
    return event_parse_proposed_splice (json, bytes, self, NULL, error, error_size);
}

int event_parse_proposed_splice (const char *json, size_t bytes, event_t *self,
                                 event_splice_t *splice, char *error, size_t error_size)
{
    assert (json && self);
    s_id_chars_init ();
    if (splice)
        *splice = (event_splice_t){0, 0};
    if (s_fast_proposed (json, bytes, self, splice))
        return 0;
    event_init (self);
    parse_ctx_t ctx = {false, error, error_size};
    return s_parse_json (&ctx, json, bytes, self);
}

const char *event_difference (const event_t *a, const event_t *b)
{
    if (a->seq != b->seq)
        return "seq";
    if (a->ts_ms != b->ts_ms)
        return "ts_ms";
    if (a->type != b->type)
        return "type";
    if (a->v != b->v)
        return "v";
    if (a->amount != b->amount)
        return "amount";
    if (a->expect_count != b->expect_count)
        return "expect_count";
    if (a->has_limit != b->has_limit || a->overdraft_limit != b->overdraft_limit)
        return "overdraft_limit";
    if (a->metadata_bytes != b->metadata_bytes)
        return "metadata_bytes";
    const struct {
        const char *name, *a, *b;
    } strings[] = {{"id", a->id, b->id},
                   {"type_name", a->type_name, b->type_name},
                   {"account", a->account, b->account},
                   {"from", a->from, b->from},
                   {"to", a->to, b->to},
                   {"correlation_id", a->correlation_id, b->correlation_id},
                   {"request_id", a->request_id, b->request_id},
                   {"reference", a->reference, b->reference},
                   {"principal", a->principal, b->principal},
                   {"currency", a->currency, b->currency},
                   {"metadata", a->metadata, b->metadata}};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (strcmp (strings[i].a, strings[i].b) != 0)
            return strings[i].name;
    for (size_t i = 0; i < a->expect_count && i < EVENT_EXPECT_MAX; i++)
        if (strcmp (a->expect[i].account, b->expect[i].account) != 0 ||
            a->expect[i].version != b->expect[i].version)
            return "expect";
    return NULL;
}
