/*  test_account_table — the account table (common/account_table.h)
    against a model: a zhashx of name -> value kept the obvious way, over
    random names through many doublings of the slots and pages, with
    removals and walks.
*/
#include <czmq.h>

#include "account_table.h"
#include "check.h"
#include "event.h"

#define TEST_NAMES   100000 // far past the first slots (1024) and arena (64 KiB)
#define TEST_LOOKUPS 300000

//  Name i: its hex digits (so distinct for distinct i) and a dash, then
//  filler to a length of up to EVENT_ACCOUNT_BYTES_MAX that varies with i.
static void s_name (size_t i, char *name)
{
    static const char filler[] = "abcdefghijklmnopqrstuvwxyz0123456789._:-";
    size_t bytes = (size_t)snprintf (name, EVENT_ACCOUNT_BYTES_MAX + 1, "%zx-", i);
    size_t target = bytes + (i * 2654435761u) % (EVENT_ACCOUNT_BYTES_MAX - bytes + 1);
    for (; bytes < target; bytes++)
        name[bytes] = filler[(i + bytes) % (sizeof filler - 1)];
    name[bytes] = '\0';
}

static void test_table_matches_model_through_growth (void)
{
    account_table_t *table = account_table_new (sizeof (int64_t));
    zhashx_t *model = zhashx_new ();
    CHECK (table && model);
    srand (7);
    char name[EVENT_ACCOUNT_BYTES_MAX + 1];
    uint32_t *records = (uint32_t *)calloc (TEST_NAMES, sizeof (uint32_t));
    for (size_t i = 0; i < TEST_NAMES; i++) {
        s_name (i, name);
        CHECK_EQ_INT (account_table_find (table, name), 0);
        records[i] = account_table_ensure (table, name);
        CHECK (records[i] != 0);
        CHECK_EQ_INT (*(int64_t *)account_table_value (table, records[i]), 0);
        *(int64_t *)account_table_value (table, records[i]) = (int64_t)i * 3 + 1;
        zhashx_insert (model, name, (void *)(uintptr_t)(i * 3 + 1));
        CHECK_EQ_INT (account_table_ensure (table, name), records[i]);
    }
    CHECK_EQ_INT (account_table_size (table), zhashx_size (model));
    for (size_t n = 0; n < TEST_LOOKUPS; n++) {
        size_t i = (size_t)rand () % (TEST_NAMES * 2); // half of them never added
        s_name (i, name);
        uint32_t record = account_table_find (table, name);
        uintptr_t expected = (uintptr_t)zhashx_lookup (model, name);
        if (!expected) {
            CHECK_EQ_INT (record, 0);
            continue;
        }
        CHECK_EQ_INT (record, records[i]);
        CHECK_EQ_INT (*(int64_t *)account_table_value (table, record), (int64_t)expected);
        size_t bytes;
        const char *stored = account_table_name (table, record, &bytes);
        CHECK_EQ_INT (bytes, strlen (name));
        CHECK (memcmp (stored, name, bytes) == 0);
    }
    free (records);
    zhashx_destroy (&model);
    account_table_destroy (&table);
    account_table_destroy (&table);
    CHECK (table == NULL);
}

static void test_values_are_aligned_and_zeroed (void)
{
    account_table_t *table = account_table_new (20); // rounded up to 24
    CHECK (table);
    const char *names[] = {"a", "bb", "a-much-longer-account-name-of-forty-bytes-"};
    for (size_t i = 0; i < 3; i++) {
        uint32_t record = account_table_ensure (table, names[i]);
        unsigned char *value = (unsigned char *)account_table_value (table, record);
        CHECK_EQ_INT ((uintptr_t)value % 8, 0);
        for (size_t at = 0; at < 20; at++)
            CHECK_EQ_INT (value[at], 0);
        memset (value, 0xff, 20); // must not reach the name
        size_t bytes;
        const char *name = account_table_name (table, record, &bytes);
        CHECK_EQ_INT (bytes, strlen (names[i]));
        CHECK_EQ_STR (name, names[i]); // NUL-terminated
    }
    CHECK_EQ_INT (account_table_size (table), 3);
    char longer[EVENT_ACCOUNT_BYTES_MAX + 2];
    memset (longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    CHECK_EQ_INT (account_table_find (table, longer), 0); // no such name is ever added
    account_table_destroy (&table);
}

//  Adds and removes at random against the model: what is left is found
//  with its value at the address it had when added, and a walk visits
//  exactly the records left, in the order they were added when nothing
//  was removed.
static void test_removals_walks_and_addresses_match_model (void)
{
    account_table_t *table = account_table_new (sizeof (int64_t));
    zhashx_t *model = zhashx_new ();
    CHECK (table && model);
    srand (11);
    char name[EVENT_ACCOUNT_BYTES_MAX + 1];
    uint32_t *records = (uint32_t *)calloc (TEST_NAMES / 4, sizeof (uint32_t));
    int64_t **values = (int64_t **)calloc (TEST_NAMES / 4, sizeof (int64_t *));
    for (size_t i = 0; i < TEST_NAMES / 4; i++) {
        s_name (i, name);
        records[i] = account_table_ensure (table, name);
        values[i] = (int64_t *)account_table_value (table, records[i]);
        *values[i] = (int64_t)i + 1;
        zhashx_insert (model, name, (void *)(uintptr_t)(i + 1));
    }
    size_t walked = 0;
    for (uint32_t record = account_table_next (table, 0); record;
         record = account_table_next (table, record))
        CHECK_EQ_INT (record, records[walked++]);
    CHECK_EQ_INT (walked, TEST_NAMES / 4);
    for (size_t n = 0; n < TEST_LOOKUPS; n++) {
        size_t i = (size_t)rand () % (TEST_NAMES / 4);
        s_name (i, name);
        if (records[i] && rand () % 2) {
            account_table_remove (table, records[i]);
            zhashx_delete (model, name);
            records[i] = 0;
        } else if (!records[i]) {
            records[i] = account_table_ensure (table, name);
            CHECK (records[i] != 0);
            values[i] = (int64_t *)account_table_value (table, records[i]);
            CHECK_EQ_INT (*values[i], 0);
            *values[i] = (int64_t)i + 1;
            zhashx_insert (model, name, (void *)(uintptr_t)(i + 1));
        }
        CHECK_EQ_INT (account_table_find (table, name), records[i]);
    }
    CHECK_EQ_INT (account_table_size (table), zhashx_size (model));
    walked = 0;
    for (uint32_t record = account_table_next (table, 0); record;
         record = account_table_next (table, record)) {
        size_t bytes;
        const char *stored = account_table_name (table, record, &bytes);
        CHECK_EQ_INT (bytes, strlen (stored));
        uintptr_t expected = (uintptr_t)zhashx_lookup (model, stored);
        CHECK (expected != 0);
        CHECK (account_table_value (table, record) == values[expected - 1]);
        CHECK_EQ_INT (*values[expected - 1], (int64_t)expected);
        walked++;
    }
    CHECK_EQ_INT (walked, zhashx_size (model));
    free (values);
    free (records);
    zhashx_destroy (&model);
    account_table_destroy (&table);
}

int main (void)
{
    RUN (test_table_matches_model_through_growth);
    RUN (test_values_are_aligned_and_zeroed);
    RUN (test_removals_walks_and_addresses_match_model);
    return check_exit_status ();
}
