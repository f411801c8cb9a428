/*  test_auth — claims about the auth file, token lookup and reloads. */
#include "auth.h"
#include "check.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

//  SHA-256 of token in hex (65 bytes with the NUL).
static void s_hash_hex (const char *token, char *hex)
{
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *)token, strlen (token));
    sodium_bin2hex (hex, 65, hash, sizeof hash);
}

//  A file of lines "NAME SCOPES ACCOUNTS TOKEN" with TOKEN replaced by its hash.
static char *s_file_text (const char *const lines[][4], size_t count)
{
    static char text[4096];
    size_t used = 0;
    for (size_t index = 0; index < count; index++) {
        char hex[65];
        s_hash_hex (lines[index][3], hex);
        used += (size_t)snprintf (text + used, sizeof text - used, "%s %s %s %s\n",
                                  lines[index][0], lines[index][1], lines[index][2], hex);
    }
    return text;
}

static char s_path[64];

static void s_write (const char *text)
{
    FILE *file = fopen (s_path, "w");
    fputs (text, file);
    fclose (file);
}

static const char *const s_lines[][4] = {
    {"teller", "write", "team-a:*", "tok-teller"},
    {"auditor", "read,metrics", "*", "tok-auditor"},
    {"ops", "admin", "alice", "tok-ops"},
};

static void test_a_valid_file_is_read_and_tokens_name_their_principal (void)
{
    s_write (s_file_text (s_lines, 3));
    char error[256] = "";
    auth_t *auth = auth_new (s_path, error, sizeof error);
    CHECK (auth);
    CHECK (auth_count (auth) == 3);
    const auth_principal_t *teller = auth_lookup (auth, "tok-teller", 10);
    CHECK (teller && strcmp (teller->name, "teller") == 0);
    CHECK (auth_principal_allows (teller, AUTH_SCOPE_WRITE));
    CHECK (!auth_principal_allows (teller, AUTH_SCOPE_READ));
    CHECK (!auth_principal_allows (teller, AUTH_SCOPE_METRICS));
    CHECK (auth_principal_allows (teller, AUTH_SCOPE_OPEN));
    const auth_principal_t *auditor = auth_lookup (auth, "tok-auditor", 11);
    CHECK (auditor && auth_principal_allows (auditor, AUTH_SCOPE_METRICS));
    CHECK (!auth_principal_allows (auditor, AUTH_SCOPE_WRITE));
    const auth_principal_t *ops = auth_lookup (auth, "tok-ops", 7);
    CHECK (ops && auth_principal_allows (ops, AUTH_SCOPE_WRITE) &&
           auth_principal_allows (ops, AUTH_SCOPE_READ) &&
           auth_principal_allows (ops, AUTH_SCOPE_METRICS));
    CHECK (!auth_lookup (auth, "tok-nobody", 10));
    CHECK (!auth_lookup (auth, "tok-telle", 9));
    CHECK (!auth_lookup (auth, "", 0));
    auth_destroy (&auth);
    CHECK (!auth);
}

static void test_account_patterns_match_star_prefix_and_exact (void)
{
    auth_principal_t all = {.accounts = ""};
    CHECK (auth_principal_allows_account (&all, "anything"));
    CHECK (auth_principal_sees_all (&all));
    auth_principal_t prefix = {.accounts = "team-a:", .is_prefix = true};
    CHECK (auth_principal_allows_account (&prefix, "team-a:x"));
    CHECK (auth_principal_allows_account (&prefix, "team-a:"));
    CHECK (!auth_principal_allows_account (&prefix, "team-a"));
    CHECK (!auth_principal_allows_account (&prefix, "team-b:x"));
    CHECK (!auth_principal_sees_all (&prefix));
    auth_principal_t exact = {.accounts = "alice"};
    CHECK (auth_principal_allows_account (&exact, "alice"));
    CHECK (!auth_principal_allows_account (&exact, "alice2"));
    CHECK (!auth_principal_allows_account (&exact, "alic"));
    CHECK (auth_principal_allows_account (NULL, "anyone"));
    CHECK (auth_principal_sees_all (NULL));
}

static void test_comments_blank_lines_and_crlf_are_accepted (void)
{
    char hex[65];
    s_hash_hex ("t1", hex);
    char text[512];
    snprintf (text, sizeof text,
              "# principals\n\n   \n  # indented comment\r\nbot  write\t* %s\r\n", hex);
    s_write (text);
    char error[256] = "";
    auth_t *auth = auth_new (s_path, error, sizeof error);
    CHECK (auth && auth_count (auth) == 1);
    CHECK (auth && auth_lookup (auth, "t1", 2));
    auth_destroy (&auth);
}

//  Each bad line, as line 2 after a good one, refuses the whole file
//  naming line 2 and the fault.
static void test_any_bad_line_refuses_the_file_naming_it (void)
{
    char hex[65], other[65];
    s_hash_hex ("good", hex);
    s_hash_hex ("other", other);
    struct {
        const char *line;
        const char *reason;
    } cases[] = {
        {"Bot write * %s", "name"},          {"9bot write * %s", "name"},
        {"bot wrte * %s", "scopes"},         {"bot write, * %s", "scopes"},
        {"bot ,write * %s", "scopes"},       {"bot write al*ce %s", "accounts"},
        {"bot write -x* %s", "accounts"},    {"bot write * abc", "sha256"},
        {"bot write * %.63s", "sha256"},     {"bot write * %.63sg", "sha256"},
        {"bot write *", "4 fields"},         {"bot write * %s extra", "4 fields"},
        {"good read * %s", "already given"},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        char line[256], text[512];
        snprintf (line, sizeof line, cases[index].line, other);
        snprintf (text, sizeof text, "good write * %s\n%s\n", hex, line);
        s_write (text);
        char error[256] = "";
        auth_t *auth = auth_new (s_path, error, sizeof error);
        CHECK (!auth);
        CHECK (strncmp (error, "line 2: ", 8) == 0);
        CHECK (strstr (error, cases[index].reason));
        if (auth || !strstr (error, cases[index].reason))
            fprintf (stderr, "    case %zu: %s\n", index, error);
        auth_destroy (&auth);
    }
    //  Two principals with one token are refused too.
    char text[512];
    snprintf (text, sizeof text, "a write * %s\nb read * %s\n", hex, hex);
    s_write (text);
    char error[256] = "";
    auth_t *auth = auth_new (s_path, error, sizeof error);
    CHECK (!auth && strstr (error, "line 2: sha256"));
    auth_destroy (&auth);
}

static void test_a_missing_file_is_refused (void)
{
    char error[256] = "";
    auth_t *auth = auth_new ("/nonexistent/auth-file", error, sizeof error);
    CHECK (!auth);
    CHECK (strstr (error, "cannot open"));
}

static void test_reload_replaces_the_table_and_a_bad_file_keeps_the_old (void)
{
    s_write (s_file_text (s_lines, 3));
    char error[256] = "";
    auth_t *auth = auth_new (s_path, error, sizeof error);
    CHECK (auth);
    //  Revoke teller: reload a file without it.
    s_write (s_file_text (s_lines + 1, 2));
    CHECK (auth_reload (auth, error, sizeof error) == 0);
    CHECK (auth_count (auth) == 2);
    CHECK (!auth_lookup (auth, "tok-teller", 10));
    CHECK (auth_lookup (auth, "tok-auditor", 11));
    //  A file that does not parse: the table in use stays.
    s_write ("broken line\n");
    CHECK (auth_reload (auth, error, sizeof error) == -1);
    CHECK (strstr (error, "line 1"));
    CHECK (auth_count (auth) == 2);
    CHECK (auth_lookup (auth, "tok-auditor", 11));
    //  And from text, as the reload does it.
    const char *text = s_file_text (s_lines, 1);
    CHECK (auth_load_text (auth, text, strlen (text), error, sizeof error) == 0);
    CHECK (auth_count (auth) == 1 && auth_lookup (auth, "tok-teller", 10));
    CHECK (auth_load_text (auth, "x y z\n", 6, error, sizeof error) == -1);
    CHECK (auth_count (auth) == 1 && auth_lookup (auth, "tok-teller", 10));
    auth_destroy (&auth);
}

//  An empty file is a valid table with nobody in it: every token is unknown.
static void test_an_empty_file_knows_nobody (void)
{
    s_write ("# nobody yet\n");
    char error[256] = "";
    auth_t *auth = auth_new (s_path, error, sizeof error);
    CHECK (auth && auth_count (auth) == 0);
    CHECK (auth && !auth_lookup (auth, "tok-ops", 7));
    auth_destroy (&auth);
}

//  Every token of a large table names its own principal through the
//  index; tokens of nobody name nobody, also after a reload.
static void test_a_large_table_finds_each_token_and_no_other (void)
{
    enum { COUNT = 3000 };
    static char text[COUNT * 100];
    size_t used = 0;
    for (int index = 0; index < COUNT; index++) {
        char token[32], hex[65];
        snprintf (token, sizeof token, "token-%d", index);
        s_hash_hex (token, hex);
        used += (size_t)snprintf (text + used, sizeof text - used, "p%d read * %s\n",
                                  index, hex);
    }
    s_write (text);
    char error[256] = "";
    auth_t *auth = auth_new (s_path, error, sizeof error);
    CHECK (auth && auth_count (auth) == COUNT);
    if (!auth)
        return;
    for (int round = 0; round < 2; round++) {
        for (int index = 0; index < COUNT; index++) {
            char token[32], name[16];
            snprintf (token, sizeof token, "token-%d", index);
            snprintf (name, sizeof name, "p%d", index);
            const auth_principal_t *principal = auth_lookup (auth, token, strlen (token));
            CHECK (principal && strcmp (principal->name, name) == 0);
            snprintf (token, sizeof token, "token-%d", COUNT + index);
            CHECK (!auth_lookup (auth, token, strlen (token)));
        }
        CHECK (auth_reload (auth, error, sizeof error) == 0);
    }
    auth_destroy (&auth);
}

int main (void)
{
    snprintf (s_path, sizeof s_path, "test_auth.%d.txt", (int)getpid ());
    RUN (test_a_valid_file_is_read_and_tokens_name_their_principal);
    RUN (test_account_patterns_match_star_prefix_and_exact);
    RUN (test_comments_blank_lines_and_crlf_are_accepted);
    RUN (test_any_bad_line_refuses_the_file_naming_it);
    RUN (test_a_missing_file_is_refused);
    RUN (test_reload_replaces_the_table_and_a_bad_file_keeps_the_old);
    RUN (test_an_empty_file_knows_nobody);
    RUN (test_a_large_table_finds_each_token_and_no_other);
    unlink (s_path);
    return check_exit_status ();
}
