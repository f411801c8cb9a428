/*  commands — parse and validate the HTTP write commands of transaction.

    A command is one balance change a client asks for: a deposit or a
    withdrawal (POST /transactions, signed amount) or a transfer (POST
    /transfers). POST /batch carries many, each told apart by its fields.
    This module checks shape and ranges only (no balances: that is the
    write model's job) and reports every fault as {field, message} so a
    422 can list them all, with fields like "commands[3].amount".

    Amounts are checked on their source text: cJSON stores numbers as
    doubles, where 1.0, 1e3 and 10000000000000001 lose what made them
    wrong. commands_annotate_numbers attaches each number's text first.
*/
#ifndef COMMANDS_H_INCLUDED
#define COMMANDS_H_INCLUDED

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define COMMANDS_BATCH_MAX         EVENT_REQUEST_EVENTS_MAX // one batch = one append request
#define COMMANDS_FINGERPRINT_BYTES 40                       // SHA-1 in hex

typedef enum {
    COMMAND_DEPOSIT = 1,
    COMMAND_WITHDRAW,
    COMMAND_TRANSFER,
    COMMAND_OPEN,   // POST /accounts: account_opened
    COMMAND_UPDATE, // PATCH /accounts/{id}: account_updated
    COMMAND_HOLD,   // POST /transfers with "pending": true: transfer_pending
    COMMAND_POST,   // POST /transfers/{id}/post: transfer_posted
    COMMAND_VOID,   // POST /transfers/{id}/void: transfer_voided
    COMMAND_EXPIRE, // never from a client: the expiry timer's transfer_expired
} command_kind_t;

typedef enum {
    COMMAND_SHAPE_TRANSACTION, // account, amount (signed)
    COMMAND_SHAPE_TRANSFER,    // from, to, amount (positive)
    COMMAND_SHAPE_ANY,         // batch item: decided by its fields
    COMMAND_SHAPE_OPEN,        // account, currency, overdraft_limit?, metadata?
    COMMAND_SHAPE_UPDATE,      // account, overdraft_limit?, metadata? (one at least)
    COMMAND_SHAPE_POST,        // amount? (the pending id is in the path)
    COMMAND_SHAPE_VOID,        // nothing but reference? and id?
} command_shape_t;
//  A batch item is an account command when it has no amount: with a
//  currency it opens the account, without one it updates it. An item
//  with "post" or "void" (the pending id) resolves a hold; a transfer
//  with "pending": true makes one.

//  DESIGN: a hold's timeout_ms is at most 30 days.
#define COMMANDS_TIMEOUT_MS_MAX (30LL * 24 * 3600 * 1000)
//  A hold's id leaves room for ".expired": its expiry's id is
//  "<pending id>.expired", within EVENT_ID_BYTES_MAX.
#define COMMANDS_HOLD_ID_BYTES_MAX (EVENT_ID_BYTES_MAX - 8)

//  Strings are NUL-ended; the bytes after the NUL are undefined. The
//  members most commands use come first: a batch's commands then touch a
//  few of the lines they span, not all nine.
typedef struct {
    command_kind_t kind;
    int64_t amount;                            // 1 .. EVENT_AMOUNT_MAX; sign is in kind
    char id[EVENT_ID_BYTES_MAX + 1];           // "" when the body has none
    char account[EVENT_ACCOUNT_BYTES_MAX + 1]; // deposit, withdraw
    char from[EVENT_ACCOUNT_BYTES_MAX + 1];    // transfer
    char to[EVENT_ACCOUNT_BYTES_MAX + 1];      // transfer; never equal to from
    char reference[EVENT_META_VALUE_BYTES_MAX + 1];
    //  Schema 2. currency: as given ("" when not: money commands take the
    //  account's); planning writes the one the event carries into it.
    char currency[EVENT_CURRENCY_BYTES_MAX + 1];
    bool has_limit;          // open and update; an open without one gets the default
    int64_t overdraft_limit; // >= 0 or EVENT_LIMIT_UNLIMITED
    char *metadata;          // canonical JSON, owned (commands_free); NULL: none
    //  Holds. timeout_ms: 0 for none (hold). pending_id: post, void and
    //  expire. A post's amount is 0 when it posts the whole hold.
    int64_t timeout_ms;
    char pending_id[EVENT_ID_BYTES_MAX + 1];
    int64_t timeout_at_ms; // a hold's, fixed when first planned (0: none yet)
} command_t;

//  Frees commands (count of them) and the metadata they own; NULL is fine.
void commands_free (command_t *commands, size_t count);

//  Stores the source text of every number of root (parsed from text) in
//  the item's valuestring (NUL-ended), freed by cJSON_Delete of root: the
//  texts share one block held by root, numbers below it are flagged
//  cJSON_IsReference. Numbers are matched to the text in document order,
//  which is cJSON's child order.
void commands_annotate_numbers (cJSON *root, const char *text, size_t bytes);

//  Validates one command object. Faults are appended to *errors_p with
//  field names prefixed by prefix ("" or "commands[3]."). Returns 0 when
//  the command is valid, else -1.
int commands_parse (const cJSON *json, command_shape_t shape, const char *prefix,
                    command_t *command, cJSON **errors_p);

//  {"commands":[...], "id"?} as a POST /batch body: every command checked
//  with "commands[i]." prefixes, the batch's "id" into key (a buffer of
//  EVENT_ID_BYTES_MAX + 1; "" when none). *commands_p (count_p of them)
//  is the caller's to free, also on failure. Returns 0 or -1 (reported).
int commands_parse_batch (const cJSON *json, command_t **commands_p, size_t *count_p,
                          char *key, cJSON **errors_p);

//  The fast path for a whole request body, without cJSON: accepts only a
//  body that plainly validates (standard whitespace, no escapes, no
//  duplicate or unknown members, integer amounts without fraction or
//  exponent, ...) and then gives exactly what the cJSON path (parse,
//  commands_annotate_numbers, commands_parse or commands_parse_batch)
//  gives: *commands_p (the caller's to free), *count_p and, for a batch,
//  key. Returns 0, or -1 with nothing allocated when the body must go the
//  cJSON path, which then decides and names every fault.
int commands_read (const char *body, size_t bytes, command_shape_t shape, bool batch,
                   command_t **commands_p, size_t *count_p, char *key);

//  A fingerprint of what the commands ask for (not of their JSON
//  spelling), so a retry with the same request matches. Writes
//  COMMANDS_FINGERPRINT_BYTES hex digits plus a NUL.
void commands_fingerprint (const command_t *commands, size_t count, bool batch,
                           char *fingerprint);

#endif
