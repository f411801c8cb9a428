/*  commands — parse and validate the HTTP write commands (see commands.h).
 */
#include "commands.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>

#include "http.h"

//  "commands[9999]." plus the longest field name (a metadata key's).
#define FIELD_BYTES_MAX 224

//  What cJSON reads as part of a number: compared in line, not strchr
//  per character, as every byte of a number passes here.
static bool s_is_number_char (char c)
{
    return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' ||
           c == 'E';
}

//  Number tokens start with '-' or a digit outside strings; cJSON reads
//  the same characters (then strtod). The body parsed, so it is JSON.
static const char *s_next_number (const char *cursor, const char *end,
                                  size_t *token_bytes)
{
    bool in_string = false;
    for (; cursor < end; cursor++) {
        char c = *cursor;
        if (in_string) {
            if (c == '\\')
                cursor++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"')
            in_string = true;
        else if (c == '-' || (c >= '0' && c <= '9')) {
            const char *start = cursor;
            while (cursor < end && s_is_number_char (*cursor))
                cursor++;
            *token_bytes = (size_t)(cursor - start);
            return start;
        }
    }
    return NULL;
}

//  Where the number texts of one document go: one block for all of them,
//  owned by the root: no allocation per number, as a batch has thousands.
typedef struct {
    const char *cursor, *end; // the source text not yet matched
    char *texts;              // NULL until the first number
    size_t used;
    size_t capacity; // the text's length plus one: NUL-ended tokens never need more
} annotation_t;

static void s_annotate (cJSON *item, annotation_t *annotation)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber (item) && item->valuestring == NULL) {
            size_t token_bytes = 0;
            const char *token =
                s_next_number (annotation->cursor, annotation->end, &token_bytes);
            if (token == NULL)
                return; // text and tree disagree: amounts then fail as "not an integer"
            if (annotation->texts == NULL) {
                annotation->texts = malloc (annotation->capacity);
                assert (annotation->texts);
            }
            char *text = annotation->texts + annotation->used;
            assert (annotation->used + token_bytes < annotation->capacity);
            memcpy (text, token, token_bytes);
            text[token_bytes] = '\0';
            annotation->used += token_bytes + 1;
            //  A reference: cJSON_Delete leaves the text to the block's owner.
            item->valuestring = text;
            item->type |= cJSON_IsReference;
            annotation->cursor = token + token_bytes;
        }
        if (item->child)
            s_annotate (item->child, annotation);
    }
}

void commands_annotate_numbers (cJSON *root, const char *text, size_t bytes)
{
    if (root == NULL)
        return;
    if (cJSON_IsNumber (root)) { // the whole document is one number
        size_t token_bytes = 0;
        const char *token = s_next_number (text, text + bytes, &token_bytes);
        if (token && root->valuestring == NULL)
            root->valuestring = strndup (token, token_bytes);
        return;
    }
    //  Tokens are disjoint and separated, so their NUL-ended copies fit
    //  in the text's length plus one.
    annotation_t annotation = {text, text + bytes, NULL, 0, bytes + 1};
    s_annotate (root->child, &annotation);
    //  A container's valuestring is unused by cJSON, and cJSON_Delete
    //  frees it with the root.
    if (annotation.texts) {
        assert (root->valuestring == NULL);
        root->valuestring = annotation.texts;
    }
}

//  Exact integer from a number's source text: -?(0|[1-9][0-9]*), no
//  fraction, no exponent, within +-EVENT_AMOUNT_MAX.
static const char *s_integer_from_text (const char *text, int64_t *value)
{
    if (text == NULL || *text == '\0')
        return "must be an integer";
    const char *digits = text[0] == '-' ? text + 1 : text;
    size_t count = strlen (digits);
    if (count == 0 || strspn (digits, "0123456789") != count)
        return "must be an integer (no fraction or exponent)";
    if (count > 1 && digits[0] == '0')
        return "must be an integer without leading zeros";
    if (count > 16)
        return "must be an integer between -10^15 and 10^15";
    errno = 0;
    long long parsed = strtoll (text, NULL, 10);
    if (errno || parsed > EVENT_AMOUNT_MAX || parsed < -EVENT_AMOUNT_MAX)
        return "must be an integer between -10^15 and 10^15";
    *value = parsed;
    return NULL;
}

static void s_error (cJSON **errors_p, const char *prefix, const char *field,
                     const char *message)
{
    char name[FIELD_BYTES_MAX];
    snprintf (name, sizeof name, "%s%s", prefix, field);
    http_problem_add_error (errors_p, name, message);
}

//  An account or id string field into target. Returns 0 or -1 (reported).
static int s_parse_id (const cJSON *item, const char *prefix, char *target,
                       cJSON **errors_p)
{
    if (!cJSON_IsString (item)) {
        s_error (errors_p, prefix, item->string, "must be a string");
        return -1;
    }
    size_t bytes = strlen (item->valuestring);
    if (!event_id_is_valid (item->valuestring, bytes)) {
        s_error (errors_p, prefix, item->string,
                 "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$");
        return -1;
    }
    memcpy (target, item->valuestring, bytes + 1);
    return 0;
}

static int s_parse_reference (const cJSON *item, const char *prefix, command_t *command,
                              cJSON **errors_p)
{
    if (!cJSON_IsString (item)) {
        s_error (errors_p, prefix, "reference", "must be a string");
        return -1;
    }
    size_t bytes = strlen (item->valuestring);
    if (bytes > EVENT_META_VALUE_BYTES_MAX ||
        !event_text_is_utf8 (item->valuestring, bytes)) {
        s_error (errors_p, prefix, "reference",
                 "must be valid UTF-8 of at most 256 bytes");
        return -1;
    }
    memcpy (command->reference, item->valuestring, bytes + 1);
    return 0;
}

static int s_parse_amount (const cJSON *item, const char *prefix, command_t *command,
                           cJSON **errors_p)
{
    if (!cJSON_IsNumber (item)) {
        s_error (errors_p, prefix, "amount", "must be an integer (a JSON number)");
        return -1;
    }
    int64_t value = 0;
    const char *fault = s_integer_from_text (item->valuestring, &value);
    if (fault == NULL && value == 0)
        fault = "must not be zero";
    bool signed_amount =
        command->kind == COMMAND_DEPOSIT || command->kind == COMMAND_WITHDRAW;
    if (fault == NULL && !signed_amount && value < 0)
        fault = command->kind == COMMAND_POST
                    ? "must be positive (1 to 10^15): what of the hold to post"
                    : "must be positive (1 to 10^15) for a transfer";
    if (fault) {
        s_error (errors_p, prefix, "amount", fault);
        return -1;
    }
    if (signed_amount)
        command->kind = value > 0 ? COMMAND_DEPOSIT : COMMAND_WITHDRAW;
    command->amount = value > 0 ? value : -value;
    return 0;
}

//  The members a command may have, as bits.
#define FIELD_AMOUNT    1u
#define FIELD_ACCOUNT   2u
#define FIELD_FROM      4u
#define FIELD_TO        8u
#define FIELD_REFERENCE 16u
#define FIELD_ID        32u
#define FIELD_CURRENCY  64u
#define FIELD_LIMIT     128u
#define FIELD_METADATA  256u
#define FIELD_PENDING   512u
#define FIELD_TIMEOUT   1024u
#define FIELD_POST      2048u
#define FIELD_VOID      4096u

static unsigned s_field_bit (const char *name)
{
    return streq (name, "amount")            ? FIELD_AMOUNT
           : streq (name, "account")         ? FIELD_ACCOUNT
           : streq (name, "from")            ? FIELD_FROM
           : streq (name, "to")              ? FIELD_TO
           : streq (name, "reference")       ? FIELD_REFERENCE
           : streq (name, "id")              ? FIELD_ID
           : streq (name, "currency")        ? FIELD_CURRENCY
           : streq (name, "overdraft_limit") ? FIELD_LIMIT
           : streq (name, "metadata")        ? FIELD_METADATA
           : streq (name, "pending")         ? FIELD_PENDING
           : streq (name, "timeout_ms")      ? FIELD_TIMEOUT
           : streq (name, "post")            ? FIELD_POST
           : streq (name, "void")            ? FIELD_VOID
                                             : 0;
}

void commands_free (command_t *commands, size_t count)
{
    for (size_t index = 0; commands && index < count; index++)
        free (commands[index].metadata);
    free (commands);
}

static int s_parse_currency (const cJSON *item, const char *prefix, command_t *command,
                             cJSON **errors_p)
{
    if (!cJSON_IsString (item) ||
        !event_currency_is_valid (item->valuestring, strlen (item->valuestring))) {
        s_error (errors_p, prefix, "currency",
                 "must be a string matching ^[A-Z][A-Z0-9]{2,11}$ (ISO 4217, e.g. EUR)");
        return -1;
    }
    memcpy (command->currency, item->valuestring, strlen (item->valuestring) + 1);
    return 0;
}

//  DESIGN: an integer >= 0, or null for unlimited.
#define COMMANDS_LIMIT_MAX 1000000000000000000LL

static int s_parse_limit (const cJSON *item, const char *prefix, command_t *command,
                          cJSON **errors_p)
{
    command->has_limit = true;
    if (cJSON_IsNull (item)) {
        command->overdraft_limit = EVENT_LIMIT_UNLIMITED;
        return 0;
    }
    int64_t value = -1;
    const char *fault = cJSON_IsNumber (item)
                            ? s_integer_from_text (item->valuestring, &value)
                            : "must be an integer or null (unlimited)";
    if (!fault && (value < 0 || value > COMMANDS_LIMIT_MAX))
        fault = "must be between 0 and 10^18, or null (unlimited)";
    if (fault) {
        s_error (errors_p, prefix, "overdraft_limit", fault);
        return -1;
    }
    command->overdraft_limit = value;
    return 0;
}

static int s_parse_metadata (const cJSON *item, const char *prefix, command_t *command,
                             cJSON **errors_p)
{
    static char text[EVENT_METADATA_BYTES_MAX + 1];
    char error[128];
    int bytes = event_metadata_format (item, text, error, sizeof error);
    if (bytes < 0) {
        //  "metadata.key: rule" -> field "metadata.key", message "rule".
        char *colon = strstr (error, ": ");
        if (colon)
            *colon = '\0';
        s_error (errors_p, prefix, error, colon ? colon + 2 : "not valid");
        return -1;
    }
    free (command->metadata);
    command->metadata = strdup (text);
    assert (command->metadata);
    return 0;
}

//  "pending": true makes a transfer a hold; false is a plain transfer.
static int s_parse_pending (const cJSON *item, const char *prefix, command_t *command,
                            cJSON **errors_p)
{
    if (!cJSON_IsBool (item)) {
        s_error (errors_p, prefix, "pending", "must be true or false");
        return -1;
    }
    if (cJSON_IsTrue (item))
        command->kind = COMMAND_HOLD;
    return 0;
}

static int s_parse_timeout (const cJSON *item, const char *prefix, command_t *command,
                            cJSON **errors_p)
{
    int64_t value = 0;
    const char *fault = cJSON_IsNumber (item)
                            ? s_integer_from_text (item->valuestring, &value)
                            : "must be an integer (milliseconds)";
    if (!fault && (value < 1 || value > COMMANDS_TIMEOUT_MS_MAX))
        fault = "must be between 1 and 2592000000 (30 days)";
    if (fault) {
        s_error (errors_p, prefix, "timeout_ms", fault);
        return -1;
    }
    command->timeout_ms = value;
    return 0;
}

static command_shape_t s_shape_of (unsigned present)
{
    if (present & FIELD_POST)
        return COMMAND_SHAPE_POST;
    if (present & FIELD_VOID)
        return COMMAND_SHAPE_VOID;
    if (!(present & FIELD_AMOUNT) && (present & FIELD_ACCOUNT) &&
        (present & (FIELD_CURRENCY | FIELD_LIMIT | FIELD_METADATA)))
        return present & FIELD_CURRENCY ? COMMAND_SHAPE_OPEN : COMMAND_SHAPE_UPDATE;
    if (present & FIELD_ACCOUNT)
        return COMMAND_SHAPE_TRANSACTION;
    if (present & (FIELD_FROM | FIELD_TO))
        return COMMAND_SHAPE_TRANSFER;
    return COMMAND_SHAPE_ANY;
}

//  One member of a command object (bit: its s_field_bit); returns 0 when
//  valid, else -1 (reported).
static int s_parse_member (const cJSON *item, unsigned bit, command_shape_t shape,
                           const char *prefix, command_t *command, cJSON **errors_p)
{
    bool transfer = shape == COMMAND_SHAPE_TRANSFER;
    bool account_command = shape == COMMAND_SHAPE_OPEN || shape == COMMAND_SHAPE_UPDATE;
    bool resolution = shape == COMMAND_SHAPE_POST || shape == COMMAND_SHAPE_VOID;
    if (resolution) {
        //  The pending id (batch items), amount (posts) and the common ones.
        if ((bit == FIELD_POST && shape == COMMAND_SHAPE_POST) ||
            (bit == FIELD_VOID && shape == COMMAND_SHAPE_VOID))
            return s_parse_id (item, prefix, command->pending_id, errors_p);
        if (bit == FIELD_AMOUNT && shape == COMMAND_SHAPE_POST)
            return s_parse_amount (item, prefix, command, errors_p);
        if (bit == FIELD_REFERENCE)
            return s_parse_reference (item, prefix, command, errors_p);
        if (bit == FIELD_ID)
            return s_parse_id (item, prefix, command->id, errors_p);
        s_error (errors_p, prefix, item->string,
                 bit == FIELD_POST || bit == FIELD_VOID
                     ? "a command either posts or voids a hold"
                     : "unknown field");
        return -1;
    }
    if (bit == FIELD_PENDING && transfer)
        return s_parse_pending (item, prefix, command, errors_p);
    if (bit == FIELD_TIMEOUT && transfer)
        return s_parse_timeout (item, prefix, command, errors_p);
    if (bit == FIELD_CURRENCY && shape != COMMAND_SHAPE_UPDATE)
        return s_parse_currency (item, prefix, command, errors_p);
    if (bit == FIELD_LIMIT && account_command)
        return s_parse_limit (item, prefix, command, errors_p);
    if (bit == FIELD_METADATA && account_command)
        return s_parse_metadata (item, prefix, command, errors_p);
    if (bit == FIELD_REFERENCE && account_command) {
        s_error (errors_p, prefix, item->string, "unknown field");
        return -1;
    }
    if (bit == FIELD_AMOUNT && !account_command)
        return s_parse_amount (item, prefix, command, errors_p);
    if (bit == FIELD_ACCOUNT && !transfer)
        return s_parse_id (item, prefix, command->account, errors_p);
    if (bit == FIELD_FROM && transfer)
        return s_parse_id (item, prefix, command->from, errors_p);
    if (bit == FIELD_TO && transfer)
        return s_parse_id (item, prefix, command->to, errors_p);
    if (bit == FIELD_REFERENCE)
        return s_parse_reference (item, prefix, command, errors_p);
    if (bit == FIELD_ID)
        return s_parse_id (item, prefix, command->id, errors_p);
    s_error (errors_p, prefix, item->string, "unknown field");
    return -1;
}

//  The first member named like item is item (a later one is a duplicate).
//  Known names are told by bit; others are rare enough to look up.
static bool s_is_first (const cJSON *json, const cJSON *item, unsigned bit,
                        unsigned visited)
{
    if (bit)
        return !(visited & bit);
    return cJSON_GetObjectItemCaseSensitive (json, item->string) == item;
}

//  Members are read by walking the children, never looked up by name:
//  once to see which are present (the shape), once to parse them.
int commands_parse (const cJSON *json, command_shape_t shape, const char *prefix,
                    command_t *command, cJSON **errors_p)
{
    memset (command, 0, sizeof *command);
    if (!cJSON_IsObject (json)) {
        char field[FIELD_BYTES_MAX];
        snprintf (field, sizeof field, "%s", *prefix ? prefix : "body");
        if (*prefix)
            field[strlen (field) - 1] = '\0'; // "commands[3]." -> "commands[3]"
        http_problem_add_error (errors_p, field, "must be a JSON object");
        return -1;
    }
    unsigned present = 0;
    for (const cJSON *item = json->child; item; item = item->next)
        present |= s_field_bit (item->string);
    //  PATCH /accounts/{id} names the account in its path, not its body;
    //  POST /transfers/{id}/post and /void the hold.
    bool account_in_path = shape == COMMAND_SHAPE_UPDATE;
    bool hold_in_path = shape == COMMAND_SHAPE_POST || shape == COMMAND_SHAPE_VOID;
    if (shape == COMMAND_SHAPE_ANY)
        shape = s_shape_of (present);
    if (shape == COMMAND_SHAPE_ANY) {
        s_error (errors_p, prefix, "account", "required (or from and to for a transfer)");
        return -1;
    }
    command->kind = shape == COMMAND_SHAPE_TRANSFER ? COMMAND_TRANSFER
                    : shape == COMMAND_SHAPE_OPEN   ? COMMAND_OPEN
                    : shape == COMMAND_SHAPE_UPDATE ? COMMAND_UPDATE
                    : shape == COMMAND_SHAPE_POST   ? COMMAND_POST
                    : shape == COMMAND_SHAPE_VOID   ? COMMAND_VOID
                                                    : COMMAND_DEPOSIT;
    if (hold_in_path && (present & (FIELD_POST | FIELD_VOID))) {
        s_error (errors_p, prefix, present & FIELD_POST ? "post" : "void",
                 "the hold is given by the path, not the body");
        return -1;
    }
    if (account_in_path && (present & FIELD_ACCOUNT)) {
        s_error (errors_p, prefix, "account", "given by the path, not the body");
        return -1;
    }
    unsigned visited = 0;
    int rc = 0;
    for (const cJSON *item = json->child; item; item = item->next) {
        unsigned bit = s_field_bit (item->string);
        if (!s_is_first (json, item, bit, visited)) {
            s_error (errors_p, prefix, item->string, "duplicate field");
            rc = -1;
            continue;
        }
        visited |= bit;
        if (s_parse_member (item, bit, shape, prefix, command, errors_p) != 0)
            rc = -1;
    }
    unsigned required =
        shape == COMMAND_SHAPE_TRANSFER ? FIELD_AMOUNT | FIELD_FROM | FIELD_TO
        : shape == COMMAND_SHAPE_OPEN   ? FIELD_ACCOUNT | FIELD_CURRENCY
        : shape == COMMAND_SHAPE_UPDATE ? (account_in_path ? 0 : FIELD_ACCOUNT)
        : hold_in_path                  ? 0
        : shape == COMMAND_SHAPE_POST   ? FIELD_POST
        : shape == COMMAND_SHAPE_VOID   ? FIELD_VOID
                                        : FIELD_AMOUNT | FIELD_ACCOUNT;
    if (rc == 0 && command->timeout_ms && command->kind != COMMAND_HOLD) {
        s_error (errors_p, prefix, "timeout_ms", "only for a hold (\"pending\": true)");
        rc = -1;
    }
    if (shape == COMMAND_SHAPE_UPDATE && !(present & (FIELD_LIMIT | FIELD_METADATA))) {
        s_error (errors_p, prefix, "overdraft_limit", "required (or metadata)");
        rc = -1;
    }
    const char *names[] = {"amount",    "account", "from",       "to",
                           "reference", "id",      "currency",   "overdraft_limit",
                           "metadata",  "pending", "timeout_ms", "post",
                           "void"};
    for (unsigned index = 0; index < sizeof names / sizeof names[0]; index++) {
        unsigned bit = 1u << index;
        if ((required & bit) && !(present & bit)) {
            s_error (errors_p, prefix, names[index], "required");
            rc = -1;
        }
    }
    if (rc == 0 && shape == COMMAND_SHAPE_TRANSFER && *command->from && *command->to &&
        streq (command->from, command->to)) {
        s_error (errors_p, prefix, "to", "must differ from from (transfer to self)");
        rc = -1;
    }
    return rc;
}

//  Appends text and a separator to the fingerprint line.
static size_t s_field (char *line, size_t bytes, const char *text, char separator)
{
    size_t length = strlen (text);
    memcpy (line + bytes, text, length);
    line[bytes + length] = separator;
    return bytes + length + 1;
}

//  "kind|account|from|to|amount|id|reference;" as snprintf would print it
//  (this runs per command of a batch: no format machinery).
static size_t s_fingerprint_line (const command_t *command, bool batch, char *line)
{
    char number[24];
    size_t digits = 0;
    int64_t amount = command->amount; // validated: 1 .. EVENT_AMOUNT_MAX
    do {
        number[sizeof number - 1 - digits++] = (char)('0' + amount % 10);
        amount /= 10;
    } while (amount);
    char kind[2] = {(char)('0' + command->kind), '\0'};
    size_t bytes = s_field (line, 0, kind, '|');
    bytes = s_field (line, bytes, command->account, '|');
    bytes = s_field (line, bytes, command->from, '|');
    bytes = s_field (line, bytes, command->to, '|');
    memcpy (line + bytes, number + sizeof number - digits, digits);
    line[bytes + digits] = '|';
    bytes += digits + 1;
    bytes = s_field (line, bytes, batch ? command->id : "", '|');
    bytes = s_field (line, bytes, command->reference, '|');
    if (command->kind >= COMMAND_HOLD) {
        //  Holds: currency, timeout and the hold resolved.
        bytes = s_field (line, bytes, command->currency, '|');
        char timeout[24];
        timeout[event_format_int (timeout, command->timeout_ms)] = '\0';
        bytes = s_field (line, bytes, timeout, '|');
        return s_field (line, bytes, command->pending_id, ';');
    }
    if (command->kind != COMMAND_OPEN && command->kind != COMMAND_UPDATE)
        return s_field (line, bytes, command->currency, ';');
    //  Account commands: currency, limit ("-" when not given) and metadata.
    bytes = s_field (line, bytes, command->currency, '|');
    char limit[24] = "-";
    if (command->has_limit)
        limit[event_format_int (limit, command->overdraft_limit)] = '\0';
    bytes = s_field (line, bytes, limit, '|');
    return s_field (line, bytes, command->metadata ? command->metadata : "", ';');
}

void commands_fingerprint (const command_t *commands, size_t count, bool batch,
                           char *fingerprint)
{
    zdigest_t *digest = zdigest_new ();
    assert (digest);
    for (size_t index = 0; index < count; index++) {
        // In a batch the event ids are part of the request; for a single
        // command the id is the idempotency key itself.
        char line[EVENT_LINE_BYTES_MAX + EVENT_METADATA_BYTES_MAX];
        size_t bytes = s_fingerprint_line (&commands[index], batch, line);
        assert (bytes < sizeof line);
        zdigest_update (digest, (const byte *)line, bytes);
    }
    //  In hex as zdigest_string writes it ("%02X" per byte), without its
    //  snprintf per byte.
    static const char hex[] = "0123456789ABCDEF";
    const byte *data = zdigest_data (digest);
    size_t size = zdigest_size (digest);
    assert (size * 2 == COMMANDS_FINGERPRINT_BYTES);
    for (size_t index = 0; index < size; index++) {
        fingerprint[2 * index] = hex[data[index] >> 4];
        fingerprint[2 * index + 1] = hex[data[index] & 0xf];
    }
    fingerprint[COMMANDS_FINGERPRINT_BYTES] = '\0';
    zdigest_destroy (&digest);
}

//  --------------------------------------------------------------------
//  Batches on the cJSON path

//  "commands[<index>]." without the format machinery (runs per command).
static void s_item_prefix (char *prefix, size_t index)
{
    memcpy (prefix, "commands[", 9);
    size_t count = event_format_int (prefix + 9, (int64_t)index);
    memcpy (prefix + 9 + count, "].", 3);
}

int commands_parse_batch (const cJSON *json, command_t **commands_p, size_t *count_p,
                          char *key, cJSON **errors_p)
{
    const cJSON *list = NULL;
    const cJSON *item;
    int rc = 0;
    *commands_p = NULL;
    *count_p = 0;
    *key = '\0';
    if (!cJSON_IsObject (json)) {
        http_problem_add_error (errors_p, "body", "must be a JSON object");
        return -1;
    }
    cJSON_ArrayForEach (item, json)
    {
        if (streq (item->string, "commands") && !list)
            list = item;
        else if (streq (item->string, "id") && cJSON_IsString (item) &&
                 event_id_is_valid (item->valuestring, strlen (item->valuestring)))
            snprintf (key, EVENT_ID_BYTES_MAX + 1, "%s", item->valuestring);
        else {
            http_problem_add_error (errors_p, item->string,
                                    streq (item->string, "id") ? "must be a valid id"
                                                               : "unknown field");
            rc = -1;
        }
    }
    int size = cJSON_IsArray (list) ? cJSON_GetArraySize (list) : -1;
    if (size < 1 || size > COMMANDS_BATCH_MAX) {
        char message[64];
        snprintf (message, sizeof message, "required: an array of 1 to %d commands",
                  COMMANDS_BATCH_MAX);
        http_problem_add_error (errors_p, "commands", message);
        return -1;
    }
    *count_p = (size_t)size;
    *commands_p = calloc (*count_p, sizeof (command_t));
    assert (*commands_p);
    size_t index = 0;
    cJSON_ArrayForEach (item, list)
    {
        char prefix[32];
        s_item_prefix (prefix, index);
        if (commands_parse (item, COMMAND_SHAPE_ANY, prefix, &(*commands_p)[index],
                            errors_p) != 0)
            rc = -1;
        index++;
    }
    return rc;
}

//  --------------------------------------------------------------------
//  The fast path: plainly valid bodies only
//
//  It never reports: anything it is not sure of is declined (false), and
//  the cJSON path, which is the reference, judges it. So it may be
//  stricter than JSON (only the four whitespace bytes JSON names, no
//  escapes in strings, no control bytes), never laxer.

typedef struct {
    const char *p, *end;
} reader_t;

static void s_skip_space (reader_t *reader)
{
    while (reader->p < reader->end && (*reader->p == ' ' || *reader->p == '\n' ||
                                       *reader->p == '\r' || *reader->p == '\t'))
        reader->p++;
}

//  The next token is the byte c: consumes it.
static bool s_take (reader_t *reader, char c)
{
    s_skip_space (reader);
    if (reader->p == reader->end || *reader->p != c)
        return false;
    reader->p++;
    return true;
}

//  Bytes a string may hold on the fast path: no quote, no backslash (an
//  escape would need decoding), no control byte.
static bool s_string_bytes[256];
static bool s_string_bytes_ready;

static void s_string_bytes_init (void)
{
    if (s_string_bytes_ready)
        return;
    for (int byte = 0x20; byte < 256; byte++)
        s_string_bytes[byte] = byte != '"' && byte != '\\';
    s_string_bytes_ready = true;
}

//  A string token: its bytes between the quotes (not NUL-ended).
static bool s_read_string (reader_t *reader, const char **text, size_t *bytes)
{
    if (!s_take (reader, '"'))
        return false;
    const unsigned char *start = (const unsigned char *)reader->p;
    const unsigned char *end = (const unsigned char *)reader->end;
    const unsigned char *cursor = start;
    while (cursor < end && s_string_bytes[*cursor])
        cursor++;
    if (cursor == end || *cursor != '"')
        return false;
    *text = (const char *)start;
    *bytes = (size_t)(cursor - start);
    reader->p = (const char *)cursor + 1;
    return true;
}

//  -?[1-9][0-9]* of at most 16 digits, within +-EVENT_AMOUNT_MAX, followed
//  by what may follow a value: what s_integer_from_text accepts, but zero.
static bool s_read_amount (reader_t *reader, int64_t *value)
{
    s_skip_space (reader);
    const char *p = reader->p;
    bool negative = p < reader->end && *p == '-';
    if (negative)
        p++;
    if (p == reader->end || *p < '1' || *p > '9')
        return false;
    int64_t magnitude = 0;
    const char *digits = p;
    for (; p < reader->end && *p >= '0' && *p <= '9'; p++) {
        if (p - digits == 16)
            return false;
        magnitude = magnitude * 10 + (*p - '0');
    }
    if (magnitude > EVENT_AMOUNT_MAX || p == reader->end || s_is_number_char (*p))
        return false;
    *value = negative ? -magnitude : magnitude;
    reader->p = p;
    return true;
}

static unsigned s_field_bit_of (const char *name, size_t bytes)
{
    switch (bytes) {
    case 2:
        return memcmp (name, "id", 2) == 0   ? FIELD_ID
               : memcmp (name, "to", 2) == 0 ? FIELD_TO
                                             : 0;
    case 4:
        return memcmp (name, "from", 4) == 0 ? FIELD_FROM : 0;
    case 6:
        return memcmp (name, "amount", 6) == 0 ? FIELD_AMOUNT : 0;
    case 7:
        return memcmp (name, "account", 7) == 0   ? FIELD_ACCOUNT
               : memcmp (name, "pending", 7) == 0 ? FIELD_PENDING
                                                  : 0;
    case 8:
        return memcmp (name, "currency", 8) == 0 ? FIELD_CURRENCY : 0;
    case 9:
        return memcmp (name, "reference", 9) == 0 ? FIELD_REFERENCE : 0;
    case 10:
        return memcmp (name, "timeout_ms", 10) == 0 ? FIELD_TIMEOUT : 0;
    default:
        return 0;
    }
}

//  A valid id or account into target (EVENT_ID_BYTES_MAX + 1 bytes).
static bool s_read_id (reader_t *reader, char *target)
{
    const char *text;
    size_t bytes;
    if (!s_read_string (reader, &text, &bytes) || !event_id_is_valid (text, bytes))
        return false;
    memcpy (target, text, bytes);
    target[bytes] = '\0';
    return true;
}

static bool s_read_reference (reader_t *reader, char *target)
{
    const char *text;
    size_t bytes;
    if (!s_read_string (reader, &text, &bytes) || bytes > EVENT_META_VALUE_BYTES_MAX ||
        !event_text_is_utf8 (text, bytes))
        return false;
    memcpy (target, text, bytes);
    target[bytes] = '\0';
    return true;
}

//  One member's value into command; amount goes to *amount (signed).
//  A literal token (true, false) followed by what may follow a value.
static bool s_read_literal (reader_t *reader, const char *literal, size_t bytes)
{
    s_skip_space (reader);
    if ((size_t)(reader->end - reader->p) <= bytes || memcmp (reader->p, literal, bytes) ||
        !strchr (",} \t\r\n", reader->p[bytes]) || reader->p[bytes] == '\0')
        return false;
    reader->p += bytes;
    return true;
}

static bool s_read_member (reader_t *reader, unsigned bit, command_t *command,
                           int64_t *amount)
{
    switch (bit) {
    case FIELD_PENDING:
        //  Only true: "pending": false is rare enough for the cJSON path.
        if (!s_read_literal (reader, "true", 4))
            return false;
        command->kind = COMMAND_HOLD;
        return true;
    case FIELD_TIMEOUT: {
        int64_t value;
        if (!s_read_amount (reader, &value) || value < 1 || value > COMMANDS_TIMEOUT_MS_MAX)
            return false;
        command->timeout_ms = value;
        return true;
    }
    case FIELD_AMOUNT:
        return s_read_amount (reader, amount);
    case FIELD_ACCOUNT:
        return s_read_id (reader, command->account);
    case FIELD_FROM:
        return s_read_id (reader, command->from);
    case FIELD_TO:
        return s_read_id (reader, command->to);
    case FIELD_ID:
        return s_read_id (reader, command->id);
    case FIELD_REFERENCE:
        return s_read_reference (reader, command->reference);
    case FIELD_CURRENCY: {
        const char *text;
        size_t bytes;
        if (!s_read_string (reader, &text, &bytes) ||
            !event_currency_is_valid (text, bytes))
            return false;
        memcpy (command->currency, text, bytes);
        command->currency[bytes] = '\0';
        return true;
    }
    default:
        return false;
    }
}

//  One command object of shape, as commands_parse would validate it.
static bool s_read_command (reader_t *reader, command_shape_t shape, command_t *command)
{
    //  Not a memset: a batch's commands are half a megabyte, mostly unused.
    command->kind = 0;
    command->amount = 0;
    command->id[0] = command->account[0] = command->from[0] = command->to[0] = '\0';
    command->reference[0] = command->currency[0] = '\0';
    command->has_limit = false;
    command->overdraft_limit = 0;
    command->metadata = NULL; // the fast path takes no account commands
    command->timeout_ms = 0;  // nor holds
    command->timeout_at_ms = 0;
    command->pending_id[0] = '\0';
    if (!s_take (reader, '{'))
        return false;
    unsigned present = 0;
    int64_t amount = 0;
    do {
        const char *name;
        size_t bytes;
        if (!s_read_string (reader, &name, &bytes))
            return false;
        unsigned bit = s_field_bit_of (name, bytes);
        if (!bit || (present & bit) || !s_take (reader, ':') ||
            !s_read_member (reader, bit, command, &amount))
            return false;
        present |= bit;
    } while (s_take (reader, ','));
    if (!s_take (reader, '}'))
        return false;
    if (shape == COMMAND_SHAPE_ANY)
        shape = s_shape_of (present);
    unsigned required = shape == COMMAND_SHAPE_TRANSFER
                            ? FIELD_AMOUNT | FIELD_FROM | FIELD_TO
                            : FIELD_AMOUNT | FIELD_ACCOUNT;
    unsigned allowed = required | FIELD_REFERENCE | FIELD_ID | FIELD_CURRENCY;
    if (shape == COMMAND_SHAPE_TRANSFER)
        allowed |= FIELD_PENDING | FIELD_TIMEOUT;
    //  timeout_ms belongs to a hold (the cJSON path names the fault).
    if ((present & FIELD_TIMEOUT) && !(present & FIELD_PENDING))
        return false;
    if (shape == COMMAND_SHAPE_ANY || (present & required) != required ||
        (present & ~allowed))
        return false;
    if (shape == COMMAND_SHAPE_TRANSFER) {
        if (amount < 0 || streq (command->from, command->to))
            return false;
        command->kind = present & FIELD_PENDING ? COMMAND_HOLD : COMMAND_TRANSFER;
    } else
        command->kind = amount > 0 ? COMMAND_DEPOSIT : COMMAND_WITHDRAW;
    command->amount = amount > 0 ? amount : -amount;
    return true;
}

//  The commands array of a batch into *commands_p, grown as it fills.
static bool s_read_list (reader_t *reader, command_t **commands_p, size_t *count_p)
{
    if (!s_take (reader, '['))
        return false;
    //  The shortest command, {"account":"a","amount":1}, and a comma take
    //  27 bytes: a first guess that rarely grows and never much over.
    size_t capacity = (size_t)(reader->end - reader->p) / 27 + 1;
    if (capacity > COMMANDS_BATCH_MAX)
        capacity = COMMANDS_BATCH_MAX;
    command_t *commands = malloc (capacity * sizeof *commands);
    assert (commands);
    *commands_p = commands; // the caller's to free, whatever happens next
    size_t count = 0;
    do {
        if (count == capacity) {
            if (capacity == COMMANDS_BATCH_MAX)
                return false; // too many: the cJSON path says so
            capacity =
                capacity * 2 > COMMANDS_BATCH_MAX ? COMMANDS_BATCH_MAX : capacity * 2;
            commands = realloc (commands, capacity * sizeof *commands);
            assert (commands);
            *commands_p = commands;
        }
        if (!s_read_command (reader, COMMAND_SHAPE_ANY, &commands[count]))
            return false; // also an empty list
        count++;
    } while (s_take (reader, ','));
    *count_p = count;
    return s_take (reader, ']');
}

//  {"commands":[...], "id"?}
static bool s_read_batch (reader_t *reader, command_t **commands_p, size_t *count_p,
                          char *key)
{
    if (!s_take (reader, '{'))
        return false;
    bool has_list = false, has_key = false;
    do {
        const char *name;
        size_t bytes;
        if (!s_read_string (reader, &name, &bytes) || !s_take (reader, ':'))
            return false;
        if (bytes == 8 && memcmp (name, "commands", 8) == 0 && !has_list) {
            has_list = true;
            if (!s_read_list (reader, commands_p, count_p))
                return false;
        } else if (bytes == 2 && memcmp (name, "id", 2) == 0 && !has_key) {
            has_key = true;
            if (!s_read_id (reader, key))
                return false;
        } else
            return false;
    } while (s_take (reader, ','));
    return has_list && s_take (reader, '}');
}

int commands_read (const char *body, size_t bytes, command_shape_t shape, bool batch,
                   command_t **commands_p, size_t *count_p, char *key)
{
    if (shape == COMMAND_SHAPE_OPEN || shape == COMMAND_SHAPE_UPDATE ||
        shape == COMMAND_SHAPE_POST || shape == COMMAND_SHAPE_VOID) {
        *key = '\0';
        return -1; // account commands and holds: the cJSON path reads them
    }
    s_string_bytes_init ();
    reader_t reader = {body, body + bytes};
    command_t *commands = NULL;
    size_t count = 0;
    *key = '\0';
    bool read;
    if (batch)
        read = s_read_batch (&reader, &commands, &count, key);
    else {
        commands = malloc (sizeof *commands);
        assert (commands);
        count = 1;
        read = s_read_command (&reader, shape, commands);
    }
    s_skip_space (&reader);
    if (!read || reader.p != reader.end) {
        free (commands);
        *key = '\0';
        return -1;
    }
    *commands_p = commands;
    *count_p = count;
    return 0;
}
