/*  fuzz_commands — the transaction service's command validation.

    The input is an HTTP body, parsed as http_request_parse_json does
    (cJSON, whole text, no embedded NUL), annotated with
    commands_annotate_numbers, then validated as a transaction, as a
    transfer, and, when it is {"commands":[...]}, item by item as a batch
    with "commands[i]." prefixes. Claims, from commands.h and DESIGN.md:
    - every number below the root carries its source text, which reads
      back as the number cJSON parsed;
    - a command that validates has 1 <= amount <= 10^15, valid ids, from !=
      to for a transfer, a kind that fits the shape and the amount's sign,
      fields equal to the body's, and an amount whose source text is a
      plain decimal integer equal to the value; it appends no error; an
      account command (open, update) has no amount, a valid account, a
      valid currency when it opens, a limit >= 0 or unlimited, and
      metadata in canonical form; a hold is a transfer with "pending": true
      and a timeout_ms within 30 days (only a hold has one); a post or void
      names a valid hold id (as given), a post an amount or none;
    - a command that fails appends at least one {field, message}, each
      field named under the prefix;
    - a validated command, made into the proposed event transaction sends,
      is accepted by the stream's event_parse_proposed;
    - commands_fingerprint is 40 hex digits and the same for the same input;
    - the fast path (commands_read), for each shape and as a batch, either
      declines or gives exactly what the cJSON path gives (parse as above,
      no \u0000, commands_parse or commands_parse_batch): the body
      validates there too, with the same commands, count and batch id.
*/
#include "fuzz_common.h"

#include <ctype.h>
#include <errno.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "log.h"

#define FUZZ_COMMANDS_BODY_BYTES_MAX  (64 * 1024) // DESIGN: one command's body limit
#define FUZZ_COMMANDS_BATCH_ITEMS_MAX 64          // enough to reach every item path
#define FUZZ_COMMANDS_PREFIX_BYTES    32          // "commands[9999]."

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    log_init ("fuzz_commands", LOG_ERROR);
    return 0;
}

static int s_error_count (const cJSON *errors)
{
    return errors ? cJSON_GetArraySize (errors) : 0;
}

//  Every error from index on is {field, message}, field under prefix.
static void s_check_errors (const cJSON *errors, int from, const char *prefix)
{
    size_t prefix_bytes = strlen (prefix);
    // "commands[3]." reports a non-object item as "commands[3]"
    size_t must_match = prefix_bytes ? prefix_bytes - 1 : 0;
    for (int index = from; index < s_error_count (errors); index++) {
        const cJSON *error = cJSON_GetArrayItem (errors, index);
        const cJSON *field = cJSON_GetObjectItemCaseSensitive (error, "field");
        const cJSON *message = cJSON_GetObjectItemCaseSensitive (error, "message");
        fuzz_check (cJSON_IsString (field) && cJSON_IsString (message) &&
                        *message->valuestring,
                    "error %d is not {field, message}", index);
        fuzz_check (strncmp (field->valuestring, prefix, must_match) == 0,
                    "field '%s' not under prefix '%s'", field->valuestring, prefix);
    }
}

//  The body's string member name, or "" when absent.
static const char *s_member (const cJSON *json, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (json, name);
    return cJSON_IsString (item) ? item->valuestring : "";
}

static bool s_is_plain_integer (const char *text)
{
    const char *digits = text[0] == '-' ? text + 1 : text;
    size_t count = strlen (digits);
    return count > 0 && count <= 16 && digits[0] != '0' &&
           strspn (digits, "0123456789") == count;
}

static void s_check_amount_text (const cJSON *json, const command_t *command)
{
    const cJSON *amount = cJSON_GetObjectItemCaseSensitive (json, "amount");
    fuzz_check (cJSON_IsNumber (amount) && amount->valuestring,
                "validated without an annotated amount");
    const char *text = amount->valuestring;
    fuzz_check (s_is_plain_integer (text), "amount text '%s' is not a plain integer",
                text);
    long long value = strtoll (text, NULL, 10);
    long long expected =
        command->kind == COMMAND_WITHDRAW ? -command->amount : command->amount;
    fuzz_check (value == expected, "amount text '%s' parsed as %lld", text, expected);
}

//  The proposed event transaction would send for this command.
static void s_check_event_accepted (const command_t *command)
{
    event_t event;
    event_init (&event);
    snprintf (event.id, sizeof event.id, "%s", *command->id ? command->id : "fuzz-id");
    event.amount = command->amount;
    snprintf (event.reference, sizeof event.reference, "%s", command->reference);
    if (*command->currency)
        snprintf (event.currency, sizeof event.currency, "%s", command->currency);
    if (command->kind == COMMAND_OPEN || command->kind == COMMAND_UPDATE) {
        event.type =
            command->kind == COMMAND_OPEN ? EVENT_ACCOUNT_OPENED : EVENT_ACCOUNT_UPDATED;
        snprintf (event.account, sizeof event.account, "%s",
                  *command->account ? command->account : "fuzz-account");
        event.amount = 0;
        event.has_limit = command->kind == COMMAND_OPEN || command->has_limit;
        event.overdraft_limit = command->has_limit ? command->overdraft_limit : 0;
        if (command->metadata) {
            event.metadata_bytes = strlen (command->metadata);
            fuzz_check (event.metadata_bytes <= EVENT_METADATA_BYTES_MAX,
                        "metadata size");
            memcpy (event.metadata, command->metadata, event.metadata_bytes + 1);
        }
    } else if (command->kind == COMMAND_TRANSFER || command->kind == COMMAND_HOLD) {
        event.type =
            command->kind == COMMAND_HOLD ? EVENT_TRANSFER_PENDING : EVENT_TRANSFERRED;
        snprintf (event.from, sizeof event.from, "%s", command->from);
        snprintf (event.to, sizeof event.to, "%s", command->to);
        //  timeout_at as planning makes it: now + timeout_ms.
        if (command->timeout_ms)
            event.timeout_at_ms = 1764000000000LL + command->timeout_ms;
    } else if (command->kind == COMMAND_POST || command->kind == COMMAND_VOID) {
        event.type =
            command->kind == COMMAND_POST ? EVENT_TRANSFER_POSTED : EVENT_TRANSFER_VOIDED;
        snprintf (event.pending_id, sizeof event.pending_id, "%s",
                  *command->pending_id ? command->pending_id : "fuzz-hold");
        snprintf (event.from, sizeof event.from, "fuzz-from");
        snprintf (event.to, sizeof event.to, "fuzz-to");
        if (!event.amount)
            event.amount = 1; // the whole hold's
    } else {
        event.type = command->kind == COMMAND_DEPOSIT ? EVENT_DEPOSITED : EVENT_WITHDRAWN;
        snprintf (event.account, sizeof event.account, "%s", command->account);
    }
    snprintf (event.type_name, sizeof event.type_name, "%s",
              event_type_name (event.type));
    char line[EVENT_LINE_BYTES_MAX];
    size_t bytes = event_format_proposed (&event, line, sizeof line);
    fuzz_check (bytes > 0, "a validated command does not format as an event");
    event_t parsed;
    char error[FUZZ_ERROR_BYTES];
    fuzz_check (event_parse_proposed (line, bytes, &parsed, error, sizeof error) == 0,
                "the stream refuses a validated command's event: %s: %s", error, line);
}

static void s_check_account_command (const cJSON *json, const command_t *command)
{
    fuzz_check (command->amount == 0 && !*command->from && !*command->to,
                "an account command with money fields");
    fuzz_check (strcmp (command->account, s_member (json, "account")) == 0,
                "account differs from the body");
    fuzz_check (command->kind == COMMAND_UPDATE || *command->currency,
                "opened without a currency");
    fuzz_check (!command->has_limit || command->overdraft_limit >= 0 ||
                    command->overdraft_limit == EVENT_LIMIT_UNLIMITED,
                "limit %lld", (long long)command->overdraft_limit);
    fuzz_check (command->kind == COMMAND_OPEN || command->has_limit || command->metadata,
                "an update of nothing");
    if (command->metadata) {
        //  Canonical: formatting its own parse gives it back.
        cJSON *again = cJSON_Parse (command->metadata);
        static char text[EVENT_METADATA_BYTES_MAX + 1];
        fuzz_check (again && event_metadata_format (again, text, NULL, 0) >= 0 &&
                        strcmp (text, command->metadata) == 0,
                    "metadata not canonical: %s", command->metadata);
        cJSON_Delete (again);
    }
    s_check_event_accepted (command);
}

static void s_check_resolution (const cJSON *json, command_shape_t shape,
                                const command_t *command)
{
    bool post = command->kind == COMMAND_POST;
    fuzz_check (shape == COMMAND_SHAPE_ANY ||
                    shape == (post ? COMMAND_SHAPE_POST : COMMAND_SHAPE_VOID),
                "a post or void from shape %d", shape);
    const char *named = s_member (json, post ? "post" : "void");
    fuzz_check (strcmp (command->pending_id, named) == 0, "pending id '%s' not '%s'",
                command->pending_id, named);
    fuzz_check (shape != COMMAND_SHAPE_ANY || fuzz_account_is_valid (command->pending_id),
                "pending id '%s'", command->pending_id);
    fuzz_check (!*command->account && !*command->from && !*command->to &&
                    !command->timeout_ms && !command->metadata && !command->has_limit,
                "a resolution with other fields");
    if (post && command->amount)
        s_check_amount_text (json, command);
    else
        fuzz_check (command->amount == 0 &&
                        !cJSON_GetObjectItemCaseSensitive (json, "amount"),
                    "amount %lld", (long long)command->amount);
    s_check_event_accepted (command);
}

static void s_check_valid (const cJSON *json, command_shape_t shape,
                           const command_t *command)
{
    if (command->kind == COMMAND_POST || command->kind == COMMAND_VOID) {
        s_check_resolution (json, shape, command);
        return;
    }
    fuzz_check (!*command->pending_id, "pending id '%s' on kind %d", command->pending_id,
                command->kind);
    fuzz_check (command->kind == COMMAND_HOLD ||
                    (command->timeout_ms == 0 &&
                     !cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (json, "pending"))),
                "not a hold, yet pending or timeout_ms");
    fuzz_check (command->timeout_ms >= 0 &&
                    command->timeout_ms <= COMMANDS_TIMEOUT_MS_MAX,
                "timeout_ms %lld", (long long)command->timeout_ms);
    fuzz_check (strcmp (command->currency, s_member (json, "currency")) == 0,
                "currency '%s' differs from the body", command->currency);
    fuzz_check (!*command->currency || event_currency_is_valid (
                                           command->currency, strlen (command->currency)),
                "currency '%s'", command->currency);
    if (command->kind == COMMAND_OPEN || command->kind == COMMAND_UPDATE) {
        fuzz_check (shape != COMMAND_SHAPE_TRANSACTION && shape != COMMAND_SHAPE_TRANSFER,
                    "an account command from a money shape");
        s_check_account_command (json, command);
        return;
    }
    fuzz_check (command->metadata == NULL && !command->has_limit,
                "a money command with account settings");
    fuzz_check (command->amount >= 1 && command->amount <= EVENT_AMOUNT_MAX,
                "amount %lld", (long long)command->amount);
    if (shape == COMMAND_SHAPE_ANY)
        shape = cJSON_GetObjectItemCaseSensitive (json, "account")
                    ? COMMAND_SHAPE_TRANSACTION
                    : COMMAND_SHAPE_TRANSFER;
    if (shape == COMMAND_SHAPE_TRANSFER) {
        fuzz_check (command->kind == COMMAND_TRANSFER || command->kind == COMMAND_HOLD,
                    "kind %d for a transfer", command->kind);
        fuzz_check ((command->kind == COMMAND_HOLD) ==
                        cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (json, "pending")),
                    "a hold without \"pending\": true, or the other way");
        fuzz_check (fuzz_account_is_valid (command->from), "from '%s'", command->from);
        fuzz_check (fuzz_account_is_valid (command->to), "to '%s'", command->to);
        fuzz_check (strcmp (command->from, command->to) != 0, "from == to");
        fuzz_check (!*command->account, "a transfer with an account");
        fuzz_check (strcmp (command->from, s_member (json, "from")) == 0 &&
                        strcmp (command->to, s_member (json, "to")) == 0,
                    "from/to differ from the body");
    } else {
        fuzz_check (command->kind == COMMAND_DEPOSIT || command->kind == COMMAND_WITHDRAW,
                    "kind %d for a transaction", command->kind);
        fuzz_check (fuzz_account_is_valid (command->account), "account '%s'",
                    command->account);
        fuzz_check (!*command->from && !*command->to, "a transaction with from/to");
        fuzz_check (strcmp (command->account, s_member (json, "account")) == 0,
                    "account differs from the body");
    }
    fuzz_check (!*command->id || fuzz_account_is_valid (command->id), "id '%s'",
                command->id);
    fuzz_check (strcmp (command->id, s_member (json, "id")) == 0, "id differs");
    fuzz_check (strcmp (command->reference, s_member (json, "reference")) == 0,
                "reference differs from the body");
    s_check_amount_text (json, command);
    s_check_event_accepted (command);
}

static void s_check_fingerprint (const command_t *commands, size_t count, bool batch)
{
    char first[COMMANDS_FINGERPRINT_BYTES + 1];
    char second[COMMANDS_FINGERPRINT_BYTES + 1];
    commands_fingerprint (commands, count, batch, first);
    commands_fingerprint (commands, count, batch, second);
    fuzz_check (strlen (first) == COMMANDS_FINGERPRINT_BYTES, "fingerprint length %zu",
                strlen (first));
    for (size_t index = 0; index < COMMANDS_FINGERPRINT_BYTES; index++)
        fuzz_check (isxdigit ((unsigned char)first[index]), "fingerprint '%s'", first);
    fuzz_check (strcmp (first, second) == 0, "fingerprint %s then %s", first, second);
}

//  Validates json as one command of shape; returns 0 when it validates.
static int s_parse_one (const cJSON *json, command_shape_t shape, const char *prefix,
                        command_t *command, cJSON **errors_p)
{
    int before = s_error_count (*errors_p);
    int rc = commands_parse (json, shape, prefix, command, errors_p);
    fuzz_check (rc == 0 || rc == -1, "commands_parse returned %d", rc);
    if (rc == 0) {
        fuzz_check (s_error_count (*errors_p) == before, "valid, yet errors added");
        s_check_valid (json, shape, command);
        s_check_fingerprint (command, 1, false);
    } else {
        fuzz_check (s_error_count (*errors_p) > before, "refused without an error");
        s_check_errors (*errors_p, before, prefix);
    }
    return rc;
}

//  s_parse_one on a command of its own, freed after.
static void s_parse_alone (const cJSON *json, command_shape_t shape)
{
    command_t command;
    cJSON *errors = NULL;
    s_parse_one (json, shape, "", &command, &errors);
    free (command.metadata);
    cJSON_Delete (errors);
}

static void s_check_batch (const cJSON *root)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive (root, "commands");
    if (!cJSON_IsArray (list))
        return;
    command_t commands[FUZZ_COMMANDS_BATCH_ITEMS_MAX];
    cJSON *errors = NULL;
    size_t count = 0;
    bool all_valid = true;
    const cJSON *item = NULL;
    cJSON_ArrayForEach (item, list)
    {
        if (count == FUZZ_COMMANDS_BATCH_ITEMS_MAX)
            break;
        char prefix[FUZZ_COMMANDS_PREFIX_BYTES];
        snprintf (prefix, sizeof prefix, "commands[%zu].", count);
        if (s_parse_one (item, COMMAND_SHAPE_ANY, prefix, &commands[count], &errors))
            all_valid = false;
        count++;
    }
    if (all_valid && count > 0)
        s_check_fingerprint (commands, count, true);
    for (size_t index = 0; index < count; index++)
        free (commands[index].metadata);
    cJSON_Delete (errors);
}

static void s_check_same_command (const command_t *fast, const command_t *reference,
                                  size_t index)
{
    fuzz_check (fast->kind == reference->kind && fast->amount == reference->amount,
                "command %zu: kind %d amount %lld, cJSON path: kind %d amount %lld",
                index, fast->kind, (long long)fast->amount, reference->kind,
                (long long)reference->amount);
    const struct {
        const char *name, *fast, *reference;
    } fields[] = {{"account", fast->account, reference->account},
                  {"from", fast->from, reference->from},
                  {"to", fast->to, reference->to},
                  {"id", fast->id, reference->id},
                  {"reference", fast->reference, reference->reference},
                  {"currency", fast->currency, reference->currency}};
    fuzz_check (fast->timeout_ms == reference->timeout_ms,
                "command %zu: timeout_ms %lld, cJSON path %lld", index,
                (long long)fast->timeout_ms, (long long)reference->timeout_ms);
    fuzz_check (!*fast->pending_id && !*reference->pending_id,
                "command %zu: the fast path took a post or void", index);
    fuzz_check (!fast->metadata && !reference->metadata && !fast->has_limit &&
                    !reference->has_limit,
                "command %zu: the fast path took an account command", index);
    for (size_t field = 0; field < sizeof fields / sizeof fields[0]; field++)
        fuzz_check (strcmp (fields[field].fast, fields[field].reference) == 0,
                    "command %zu: %s '%s', cJSON path '%s'", index, fields[field].name,
                    fields[field].fast, fields[field].reference);
}

//  commands_read declines, or agrees with the cJSON path (root: the
//  annotated tree of body, NULL when cJSON refused it).
static void s_check_fast_path (const char *body, size_t size, const cJSON *root,
                               command_shape_t shape, bool batch)
{
    command_t *fast = NULL;
    size_t count = 0;
    char key[EVENT_ID_BYTES_MAX + 1] = "unset";
    if (commands_read (body, size, shape, batch, &fast, &count, key) != 0) {
        fuzz_check (fast == NULL && *key == '\0', "declined, yet commands or key set");
        return;
    }
    fuzz_check (root, "the fast path accepts a body cJSON refuses");
    fuzz_check (!memmem (body, size, "\\u0000", 6), "the fast path accepts \\u0000");
    command_t *reference = NULL;
    size_t reference_count = 1;
    char reference_key[EVENT_ID_BYTES_MAX + 1] = "";
    cJSON *errors = NULL;
    int rc;
    if (batch)
        rc = commands_parse_batch (root, &reference, &reference_count, reference_key,
                                   &errors);
    else {
        reference = calloc (1, sizeof *reference);
        fuzz_check (reference, "out of memory");
        rc = commands_parse (root, shape, "", reference, &errors);
    }
    fuzz_check (rc == 0 && errors == NULL, "the fast path accepts what cJSON's refuses");
    fuzz_check (count == reference_count, "%zu commands, cJSON path %zu", count,
                reference_count);
    fuzz_check (strcmp (key, reference_key) == 0, "batch id '%s', cJSON path '%s'", key,
                reference_key);
    for (size_t index = 0; index < count; index++)
        s_check_same_command (&fast[index], &reference[index], index);
    cJSON_Delete (errors);
    commands_free (reference, reference_count);
    commands_free (fast, count);
}

//  Every number below the root reads back from its text as cJSON read it.
//  (A root number may run past the 63 characters cJSON reads.)
static void s_check_annotated (const cJSON *item)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber (item)) {
            fuzz_check (item->valuestring, "a number without its text");
            double value = strtod (item->valuestring, NULL);
            fuzz_check (value == item->valuedouble, "number text '%s' is not %.17g",
                        item->valuestring, item->valuedouble);
        }
        s_check_annotated (item->child);
    }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size > FUZZ_COMMANDS_BODY_BYTES_MAX)
        return 0;
    char *body = malloc (size + 1);
    fuzz_check (body, "out of memory");
    memcpy (body, data, size);
    body[size] = '\0';
    // As http_request_parse_json: the whole text, no embedded NUL
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts (body, size + 1, &end, true);
    if (root && end != body + size) {
        cJSON_Delete (root);
        root = NULL;
    }
    if (root) {
        commands_annotate_numbers (root, body, size);
        s_check_annotated (root->child);
        s_parse_alone (root, COMMAND_SHAPE_TRANSACTION);
        s_parse_alone (root, COMMAND_SHAPE_TRANSFER);
        s_parse_alone (root, COMMAND_SHAPE_ANY);
        s_parse_alone (root, COMMAND_SHAPE_OPEN);
        s_parse_alone (root, COMMAND_SHAPE_UPDATE);
        s_parse_alone (root, COMMAND_SHAPE_POST);
        s_parse_alone (root, COMMAND_SHAPE_VOID);
        s_check_batch (root);
    }
    s_check_fast_path (body, size, root, COMMAND_SHAPE_TRANSACTION, false);
    s_check_fast_path (body, size, root, COMMAND_SHAPE_TRANSFER, false);
    s_check_fast_path (body, size, root, COMMAND_SHAPE_ANY, true);
    s_check_fast_path (body, size, root, COMMAND_SHAPE_OPEN, false);
    s_check_fast_path (body, size, root, COMMAND_SHAPE_POST, false);
    cJSON_Delete (root);
    free (body);
    return 0;
}
