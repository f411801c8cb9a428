/*  chain — the log's tamper-evidence chain and its signed heads
    (docs/DESIGN.md, "Tamper evidence").

    chain(N) = SHA-256(chain(N-1) || line(N)), line N's bytes without its
    trailing ,"chain":"<64 hex>" key (and without \n); chain(0) is 32
    zero bytes. A stored line ends with that key: the stream writes it
    (chain_seal), every reader recomputes and compares it (chain_check). A
    line without the key (written before chains existed) is chained all
    the same, so an earlier version's log keeps working.

    A head is {"seq","ts","chain"} of a log's last line; signed, it also
    carries public_key and signature (hex): Ed25519 over the ASCII text
    "<seq> <ts> <chain>". SHA-256 uses the CPU's SHA instructions where
    it has them (x86 SHA-NI) and libsodium's otherwise: the same digest.

    It knows bytes, not events: no parsing beyond the key's fixed shape.
*/
#ifndef CHAIN_H_INCLUDED
#define CHAIN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAIN_BYTES      32
#define CHAIN_HEX_BYTES  64
//  ,"chain":"<64 hex>" — what the key adds to a line (its } stays last).
#define CHAIN_KEY_BYTES  75
#define CHAIN_SEED_BYTES 32 // an Ed25519 seed: the --sign-key file, as 64 hex
#define CHAIN_PUBLIC_KEY_BYTES 32
#define CHAIN_SECRET_KEY_BYTES 64
#define CHAIN_SIGNATURE_BYTES  64
//  A head as JSON: seq, ts, chain, public_key, signature and their keys.
#define CHAIN_HEAD_JSON_BYTES_MAX 512
//  "<seq> <ts> <chain>": 16 digits, 24, 64 and two spaces.
#define CHAIN_HEAD_TEXT_BYTES_MAX 128

//  True if line (bytes, no \n) ends with a chain key (its 64 digits are
//  not checked: chain_check compares them); then *body_bytes is where
//  the key starts: the unchained line is line[0, body_bytes) followed by "}".
bool chain_split (const char *line, size_t bytes, size_t *body_bytes);

//  The chain a line's key names, into named: 0, or -1 if it has none.
int chain_named (const char *line, size_t bytes, uint8_t named[CHAIN_BYTES]);

//  chain(N) from chain(N-1) = prev and line N (with or without its key).
void chain_next (const uint8_t prev[CHAIN_BYTES], const char *line, size_t bytes,
                 uint8_t next[CHAIN_BYTES]);

//  Checks line N against chain(N-1) = chain: computes chain(N) into next
//  and, if the line carries a key, compares them. 0, or -1 when its key
//  names another chain (next still holds the computed one).
int chain_check (const uint8_t chain[CHAIN_BYTES], const char *line, size_t bytes,
                 uint8_t next[CHAIN_BYTES]);

//  The writer's side: line holds an unchained canonical line (ending in
//  }) of bytes in a buffer of capacity; chain(N) goes into next and its
//  key into the line. Returns the new length, or 0 if it does not fit.
size_t chain_seal (const uint8_t prev[CHAIN_BYTES], char *line, size_t bytes,
                   size_t capacity, uint8_t next[CHAIN_BYTES]);

//  64 lowercase hex digits and a NUL.
void chain_to_hex (const uint8_t chain[CHAIN_BYTES], char hex[CHAIN_HEX_BYTES + 1]);
//  Exactly 64 hex digits (either case) -> bytes. 0 or -1.
int chain_from_hex (const char *hex, size_t bytes, uint8_t *out, size_t out_bytes);

//  SHA-256 of data, as chain_next computes it (for tests and the verifier).
void chain_sha256 (const void *data, size_t bytes, uint8_t digest[CHAIN_BYTES]);
//  True if the SHA instructions are used.
bool chain_hardware (void);

typedef struct {
    int64_t seq; // 0: the empty log (no ts, never signed)
    int64_t ts_ms;
    uint8_t chain[CHAIN_BYTES];
    bool is_signed;
    uint8_t public_key[CHAIN_PUBLIC_KEY_BYTES];
    uint8_t signature[CHAIN_SIGNATURE_BYTES];
} chain_head_t;

//  "<seq> <ts> <chain>" into text (CHAIN_HEAD_TEXT_BYTES_MAX); its length.
size_t chain_head_text (const chain_head_t *head, char *text);

//  Signs head (seq >= 1) with secret_key (crypto_sign's 64 bytes).
void chain_head_sign (chain_head_t *head, const uint8_t *secret_key);

//  0 if head is signed and its signature holds, under public_key if not
//  NULL (the head's own key must be it), else under the head's own key.
int chain_head_verify (const chain_head_t *head, const uint8_t *public_key);

//  The head as JSON (GET /head): {"seq","ts","chain"} and, if signed,
//  "public_key","signature". Returns its length (< CHAIN_HEAD_JSON_BYTES_MAX).
size_t chain_head_format (const chain_head_t *head, char *json, size_t size);

//  A head as chain_head_format writes it (keys in any order; ts any RFC
//  3339 time with ms, signed only with both public_key and signature).
//  0, or -1 with a reason in error.
int chain_head_parse (const char *json, size_t bytes, chain_head_t *head, char *error,
                      size_t error_size);

//  Reads a --sign-key file (the 32-byte seed as 64 hex digits, then
//  optional whitespace) into the key pair. 0, or -1 with a reason.
int chain_key_load (const char *path, uint8_t *secret_key, uint8_t *public_key,
                    char *error, size_t error_size);

#endif
