/*  check — the unit tests' runner, small enough to read whole.

    A test is a function named for its claim. CHECK records a failed
    condition (file, line, the condition's text) and leaves the test;
    CHECK_EQ_INT and CHECK_EQ_STR do the same for a comparison and print
    both values:
    `return` by default; a test file whose tests clean up defines
    CHECK_ON_FAILURE (e.g. `goto cleanup`) before including this header.
    RUN prints "ok" or "FAIL" per claim; check_exit_status() is main's
    return value. A test program whose argument is --bench runs its
    benchmarks instead (meson test --benchmark): rates are printed, never asserted.
*/
#ifndef CHECK_H_INCLUDED
#define CHECK_H_INCLUDED

#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

//  Integers of any width, compared and printed as intmax_t.
#define CHECK_EQ_INT(actual, expected)                                                   \
    do {                                                                                 \
        intmax_t check_actual_ = (intmax_t)(actual);                                     \
        intmax_t check_expected_ = (intmax_t)(expected);                                 \
        if (check_actual_ != check_expected_) {                                          \
            fprintf (stderr, "    %s:%d: check failed: %s == %s: %jd != %jd\n",          \
                     __FILE__, __LINE__, #actual, #expected, check_actual_,              \
                     check_expected_);                                                   \
            check_failures++;                                                            \
            CHECK_ON_FAILURE;                                                            \
        }                                                                                \
    } while (0)

//  NUL-terminated strings; NULL prints as (null) and equals only NULL.
#define CHECK_EQ_STR(actual, expected)                                                   \
    do {                                                                                 \
        const char *check_actual_ = (actual);                                            \
        const char *check_expected_ = (expected);                                        \
        if (check_actual_ != check_expected_ &&                                          \
            (!check_actual_ || !check_expected_ ||                                       \
             strcmp (check_actual_, check_expected_) != 0)) {                            \
            fprintf (stderr, "    %s:%d: check failed: %s == %s: \"%s\" != \"%s\"\n",    \
                     __FILE__, __LINE__, #actual, #expected,                             \
                     check_actual_ ? check_actual_ : "(null)",                           \
                     check_expected_ ? check_expected_ : "(null)");                      \
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

static inline int check_bench_requested (int argc, char **argv)
{
    return argc > 1 && strcmp (argv[1], "--bench") == 0;
}

static inline int check_exit_status (void)
{
    if (check_failures)
        printf ("%d check(s) failed\n", check_failures);
    return check_failures ? 1 : 0;
}

#endif
