/*  account_table — accounts by name, each with a fixed-size value of the
    caller's (a version, a balance, a state struct): open addressing over
    (hash, record) slots, probing hashes in the slot before it reads a
    record, and the records (value, name) in pages with no allocation per
    account. Names are hashed by key_hash.h. The stream's versions, the
    write model's accounts and accounting's accounts all live in one.

    A record is named by a 32-bit handle, and its value does not move:
    both stay valid until the record is removed (a transfer holds two
    while it adds). A removed record's room is reused by a later name of
    the same size class. Records are walked in the order they were
    added, but for reused ones.
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

//  The record of account (NUL-terminated), or 0 if it has none (as no
//  name longer than EVENT_ACCOUNT_BYTES_MAX has).
uint32_t account_table_find (account_table_t *self, const char *account);
//  The record of account (at most EVENT_ACCOUNT_BYTES_MAX bytes), added
//  with a zeroed value if it had none; 0 when memory is short (the table
//  then holds what it held).
uint32_t account_table_ensure (account_table_t *self, const char *account);
//  Forgets the record; its handle and value are then invalid.
void account_table_remove (account_table_t *self, uint32_t record);

//  The record's value: value_bytes, 8-byte aligned, at a fixed address.
void *account_table_value (account_table_t *self, uint32_t record);
//  The record's name, NUL-terminated, and its length.
const char *account_table_name (account_table_t *self, uint32_t record, size_t *bytes);
//  Records in the table.
size_t account_table_size (account_table_t *self);
//  The record after record (0: the first one), or 0 after the last.
uint32_t account_table_next (account_table_t *self, uint32_t record);

#endif
