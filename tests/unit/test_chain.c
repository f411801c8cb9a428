/*  test_chain — SHA-256 against known vectors and libsodium, the chain's
    key on a line, and signed heads.
*/
#include "chain.h"

#include "check.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_RANDOM_INPUTS    2000
#define TEST_RANDOM_BYTES_MAX 700 // past a block boundary many times over

static void s_hex_of (const uint8_t *bytes, size_t count, char *hex)
{
    sodium_bin2hex (hex, count * 2 + 1, bytes, count);
}

static void test_sha256_gives_the_known_vectors (void)
{
    uint8_t digest[CHAIN_BYTES];
    char hex[CHAIN_HEX_BYTES + 1];
    chain_sha256 ("abc", 3, digest);
    s_hex_of (digest, CHAIN_BYTES, hex);
    CHECK_EQ_STR (hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    chain_sha256 ("", 0, digest);
    s_hex_of (digest, CHAIN_BYTES, hex);
    CHECK_EQ_STR (hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    chain_sha256 (two_blocks, strlen (two_blocks), digest);
    s_hex_of (digest, CHAIN_BYTES, hex);
    CHECK_EQ_STR (hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_matches_libsodium_at_every_length (void)
{
    uint8_t data[TEST_RANDOM_BYTES_MAX];
    srand (7);
    for (int i = 0; i < TEST_RANDOM_INPUTS; i++) {
        size_t bytes = (size_t)i < TEST_RANDOM_BYTES_MAX ? (size_t)i
                                                         : (size_t)rand () % sizeof data;
        for (size_t b = 0; b < bytes; b++)
            data[b] = (uint8_t)rand ();
        uint8_t ours[CHAIN_BYTES], theirs[CHAIN_BYTES];
        chain_sha256 (data, bytes, ours);
        crypto_hash_sha256 (theirs, data, bytes);
        CHECK (memcmp (ours, theirs, CHAIN_BYTES) == 0);
    }
    printf ("    (SHA instructions: %s)\n", chain_hardware () ? "yes" : "no");
}

//  chain(1) of a line from chain(0): SHA-256 of 32 zero bytes then the line.
static void test_chain_of_seq_1_is_sha256_of_zeros_and_the_line (void)
{
    const char *line = "{\"seq\":1,\"id\":\"a\",\"type\":\"deposited\",\"v\":1,"
                       "\"ts\":\"2026-01-01T00:00:00.000Z\",\"account\":\"alice\","
                       "\"amount\":5}";
    uint8_t zero[CHAIN_BYTES] = {0}, next[CHAIN_BYTES], expected[CHAIN_BYTES];
    size_t bytes = strlen (line);
    uint8_t *input = calloc (1, CHAIN_BYTES + bytes);
    CHECK (input);
    memcpy (input + CHAIN_BYTES, line, bytes);
    crypto_hash_sha256 (expected, input, CHAIN_BYTES + bytes);
    free (input);
    chain_next (zero, line, bytes, next);
    CHECK (memcmp (next, expected, CHAIN_BYTES) == 0);
}

static void test_sealed_line_checks_and_chains_as_without_its_key (void)
{
    char line[512];
    const char *plain = "{\"seq\":2,\"id\":\"b\",\"type\":\"withdrawn\",\"v\":1,"
                        "\"ts\":\"2026-01-01T00:00:00.000Z\",\"account\":\"bob\","
                        "\"amount\":17}";
    size_t bytes = strlen (plain);
    memcpy (line, plain, bytes);
    uint8_t prev[CHAIN_BYTES], sealed_chain[CHAIN_BYTES], plain_chain[CHAIN_BYTES],
        checked[CHAIN_BYTES];
    memset (prev, 0x5a, sizeof prev);
    size_t sealed = chain_seal (prev, line, bytes, sizeof line, sealed_chain);
    CHECK_EQ_INT (sealed, bytes + CHAIN_KEY_BYTES);
    line[sealed] = 0;
    char hex[CHAIN_HEX_BYTES + 1];
    chain_to_hex (sealed_chain, hex);
    char expected[600];
    snprintf (expected, sizeof expected, "%.*s,\"chain\":\"%s\"}", (int)bytes - 1, plain,
              hex);
    CHECK_EQ_STR (line, expected);
    size_t body = 0;
    CHECK (chain_split (line, sealed, &body));
    CHECK_EQ_INT (body, bytes - 1);
    chain_next (prev, plain, bytes, plain_chain);
    CHECK (memcmp (plain_chain, sealed_chain, CHAIN_BYTES) == 0);
    CHECK_EQ_INT (chain_check (prev, line, sealed, checked), 0);
    CHECK (memcmp (checked, sealed_chain, CHAIN_BYTES) == 0);
    //  One digit of the amount changed: the key names another chain.
    char *digit = strstr (line, "\"amount\":17") + 9;
    *digit = '8';
    CHECK_EQ_INT (chain_check (prev, line, sealed, checked), -1);
    *digit = '1';
    //  A key that is not hex names no chain.
    char saved = line[sealed - 3];
    line[sealed - 3] = 'g';
    CHECK_EQ_INT (chain_check (prev, line, sealed, checked), -1);
    line[sealed - 3] = saved;
    CHECK_EQ_INT (chain_check (prev, line, sealed, checked), 0);
    //  Another previous chain: the same.
    prev[0] ^= 1;
    CHECK_EQ_INT (chain_check (prev, line, sealed, checked), -1);
    //  A line without the key is chained, never refused.
    CHECK_EQ_INT (chain_check (prev, plain, bytes, checked), 0);
    CHECK (!chain_split (plain, bytes, &body));
}

static void test_seal_without_room_gives_zero (void)
{
    char line[40] = "{\"seq\":1}";
    uint8_t prev[CHAIN_BYTES] = {0}, next[CHAIN_BYTES];
    CHECK_EQ_INT (chain_seal (prev, line, strlen (line), sizeof line, next), 0);
}

static void test_signed_head_verifies_and_another_key_does_not (void)
{
    CHECK (sodium_init () >= 0);
    uint8_t public_key[CHAIN_PUBLIC_KEY_BYTES], secret_key[CHAIN_SECRET_KEY_BYTES];
    uint8_t other_public[CHAIN_PUBLIC_KEY_BYTES], other_secret[CHAIN_SECRET_KEY_BYTES];
    crypto_sign_keypair (public_key, secret_key);
    crypto_sign_keypair (other_public, other_secret);
    chain_head_t head = {.seq = 42, .ts_ms = 1767225600123};
    memset (head.chain, 0xab, sizeof head.chain);
    char text[CHAIN_HEAD_TEXT_BYTES_MAX];
    chain_head_text (&head, text);
    CHECK_EQ_STR (text, "42 2026-01-01T00:00:00.123Z "
                        "abababababababababababababababababababababababababababababababab");
    CHECK_EQ_INT (chain_head_verify (&head, NULL), -1); // unsigned
    chain_head_sign (&head, secret_key);
    CHECK_EQ_INT (chain_head_verify (&head, NULL), 0);
    CHECK_EQ_INT (chain_head_verify (&head, public_key), 0);
    CHECK_EQ_INT (chain_head_verify (&head, other_public), -1);
    char json[CHAIN_HEAD_JSON_BYTES_MAX];
    size_t bytes = chain_head_format (&head, json, sizeof json);
    CHECK (bytes > 0 && bytes < sizeof json);
    chain_head_t parsed;
    char error[128];
    CHECK_EQ_INT (chain_head_parse (json, bytes, &parsed, error, sizeof error), 0);
    CHECK_EQ_INT (parsed.seq, 42);
    CHECK_EQ_INT (parsed.ts_ms, head.ts_ms);
    CHECK (parsed.is_signed);
    CHECK_EQ_INT (chain_head_verify (&parsed, public_key), 0);
    //  Signed by another key, as the other key's own: it holds only under it.
    chain_head_sign (&parsed, other_secret);
    CHECK_EQ_INT (chain_head_verify (&parsed, NULL), 0);
    CHECK_EQ_INT (chain_head_verify (&parsed, public_key), -1);
    //  A changed chain breaks the signature.
    chain_head_sign (&head, secret_key);
    head.chain[3] ^= 1;
    CHECK_EQ_INT (chain_head_verify (&head, public_key), -1);
}

static void test_head_parse_refuses_what_is_not_a_head (void)
{
    chain_head_t head;
    char error[128];
    const char *bad[] = {
        "[]",
        "{\"seq\":-1,\"ts\":null,\"chain\":\"00\"}",
        "{\"seq\":3,\"ts\":\"yesterday\",\"chain\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"seq\":3,\"ts\":\"2026-01-01T00:00:00.000Z\",\"chain\":\"zz\"}",
        "{\"seq\":3,\"ts\":\"2026-01-01T00:00:00.000Z\",\"chain\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"signature\":\"00\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT (chain_head_parse (bad[i], strlen (bad[i]), &head, error, sizeof error),
                      -1);
    const char *empty = "{\"seq\":0,\"ts\":null,\"chain\":"
                        "\"0000000000000000000000000000000000000000000000000000000000000000\"}";
    CHECK_EQ_INT (chain_head_parse (empty, strlen (empty), &head, error, sizeof error), 0);
    char json[CHAIN_HEAD_JSON_BYTES_MAX];
    chain_head_format (&head, json, sizeof json);
    CHECK_EQ_STR (json, empty);
}

int main (void)
{
    RUN (test_sha256_gives_the_known_vectors);
    RUN (test_sha256_matches_libsodium_at_every_length);
    RUN (test_chain_of_seq_1_is_sha256_of_zeros_and_the_line);
    RUN (test_sealed_line_checks_and_chains_as_without_its_key);
    RUN (test_seal_without_room_gives_zero);
    RUN (test_signed_head_verifies_and_another_key_does_not);
    RUN (test_head_parse_refuses_what_is_not_a_head);
    return check_exit_status ();
}
