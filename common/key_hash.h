/*  key_hash — the services' one hash of short strings (event ids, account
    names, idempotency keys, attempt ids) for in-memory tables, a word at a
    time. No table persists it, so it may change; nothing else hashes a
    string.

    czmq's default (Bernstein, byte by byte) and FNV-1a are a chain of
    one multiply per byte; this is one per eight bytes, with the length
    and a final mix so that keys differing only in their last bytes
    ("b-17", "b-18") spread over the low (slot) bits too.
*/
#ifndef KEY_HASH_H_INCLUDED
#define KEY_HASH_H_INCLUDED

#include <stdint.h>
#include <string.h>

//  The last 0-7 bytes as a word by fixed-size loads (a memcpy of a
//  variable length becomes a byte-wise copy). Overlapping bytes are
//  fine: the length is mixed in too.
static inline uint64_t key_hash_tail (const unsigned char *tail, size_t bytes)
{
    if (bytes >= 4) {
        uint32_t low, high;
        memcpy (&low, tail, sizeof low);
        memcpy (&high, tail + bytes - sizeof high, sizeof high);
        return (uint64_t)high << 32 | low;
    }
    if (bytes == 0)
        return 0;
    return (uint64_t)tail[0] | (uint64_t)tail[bytes / 2] << 8 |
           (uint64_t)tail[bytes - 1] << 16;
}

//  A key of bytes bytes, NUL-terminated or not.
static inline uint64_t key_hash_bytes (const char *key, size_t bytes)
{
    const unsigned char *next = (const unsigned char *)key;
    uint64_t hash = 0x9e3779b97f4a7c15ULL ^ bytes;
    uint64_t word;
    for (; bytes >= sizeof word; next += sizeof word, bytes -= sizeof word) {
        memcpy (&word, next, sizeof word);
        hash = (hash ^ word) * 0xbf58476d1ce4e5b9ULL;
        hash ^= hash >> 31;
    }
    hash = (hash ^ key_hash_tail (next, bytes)) * 0x94d049bb133111ebULL;
    hash ^= hash >> 32;
    hash *= 0xbf58476d1ce4e5b9ULL;
    return hash ^ (hash >> 29);
}

static inline uint64_t key_hash (const char *key)
{
    return key_hash_bytes (key, strlen (key));
}

#endif
