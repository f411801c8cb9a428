/*  event — the checks every part of the event codec shares (ids, names,
    currencies, metadata keys, UTF-8), the type names, the upcast rule and
    event_difference. Times are in event_time.c, writing in
    event_write.c, parsing in event_parse.c and event_fast.c.
*/
#include "event_internal.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *s_type_names[] = {"",
                                     "deposited",
                                     "withdrawn",
                                     "transferred",
                                     "account_opened",
                                     "account_updated",
                                     "transfer_pending",
                                     "transfer_posted",
                                     "transfer_voided",
                                     "transfer_expired"};
#define EVENT_TYPE_LAST EVENT_TRANSFER_EXPIRED

unsigned char event_id_chars[256];
static bool s_id_chars_ready;

void event_id_chars_init (void)
{
    if (s_id_chars_ready)
        return;
    for (int c = 0; c < 256; c++)
        event_id_chars[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                            c == '-';
    s_id_chars_ready = true;
}

int event_fail (char *error, size_t error_size, const char *format, ...)
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
    event_id_chars_init ();
    if (bytes < 1 || bytes > EVENT_ID_BYTES_MAX ||
        !event_is_alnum ((unsigned char)text[0]))
        return false;
    for (size_t i = 1; i < bytes; i++)
        if (!event_id_chars[(unsigned char)text[i]])
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
           event_type_has_parties (type);
}

bool event_type_has_parties (event_type_t type)
{
    return type == EVENT_TRANSFERRED ||
           (type >= EVENT_TRANSFER_PENDING && type <= EVENT_TRANSFER_EXPIRED);
}

bool event_type_resolves_hold (event_type_t type)
{
    return type >= EVENT_TRANSFER_POSTED && type <= EVENT_TRANSFER_EXPIRED;
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

bool event_touches (const event_t *self, const char *account)
{
    if (event_type_has_parties (self->type))
        return strcmp (account, self->from) == 0 || strcmp (account, self->to) == 0;
    return strcmp (account, self->account) == 0; // every other type names one account
}

int event_upcast (event_t *self, char *error, size_t error_size)
{
    switch (self->v) {
    case 1:
        //  v1 had the three money types only.
        if (self->type != EVENT_DEPOSITED && self->type != EVENT_WITHDRAWN &&
            self->type != EVENT_TRANSFERRED)
            return event_fail (error, error_size, "v: %s needs version 2",
                               self->type_name);
        memcpy (self->currency, EVENT_CURRENCY_V1, sizeof EVENT_CURRENCY_V1);
        return 0;
    case EVENT_SCHEMA_VERSION:
        return 0;
    default:
        return event_fail (error, error_size, "v: no upcast from version %d", self->v);
    }
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
    if (a->timeout_at_ms != b->timeout_at_ms)
        return "timeout_at";
    const struct {
        const char *name, *a, *b;
    } strings[] = {{"id", a->id, b->id},
                   {"type_name", a->type_name, b->type_name},
                   {"account", a->account, b->account},
                   {"from", a->from, b->from},
                   {"to", a->to, b->to},
                   {"pending_id", a->pending_id, b->pending_id},
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
