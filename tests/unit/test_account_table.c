/*  test_account_table — the account table (common/account_table.h)
    against a model: a zhashx of name -> value kept the obvious way, over
    random names through many doublings of the slots and the arena.
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
        CHECK (memcmp (name, names[i], bytes) == 0);
    }
    CHECK_EQ_INT (account_table_size (table), 3);
    account_table_destroy (&table);
}

int main (void)
{
    RUN (test_table_matches_model_through_growth);
    RUN (test_values_are_aligned_and_zeroed);
    return check_exit_status ();
}
