/*  account_table — accounts by name, each with a fixed-size value of the
    caller's (a version, a balance, a state struct): open addressing over
    (hash, record) slots, probing hashes in the slot before it reads a
    record, and the records (value and name) in one arena with no
    allocation per account. Names are hashed by key_hash.h.

    Records are never removed: a caller that forgets an account sets its
    value to what "absent" means to it. A record is named by a 32-bit
    handle that stays valid for the table's life, though the pointer from
    account_table_value moves when the table grows (any add may grow it).

    Its record layout (value, one length byte, the name, padded to 8) is
    the stream ingest's version record byte for byte, so ingest's versions
    and their snapshot can move here unchanged; the write model's and
    accounting's tables are to move here too.
*/
#ifndef ACCOUNT_TABLE_H_INCLUDED
#define ACCOUNT_TABLE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef struct account_table account_table_t;

//  value_bytes per account, zeroed when it is added (at most
//  ACCOUNT_TABLE_VALUE_BYTES_MAX). NULL when memory is short.
#define ACCOUNT_TABLE_VALUE_BYTES_MAX 256
account_table_t *account_table_new (size_t value_bytes);
void account_table_destroy (account_table_t **self_p);

//  The record of account (NUL-terminated, at most EVENT_ACCOUNT_BYTES_MAX
//  bytes), or 0 if it has none.
uint32_t account_table_find (account_table_t *self, const char *account);
//  The record of account, added with a zeroed value if it had none; 0
//  when memory is short (the table then holds what it held).
uint32_t account_table_ensure (account_table_t *self, const char *account);

//  The record's value: value_bytes, 8-byte aligned. Valid until the next
//  account_table_ensure.
void *account_table_value (account_table_t *self, uint32_t record);
//  The record's name (not NUL-terminated) and its length.
const char *account_table_name (account_table_t *self, uint32_t record, size_t *bytes);
//  Records in the table.
size_t account_table_size (account_table_t *self);

#endif
