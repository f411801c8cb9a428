/*  check — the unit tests' runner, small enough to read whole.

    A test is a function named for its claim. CHECK records a failed
    condition (file, line, the condition's text) and leaves the test:
    `return` by default; a test file whose tests clean up defines
    CHECK_ON_FAILURE (e.g. `goto cleanup`) before including this header.
    RUN prints "ok" or "FAIL" per claim; check_exit_status() is main's
    return value.
*/
#ifndef CHECK_H_INCLUDED
#define CHECK_H_INCLUDED

#include <stdio.h>

#ifndef CHECK_ON_FAILURE
#define CHECK_ON_FAILURE return
#endif

static int check_failures;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf (stderr, "    %s:%d: check failed: %s\n", __FILE__, __LINE__,        \
                     #cond);                                                             \
            check_failures++;                                                            \
            CHECK_ON_FAILURE;                                                            \
        }                                                                                \
    } while (0)

//  Runs `call` as the claim `name`.
#define CHECK_RUN(name, call)                                                            \
    do {                                                                                 \
        int failures_before = check_failures;                                            \
        call;                                                                            \
        printf ("%s %s\n", check_failures == failures_before ? "ok  " : "FAIL", #name);  \
        fflush (stdout);                                                                 \
    } while (0)

#define RUN(test) CHECK_RUN (test, test ())

static inline int check_exit_status (void)
{
    if (check_failures)
        printf ("%d check(s) failed\n", check_failures);
    return check_failures ? 1 : 0;
}

#endif
