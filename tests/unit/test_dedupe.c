/*  test_dedupe — the idempotency window against a model.

    The model is the plain list of ids by seq; the window must answer
    exactly the seqs the model says are remembered, through random bursts
    that are settled or undone, with a table small enough that probe runs
    wrap and entries move on deletion.
*/
#include "dedupe.h"

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_WINDOW   50
#define TEST_SLACK    20
#define TEST_STEPS    20000
#define TEST_ID_BYTES 32
#define TEST_SEQS_MAX (TEST_STEPS * TEST_SLACK + 1)

static char (*s_ids)[TEST_ID_BYTES]; // s_ids[seq]: the model log
static unsigned s_confirms;
static bool s_confirm_refuses; // plays a 64-bit hash collision: same hash, other id

static bool s_confirm (void *arg, int64_t seq, const char *id)
{
    s_confirms++;
    if (s_confirm_refuses)
        return false;
    return strcmp (s_ids[seq], id) == 0;
}

//  The seq the model remembers for id in [oldest, last], or 0.
static int64_t s_model_find (int64_t oldest, int64_t last, const char *id)
{
    for (int64_t seq = oldest; seq <= last; seq++)
        if (strcmp (s_ids[seq], id) == 0)
            return seq;
    return 0;
}

static void s_check_all (dedupe_t *dedupe, int64_t settled, int64_t last)
{
    int64_t oldest = settled - TEST_WINDOW + 1 > 1 ? settled - TEST_WINDOW + 1 : 1;
    //  Every id ever written (recent ones and evicted ones) answers as the model does.
    int64_t from = last > 3 * TEST_WINDOW ? last - 3 * TEST_WINDOW : 1;
    for (int64_t seq = from; seq <= last; seq++) {
        int64_t expected = s_model_find (oldest, last, s_ids[seq]);
        CHECK_EQ_INT (dedupe_find (dedupe, s_ids[seq]), expected);
    }
    CHECK_EQ_INT (dedupe_find (dedupe, "never-added"), 0);
}

static void test_window_matches_model_through_undo_and_settle (void)
{
    s_ids = calloc (TEST_SEQS_MAX + 1, TEST_ID_BYTES);
    CHECK (s_ids);
    dedupe_t *dedupe = dedupe_new (TEST_WINDOW, TEST_SLACK, s_confirm, NULL);
    CHECK (dedupe);
    srand (42);
    int64_t settled = 0, last = 0, fresh = 0;
    for (int step = 0; step < TEST_STEPS; step++) {
        int64_t oldest = settled - TEST_WINDOW + 1 > 1 ? settled - TEST_WINDOW + 1 : 1;
        int burst = 1 + rand () % TEST_SLACK;
        for (int i = 0; i < burst; i++) {
            //  Sometimes reuse an id that has left the window: it is new again.
            int64_t old = last > 2 * TEST_WINDOW ? 1 + rand () % (last - TEST_WINDOW) : 0;
            char id[TEST_ID_BYTES];
            if (old && rand () % 4 == 0 && !s_model_find (oldest, last, s_ids[old]))
                snprintf (id, sizeof id, "%s", s_ids[old]);
            else
                snprintf (id, sizeof id, "id-%lld", (long long)++fresh);
            last++;
            snprintf (s_ids[last], TEST_ID_BYTES, "%s", id);
            dedupe_add (dedupe, id, last);
        }
        s_check_all (dedupe, settled, last);
        if (check_failures)
            break; // the first step that differs is the one to read
        if (rand () % 3 == 0) {
            dedupe_undo (dedupe);
            last = settled;
        } else {
            dedupe_settle (dedupe);
            settled = last;
        }
        s_check_all (dedupe, settled, last);
    }
    CHECK (s_confirms > 0);
    dedupe_destroy (&dedupe);
    dedupe_destroy (&dedupe);
    CHECK (dedupe == NULL);
    free (s_ids);
}

static void test_hash_hit_is_not_a_duplicate_until_the_log_confirms_it (void)
{
    s_ids = calloc (4, TEST_ID_BYTES);
    CHECK (s_ids);
    dedupe_t *dedupe = dedupe_new (TEST_WINDOW, TEST_SLACK, s_confirm, NULL);
    CHECK (dedupe);
    snprintf (s_ids[1], TEST_ID_BYTES, "alpha");
    dedupe_add (dedupe, "alpha", 1);
    dedupe_settle (dedupe);
    CHECK_EQ_INT (dedupe_find (dedupe, "alpha"), 1);
    unsigned confirms = s_confirms;
    s_confirm_refuses = true;
    CHECK_EQ_INT (dedupe_find (dedupe, "alpha"), 0);
    CHECK_EQ_INT (s_confirms, confirms + 1);
    s_confirm_refuses = false;
    dedupe_destroy (&dedupe);
    free (s_ids);
}

//  Rebuilding from a log: each add says which seq already holds its id
//  within the window, through the same confirmation as a find.
static void test_checked_add_names_the_seq_already_holding_the_id (void)
{
    s_ids = calloc (TEST_WINDOW + 10, TEST_ID_BYTES);
    CHECK (s_ids);
    dedupe_t *dedupe = dedupe_new (TEST_WINDOW, TEST_SLACK, s_confirm, NULL);
    CHECK (dedupe);
    const char *ids[] = {"alpha", "beta", "gamma"};
    for (int64_t seq = 1; seq <= 3; seq++) {
        snprintf (s_ids[seq], TEST_ID_BYTES, "%s", ids[seq - 1]);
        CHECK_EQ_INT (dedupe_add_checked (dedupe, ids[seq - 1], seq), 0);
        dedupe_settle (dedupe);
    }
    snprintf (s_ids[4], TEST_ID_BYTES, "beta");
    CHECK_EQ_INT (dedupe_add_checked (dedupe, "beta", 4), 2);
    dedupe_settle (dedupe);
    s_confirm_refuses = true; // a 64-bit collision is not a repeat
    snprintf (s_ids[5], TEST_ID_BYTES, "gamma");
    CHECK_EQ_INT (dedupe_add_checked (dedupe, "gamma", 5), 0);
    s_confirm_refuses = false;
    dedupe_settle (dedupe);
    int64_t seq = 6;
    for (; seq < TEST_WINDOW + 5; seq++) {
        snprintf (s_ids[seq], TEST_ID_BYTES, "fresh-%lld", (long long)seq);
        CHECK_EQ_INT (dedupe_add_checked (dedupe, s_ids[seq], seq), 0);
        dedupe_settle (dedupe);
    }
    snprintf (s_ids[seq], TEST_ID_BYTES, "alpha"); // seq 1 left the window
    CHECK_EQ_INT (dedupe_add_checked (dedupe, "alpha", seq), 0);
    dedupe_destroy (&dedupe);
    free (s_ids);
}

typedef struct {
    uint8_t data[4096];
    size_t used;
} test_buffer_t;

static int s_buffer_write (void *writer, const void *data, size_t bytes)
{
    test_buffer_t *buffer = writer;
    if (bytes > sizeof buffer->data - buffer->used)
        return -1;
    memcpy (buffer->data + buffer->used, data, bytes);
    buffer->used += bytes;
    return 0;
}

//  A saved window, loaded into a new one (smaller too), answers as the
//  one saved; a cut or disordered save is refused.
static void test_a_saved_window_loads_and_answers_the_same (void)
{
    s_ids = calloc (3 * TEST_WINDOW, TEST_ID_BYTES);
    CHECK (s_ids);
    dedupe_t *dedupe = dedupe_new (TEST_WINDOW, TEST_SLACK, s_confirm, NULL);
    CHECK (dedupe);
    int64_t last = 2 * TEST_WINDOW + 7; // the ring has wrapped
    for (int64_t seq = 1; seq <= last; seq++) {
        snprintf (s_ids[seq], TEST_ID_BYTES, "id-%lld", (long long)(seq % 70));
        dedupe_add (dedupe, s_ids[seq], seq);
        dedupe_settle (dedupe);
    }
    static test_buffer_t buffer;
    buffer.used = 0;
    CHECK (dedupe_save (dedupe, s_buffer_write, &buffer) == 0);
    CHECK_EQ_INT (buffer.used, 16 + 8 * TEST_WINDOW);
    dedupe_t *loaded = dedupe_new (TEST_WINDOW, TEST_SLACK, s_confirm, NULL);
    dedupe_t *smaller = dedupe_new (TEST_WINDOW / 2, TEST_SLACK, s_confirm, NULL);
    CHECK (loaded && smaller);
    const uint8_t *data = buffer.data;
    size_t left = buffer.used;
    CHECK (dedupe_load (loaded, &data, &left) == 0);
    CHECK_EQ_INT (left, 0);
    data = buffer.data, left = buffer.used;
    CHECK (dedupe_load (smaller, &data, &left) == 0);
    for (int64_t seq = 1; seq <= last; seq++) {
        CHECK_EQ_INT (dedupe_find (loaded, s_ids[seq]), dedupe_find (dedupe, s_ids[seq]));
        int64_t expected = s_model_find (last - TEST_WINDOW / 2 + 1, last, s_ids[seq]);
        CHECK_EQ_INT (dedupe_find (smaller, s_ids[seq]), expected);
    }
    //  Adds go on from the saved last seq.
    snprintf (s_ids[last + 1], TEST_ID_BYTES, "after");
    dedupe_add (loaded, "after", last + 1);
    dedupe_settle (loaded);
    CHECK_EQ_INT (dedupe_find (loaded, "after"), last + 1);
    dedupe_destroy (&loaded);
    loaded = dedupe_new (TEST_WINDOW, TEST_SLACK, s_confirm, NULL);
    data = buffer.data, left = buffer.used - 1;
    CHECK (dedupe_load (loaded, &data, &left) == -1);
    int64_t backwards[2] = {10, 5};
    memcpy (buffer.data, backwards, sizeof backwards);
    dedupe_destroy (&loaded);
    loaded = dedupe_new (TEST_WINDOW, TEST_SLACK, s_confirm, NULL);
    data = buffer.data, left = buffer.used;
    CHECK (dedupe_load (loaded, &data, &left) == -1);
    dedupe_destroy (&loaded);
    dedupe_destroy (&smaller);
    dedupe_destroy (&dedupe);
    free (s_ids);
}

int main (void)
{
    RUN (test_a_saved_window_loads_and_answers_the_same);
    RUN (test_checked_add_names_the_seq_already_holding_the_id);
    RUN (test_hash_hit_is_not_a_duplicate_until_the_log_confirms_it);
    RUN (test_window_matches_model_through_undo_and_settle);
    return check_exit_status ();
}
