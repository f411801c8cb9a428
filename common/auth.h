/*  auth — bearer tokens: the principals of an --auth-file and who a
    presented token is.

    The file has one principal a line, `NAME SCOPES ACCOUNTS SHA256`:
      NAME      ^[a-z][a-z0-9_.-]{0,63}$, unique in the file
      SCOPES    comma-separated from write, read, metrics, admin
      ACCOUNTS  "*", a prefix ending in "*" ("team-a:*"), or one account id
      SHA256    the hex SHA-256 of the token (tokens are never stored)
    '#' starts a comment line; blank lines are skipped. Any bad line
    refuses the whole file, naming the line: a half-read table would lock
    out or let in whoever the bad line was about.

    A lookup hashes the token (libsodium's SHA-256) and finds its digest
    in an open-addressing index over the digests' first bytes, comparing
    each candidate with sodium_memcmp (constant time). The time taken
    depends on the presented token's digest only, never on which line
    matched, and not on the size of the table (a compare with every line
    would be paid by every request).

    auth_watch reloads the file on SIGHUP from the caller's zloop, read
    from a signalfd (no work in a signal handler). A file that no longer
    parses keeps the table in use and logs why. One table per process
    is watched: a SIGHUP is read by one signalfd.
*/
#ifndef AUTH_H_INCLUDED
#define AUTH_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define AUTH_NAME_BYTES_MAX 64 // DESIGN: ^[a-z][a-z0-9_.-]{0,63}$
#define AUTH_HASH_BYTES     32 // SHA-256
//  A lookup compares against every principal: a table of services and
//  operators, not of end users.
#define AUTH_PRINCIPALS_MAX  4096
#define AUTH_FILE_BYTES_MAX  (1024 * 1024)
#define AUTH_TOKEN_BYTES_MAX 512 // longer Authorization values are malformed

//  A route's required scope. OPEN routes (/health, /openapi.json) take no
//  token; UNSET is refused by http_server_new when tokens are on, so a
//  route cannot be left open by forgetting its scope.
typedef enum {
    AUTH_SCOPE_UNSET = 0,
    AUTH_SCOPE_OPEN = 1 << 0,
    AUTH_SCOPE_WRITE = 1 << 1,
    AUTH_SCOPE_READ = 1 << 2,
    AUTH_SCOPE_METRICS = 1 << 3,
    AUTH_SCOPE_ADMIN = 1 << 4, // implies every other scope
} auth_scope_t;

typedef struct {
    char name[AUTH_NAME_BYTES_MAX + 1];
    unsigned scopes; // auth_scope_t bits
    //  "" for "*"; else the id, or the prefix when is_prefix.
    char accounts[EVENT_ACCOUNT_BYTES_MAX + 1];
    bool is_prefix;
    uint8_t hash[AUTH_HASH_BYTES];
} auth_principal_t;

typedef struct auth auth_t;

//  Reads path. Returns NULL with a reason in error ("line 3: scopes:
//  unknown scope 'wrte'") when the file cannot be read or a line is bad.
auth_t *auth_new (const char *path, char *error, size_t error_size);
void auth_destroy (auth_t **self_p);

//  Replaces the table with the one text describes (the file's contents;
//  path names it in errors). Returns 0, or -1 with a reason in error and
//  the table unchanged.
int auth_load_text (auth_t *self, const char *text, size_t bytes, char *error,
                    size_t error_size);

//  Reads the file again (auth_load_text of its contents).
int auth_reload (auth_t *self, char *error, size_t error_size);

//  Principals in the table.
size_t auth_count (auth_t *self);

//  The principal whose hash is SHA-256(token), or NULL. Borrowed until
//  the next reload: copy what must outlive the call.
const auth_principal_t *auth_lookup (auth_t *self, const char *token, size_t bytes);

//  Reloads on every SIGHUP from now on, logging what happened, from
//  loop. Blocks SIGHUP in the calling thread (the loop's). Returns 0 or
//  -1. auth_destroy stops it.
int auth_watch (auth_t *self, zloop_t *loop);

//  SIGHUPs that auth_watch handled (reloads tried) and that failed.
uint64_t auth_reloads (auth_t *self);
uint64_t auth_reload_failures (auth_t *self);

//  True when the principal holds scope (or admin). OPEN needs nothing.
bool auth_principal_allows (const auth_principal_t *self, unsigned scope);

//  True when account id matches the principal's pattern. A NULL principal
//  (tokens off) allows everything.
bool auth_principal_allows_account (const auth_principal_t *self, const char *id);

//  True when the principal sees every account ("*"; or NULL).
bool auth_principal_sees_all (const auth_principal_t *self);

#endif
