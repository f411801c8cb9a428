/*  chain — see chain.h.

    SHA-256 runs on the x86 SHA extensions when the CPU has them (a line
    is a few 64-byte blocks, and libsodium's portable code spends several
    times as long on each); the fallback is libsodium's, and the unit
    test holds both to the same digests.
*/
#include "chain.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "event.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define CHAIN_HAVE_X86 1
#endif

static const char s_key[] = ",\"chain\":\"";
#define CHAIN_KEY_PREFIX_BYTES (sizeof s_key - 1)
//  The key and its closing "} after the 64 digits.
#define CHAIN_SUFFIX_BYTES (CHAIN_KEY_PREFIX_BYTES + CHAIN_HEX_BYTES + 2)
_Static_assert (CHAIN_SUFFIX_BYTES == CHAIN_KEY_BYTES + 1, "the key replaces no byte");
#define CHAIN_KEY_FILE_BYTES_MAX 256 // 64 hex digits and some whitespace

//  --- SHA-256 ------------------------------------------------------------

#ifdef CHAIN_HAVE_X86
static const uint32_t s_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

//  The compression function over blocks of 64 bytes (the SHA-NI recipe:
//  state as ABEF/CDGH, four rounds per step, the schedule four words at a time).
__attribute__ ((target ("sha,sse4.1,ssse3"))) static void
s_blocks_ni (uint32_t state[8], const uint8_t *data, size_t blocks)
{
    const __m128i swap = _mm_set_epi64x (0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128 ((const __m128i *)&state[0]);
    __m128i state1 = _mm_loadu_si128 ((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32 (tmp, 0xB1);               // CDAB
    state1 = _mm_shuffle_epi32 (state1, 0x1B);         // EFGH
    __m128i state0 = _mm_alignr_epi8 (tmp, state1, 8); // ABEF
    state1 = _mm_blend_epi16 (state1, tmp, 0xF0);      // CDGH
    while (blocks--) {
        __m128i abef = state0, cdgh = state1, w[4];
        //  Unrolled whole, w[] lives in registers (a loop keeps it in memory).
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            if (i < 4)
                w[i] = _mm_shuffle_epi8 (
                    _mm_loadu_si128 ((const __m128i *)(data + 16 * i)), swap);
            else
                w[i % 4] = _mm_sha256msg2_epu32 (
                    _mm_add_epi32 (_mm_sha256msg1_epu32 (w[i % 4], w[(i + 1) % 4]),
                                   _mm_alignr_epi8 (w[(i + 3) % 4], w[(i + 2) % 4], 4)),
                    w[(i + 3) % 4]);
            __m128i msg =
                _mm_add_epi32 (w[i % 4], _mm_loadu_si128 ((const __m128i *)&s_k[4 * i]));
            state1 = _mm_sha256rnds2_epu32 (state1, state0, msg);
            msg = _mm_shuffle_epi32 (msg, 0x0E);
            state0 = _mm_sha256rnds2_epu32 (state0, state1, msg);
        }
        state0 = _mm_add_epi32 (state0, abef);
        state1 = _mm_add_epi32 (state1, cdgh);
        data += 64;
    }
    tmp = _mm_shuffle_epi32 (state0, 0x1B);       // FEBA
    state1 = _mm_shuffle_epi32 (state1, 0xB1);    // DCHG
    state0 = _mm_blend_epi16 (tmp, state1, 0xF0); // DCBA
    state1 = _mm_alignr_epi8 (state1, tmp, 8);    // HGFE
    _mm_storeu_si128 ((__m128i *)&state[0], state0);
    _mm_storeu_si128 ((__m128i *)&state[4], state1);
}

static bool s_cpu_has_sha (void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count (7, 0, &a, &b, &c, &d))
        return false;
    bool sha = b & (1u << 29);
    if (!__get_cpuid (1, &a, &b, &c, &d))
        return false;
    return sha && (c & bit_SSE4_1) && (c & bit_SSSE3);
}
#endif

static int s_hardware = -1; // unknown until first asked

bool chain_hardware (void)
{
    if (s_hardware < 0) {
#ifdef CHAIN_HAVE_X86
        s_hardware = s_cpu_has_sha ();
#else
        s_hardware = 0;
#endif
    }
    return s_hardware == 1;
}

typedef struct {
    uint32_t state[8];
    uint8_t block[64];
    size_t used;
    uint64_t total;
    crypto_hash_sha256_state sodium; // the fallback's
} sha_t;

static void s_sha_init (sha_t *sha)
{
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    if (!chain_hardware ()) {
        crypto_hash_sha256_init (&sha->sodium);
        return;
    }
    memcpy (sha->state, initial, sizeof initial);
    sha->used = 0;
    sha->total = 0;
}

static void s_sha_update (sha_t *sha, const void *bytes_in, size_t bytes)
{
    const uint8_t *data = (const uint8_t *)bytes_in;
#ifdef CHAIN_HAVE_X86
    if (chain_hardware ()) {
        sha->total += bytes;
        if (sha->used) {
            size_t take = 64 - sha->used < bytes ? 64 - sha->used : bytes;
            memcpy (sha->block + sha->used, data, take);
            sha->used += take;
            data += take;
            bytes -= take;
            if (sha->used < 64)
                return;
            s_blocks_ni (sha->state, sha->block, 1);
            sha->used = 0;
        }
        if (bytes >= 64) {
            s_blocks_ni (sha->state, data, bytes / 64);
            data += bytes / 64 * 64;
            bytes %= 64;
        }
        memcpy (sha->block, data, bytes);
        sha->used = bytes;
        return;
    }
#endif
    crypto_hash_sha256_update (&sha->sodium, data, bytes);
}

static void s_sha_final (sha_t *sha, uint8_t digest[CHAIN_BYTES])
{
#ifdef CHAIN_HAVE_X86
    if (chain_hardware ()) {
        uint64_t bits = sha->total * 8;
        sha->block[sha->used++] = 0x80;
        if (sha->used > 56) {
            memset (sha->block + sha->used, 0, 64 - sha->used);
            s_blocks_ni (sha->state, sha->block, 1);
            sha->used = 0;
        }
        memset (sha->block + sha->used, 0, 56 - sha->used);
        for (int i = 0; i < 8; i++)
            sha->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
        s_blocks_ni (sha->state, sha->block, 1);
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 4; j++)
                digest[4 * i + j] = (uint8_t)(sha->state[i] >> (24 - 8 * j));
        return;
    }
#endif
    crypto_hash_sha256_final (&sha->sodium, digest);
}

void chain_sha256 (const void *data, size_t bytes, uint8_t digest[CHAIN_BYTES])
{
    sha_t sha;
    s_sha_init (&sha);
    s_sha_update (&sha, data, bytes);
    s_sha_final (&sha, digest);
}

//  --- the chain ------------------------------------------------------------

bool chain_split (const char *line, size_t bytes, size_t *body_bytes)
{
    if (bytes < CHAIN_SUFFIX_BYTES + 2 || line[bytes - 1] != '}' ||
        line[bytes - 2] != '"')
        return false;
    //  The digits are not checked here: chain_check compares them with
    //  the computed chain's, so a key that is not one never holds.
    const char *key = line + bytes - CHAIN_SUFFIX_BYTES;
    if (memcmp (key, s_key, CHAIN_KEY_PREFIX_BYTES) != 0)
        return false;
    *body_bytes = bytes - CHAIN_SUFFIX_BYTES;
    return true;
}

int chain_named (const char *line, size_t bytes, uint8_t named[CHAIN_BYTES])
{
    size_t body = 0;
    if (!chain_split (line, bytes, &body))
        return -1;
    return chain_from_hex (line + body + CHAIN_KEY_PREFIX_BYTES, CHAIN_HEX_BYTES, named,
                           CHAIN_BYTES);
}

//  chain(N) over prev and the unchained line: body, then "}" if it was split.
static void s_next (const uint8_t prev[CHAIN_BYTES], const char *body, size_t bytes,
                    bool split, uint8_t next[CHAIN_BYTES])
{
    sha_t sha;
    s_sha_init (&sha);
    s_sha_update (&sha, prev, CHAIN_BYTES);
    s_sha_update (&sha, body, bytes);
    if (split)
        s_sha_update (&sha, "}", 1);
    s_sha_final (&sha, next);
}

void chain_next (const uint8_t prev[CHAIN_BYTES], const char *line, size_t bytes,
                 uint8_t next[CHAIN_BYTES])
{
    size_t body = 0;
    bool split = chain_split (line, bytes, &body);
    s_next (prev, line, split ? body : bytes, split, next);
}

int chain_check (const uint8_t chain[CHAIN_BYTES], const char *line, size_t bytes,
                 uint8_t next[CHAIN_BYTES])
{
    size_t body = 0;
    if (!chain_split (line, bytes, &body)) {
        s_next (chain, line, bytes, false, next);
        return 0;
    }
    s_next (chain, line, body, true, next);
    //  Compared as text: the writer's digits are lowercase, and a table
    //  lookup per byte costs less than decoding the key.
    char hex[CHAIN_HEX_BYTES + 1];
    chain_to_hex (next, hex);
    return memcmp (hex, line + body + CHAIN_KEY_PREFIX_BYTES, CHAIN_HEX_BYTES) == 0 ? 0
                                                                                   : -1;
}

size_t chain_seal (const uint8_t prev[CHAIN_BYTES], char *line, size_t bytes,
                   size_t capacity, uint8_t next[CHAIN_BYTES])
{
    assert (bytes >= 2 && line[bytes - 1] == '}');
    s_next (prev, line, bytes, false, next);
    if (bytes + CHAIN_KEY_BYTES > capacity)
        return 0;
    char *at = line + bytes - 1;
    memcpy (at, s_key, CHAIN_KEY_PREFIX_BYTES);
    chain_to_hex (next, at + CHAIN_KEY_PREFIX_BYTES);
    memcpy (at + CHAIN_KEY_PREFIX_BYTES + CHAIN_HEX_BYTES, "\"}", 2);
    return bytes + CHAIN_KEY_BYTES;
}

void chain_to_hex (const uint8_t chain[CHAIN_BYTES], char hex[CHAIN_HEX_BYTES + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < CHAIN_BYTES; i++) {
        hex[2 * i] = digits[chain[i] >> 4];
        hex[2 * i + 1] = digits[chain[i] & 15];
    }
    hex[CHAIN_HEX_BYTES] = 0;
}

int chain_from_hex (const char *hex, size_t bytes, uint8_t *out, size_t out_bytes)
{
    size_t written = 0;
    if (bytes != out_bytes * 2 ||
        sodium_hex2bin (out, out_bytes, hex, bytes, NULL, &written, NULL) ||
        written != out_bytes)
        return -1;
    return 0;
}

//  --- heads ------------------------------------------------------------

size_t chain_head_text (const chain_head_t *head, char *text)
{
    char ts[EVENT_TS_BYTES + 1], hex[CHAIN_HEX_BYTES + 1];
    event_ts_format (head->ts_ms, ts);
    chain_to_hex (head->chain, hex);
    return (size_t)snprintf (text, CHAIN_HEAD_TEXT_BYTES_MAX, "%" PRId64 " %s %s",
                             head->seq, ts, hex);
}

void chain_head_sign (chain_head_t *head, const uint8_t *secret_key)
{
    assert (head->seq >= 1);
    char text[CHAIN_HEAD_TEXT_BYTES_MAX];
    size_t bytes = chain_head_text (head, text);
    crypto_sign_detached (head->signature, NULL, (const unsigned char *)text, bytes,
                          secret_key);
    crypto_sign_ed25519_sk_to_pk (head->public_key, secret_key);
    head->is_signed = true;
}

int chain_head_verify (const chain_head_t *head, const uint8_t *public_key)
{
    if (!head->is_signed || head->seq < 1)
        return -1;
    if (public_key && memcmp (public_key, head->public_key, CHAIN_PUBLIC_KEY_BYTES))
        return -1;
    char text[CHAIN_HEAD_TEXT_BYTES_MAX];
    size_t bytes = chain_head_text (head, text);
    return crypto_sign_verify_detached (head->signature, (const unsigned char *)text,
                                        bytes, head->public_key) == 0
               ? 0
               : -1;
}

size_t chain_head_format (const chain_head_t *head, char *json, size_t size)
{
    char ts[EVENT_TS_BYTES + 3] = "null", hex[CHAIN_HEX_BYTES + 1];
    if (head->seq > 0) {
        ts[0] = '"';
        event_ts_format (head->ts_ms, ts + 1);
        memcpy (ts + 1 + EVENT_TS_BYTES, "\"", 2);
    }
    chain_to_hex (head->chain, hex);
    int bytes = snprintf (json, size, "{\"seq\":%" PRId64 ",\"ts\":%s,\"chain\":\"%s\"",
                          head->seq, ts, hex);
    if (head->is_signed) {
        char key[CHAIN_PUBLIC_KEY_BYTES * 2 + 1], signature[CHAIN_SIGNATURE_BYTES * 2 + 1];
        sodium_bin2hex (key, sizeof key, head->public_key, CHAIN_PUBLIC_KEY_BYTES);
        sodium_bin2hex (signature, sizeof signature, head->signature,
                        CHAIN_SIGNATURE_BYTES);
        bytes += snprintf (json + bytes, size - (size_t)bytes,
                           ",\"public_key\":\"%s\",\"signature\":\"%s\"", key, signature);
    }
    bytes += snprintf (json + bytes, size - (size_t)bytes, "}");
    return (size_t)bytes;
}

static int s_fail (char *error, size_t error_size, const char *text)
{
    if (error && error_size)
        snprintf (error, error_size, "%s", text);
    return -1;
}

//  A string member of hex digits for out_bytes bytes.
static int s_hex_member (const cJSON *json, const char *key, uint8_t *out,
                         size_t out_bytes)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (json, key);
    if (!cJSON_IsString (item))
        return -1;
    return chain_from_hex (item->valuestring, strlen (item->valuestring), out, out_bytes);
}

int chain_head_parse (const char *json_text, size_t bytes, chain_head_t *head,
                      char *error, size_t error_size)
{
    memset (head, 0, sizeof *head);
    cJSON *json = cJSON_ParseWithLength (json_text, bytes);
    int rc = 0;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive (json, "seq");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive (json, "ts");
    if (!cJSON_IsObject (json))
        rc = s_fail (error, error_size, "a head is a JSON object");
    else if (!cJSON_IsNumber (seq) || seq->valuedouble < 0 ||
             seq->valuedouble > (double)EVENT_SEQ_MAX ||
             seq->valuedouble != (double)(int64_t)seq->valuedouble)
        rc = s_fail (error, error_size, "seq: must be an integer of at least 0");
    else if ((head->seq = (int64_t)seq->valuedouble) > 0 &&
             (!cJSON_IsString (ts) || event_ts_parse (ts->valuestring, &head->ts_ms)))
        rc = s_fail (error, error_size, "ts: must be an RFC 3339 time");
    else if (head->seq == 0 && !cJSON_IsNull (ts))
        rc = s_fail (error, error_size, "ts: must be null at seq 0");
    else if (s_hex_member (json, "chain", head->chain, CHAIN_BYTES))
        rc = s_fail (error, error_size, "chain: must be 64 hex digits");
    else if (cJSON_HasObjectItem (json, "public_key") ||
             cJSON_HasObjectItem (json, "signature")) {
        if (s_hex_member (json, "public_key", head->public_key, CHAIN_PUBLIC_KEY_BYTES))
            rc = s_fail (error, error_size, "public_key: must be 64 hex digits");
        else if (s_hex_member (json, "signature", head->signature,
                               CHAIN_SIGNATURE_BYTES))
            rc = s_fail (error, error_size, "signature: must be 128 hex digits");
        else
            head->is_signed = true;
    }
    cJSON_Delete (json);
    return rc;
}

int chain_key_load (const char *path, uint8_t *secret_key, uint8_t *public_key,
                    char *error, size_t error_size)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        if (error)
            snprintf (error, error_size, "open(\"%s\") failed: %s", path,
                      strerror (errno));
        return -1;
    }
    char text[CHAIN_KEY_FILE_BYTES_MAX + 1];
    size_t bytes = fread (text, 1, CHAIN_KEY_FILE_BYTES_MAX, file);
    fclose (file);
    while (bytes > 0 && (text[bytes - 1] == '\n' || text[bytes - 1] == '\r' ||
                         text[bytes - 1] == ' ' || text[bytes - 1] == '\t'))
        bytes--;
    uint8_t seed[CHAIN_SEED_BYTES];
    int rc = 0;
    if (sodium_init () < 0)
        rc = s_fail (error, error_size, "sodium_init failed");
    else if (chain_from_hex (text, bytes, seed, sizeof seed)) {
        if (error)
            snprintf (error, error_size,
                      "%s: not an Ed25519 seed (32 bytes as 64 hex digits)", path);
        rc = -1;
    } else
        crypto_sign_seed_keypair (public_key, secret_key, seed);
    sodium_memzero (seed, sizeof seed);
    sodium_memzero (text, sizeof text);
    return rc;
}
