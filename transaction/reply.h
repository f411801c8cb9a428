/*  reply — the 201 bodies of transaction, printed straight into a buffer.

    Amounts and balances are int64 and may exceed 2^53, where cJSON's
    doubles round them (and print 10^16 as 1e+16). So answers are written
    as text here: integers in decimal, and strings copied as they are,
    which is only right because every string in an answer (event ids,
    account ids, type names, timestamps) matches a pattern without
    characters that JSON escapes.
*/
#ifndef REPLY_H_INCLUDED
#define REPLY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "write_model.h"

typedef struct request request_t;

typedef struct {
    char *data; // NUL-terminated; owned
    size_t bytes;
    size_t capacity;
    int64_t ts_ms; // the last timestamp printed, kept for the next record
    char ts[EVENT_TS_BYTES + 1];
    bool ts_valid;
} reply_t;

//  An empty reply (no allocation until the first append).
void reply_init (reply_t *self);
//  Frees the text; the reply is empty again.
void reply_free (reply_t *self);

//  Room for bytes more without growing (a batch's answer is known to be
//  large: growing it by doubling copied it once more in total).
void reply_reserve (reply_t *self, size_t bytes);

void reply_append (reply_t *self, const char *text, size_t bytes);
void reply_append_str (reply_t *self, const char *text);
void reply_append_int (reply_t *self, int64_t value);

//  One stored event as answered: {"seq","id","type","ts",...,"amount",
//  "currency","balance"} or, for transfers, {...,"from","to","amount",
//  "currency","balances"} (holds: "pending_id" before from when they
//  resolve one, "timeout_at" after currency when set); account events
//  {"seq","id","type","ts",
//  "account","currency"?,"overdraft_limit"?,"metadata"?,"version"} with
//  metadata (canonical JSON, or NULL) from the command.
void reply_append_record (reply_t *self, const write_model_record_t *record,
                          const char *metadata);

//  An exact integer member: cJSON's numbers are doubles, which round
//  beyond 2^53, so the digits go in as raw JSON text.
void reply_add_int (cJSON *json, const char *name, int64_t value);

//  True if record is the stored event of command.
bool reply_record_matches (const write_model_record_t *record, const command_t *command);

//  The 201 body of an applied request (caller frees), or NULL with
//  *status / detail saying why it cannot be given.
char *reply_success_text (request_t *request, unsigned *status, const char **detail);

//  The 200 already-applied problem of a request whose 201 is gone
//  (caller frees).
char *reply_already_applied_text (request_t *request);

#endif
