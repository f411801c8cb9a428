/*  verify — `stream --verify PATH [--head FILE] [--public-key HEX]`: the
    stand-alone verifier of a log's chain (docs/DESIGN.md, "Tamper
    evidence").

    PATH is a stream or accounting data dir (its events/ folder, or an
    earlier version's events.jsonl), a folder of segments, or one log
    file. Every line is read once, in seq order across segments, its
    chain recomputed from chain(0) (a single segment that does not start
    at seq 1 starts from the chain its predecessor's index names) and
    compared with its key where it has one; seqs must run on by one, and
    a sealed segment's index must name the chain and last seq its lines
    end on. FILE is a head as GET /head answers it: the chain at its seq
    must be its chain, and its signature must hold, under --public-key
    when given (else under the head's own key, which proves the log is
    the one that head was taken of, not who took it).

    Exit 0 with the last head ({"seq","ts","chain"}) on stdout; exit 1
    naming the seq, file and byte offset of the first line (or the head)
    that does not hold; exit 2 for bad arguments or a path that cannot
    be read. It serves nothing and writes nothing.
*/
#ifndef VERIFY_H_INCLUDED
#define VERIFY_H_INCLUDED

#include <stdbool.h>
#include <stdio.h>

typedef struct {
    const char *path;
    const char *head_path;  // NULL: no head to check
    const char *public_key; // 64 hex digits; NULL: the head's own key
} verify_config_t;

//  True if argv asks for the verifier (it holds --verify with an operand).
bool verify_wanted (int argc, char *argv[]);

//  Parses argv (--verify PATH, --head FILE, --public-key HEX) and runs the
//  verifier; returns the exit code.
int verify_main (int argc, char *argv[]);

//  Verifies as the header says, reporting on out (the head) and err.
int verify_run (const verify_config_t *config, FILE *out, FILE *err);

#endif
