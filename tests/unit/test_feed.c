/*  test_feed — claims about the live feed's filter, the one predicate a
    subscriber's ?account= and its token's account pattern go through.
    (The feed's streaming is tested over HTTP in
    tests/integration/test_feed.py.)
*/
#include <string.h>

#include "check.h"
#include "feed.h"

static event_t s_event (const char *type, const char *account, const char *from,
                        const char *to)
{
    event_t event;
    event_init (&event);
    snprintf (event.type_name, sizeof event.type_name, "%s", type);
    snprintf (event.account, sizeof event.account, "%s", account);
    snprintf (event.from, sizeof event.from, "%s", from);
    snprintf (event.to, sizeof event.to, "%s", to);
    return event;
}

//  pattern as in an auth file: "*", "prefix*" or one id; "" for no token.
static feed_filter_t s_filter (const char *account, const char *pattern)
{
    feed_filter_t filter;
    memset (&filter, 0, sizeof filter);
    snprintf (filter.account, sizeof filter.account, "%s", account);
    if (!*pattern) {
        feed_filter_set_principal (&filter, NULL);
        return filter;
    }
    auth_principal_t principal;
    memset (&principal, 0, sizeof principal);
    snprintf (principal.name, sizeof principal.name, "reader");
    size_t bytes = strlen (pattern);
    principal.is_prefix = pattern[bytes - 1] == '*';
    snprintf (principal.accounts, sizeof principal.accounts, "%.*s",
              (int)(principal.is_prefix ? bytes - 1 : bytes), pattern);
    feed_filter_set_principal (&filter, &principal);
    return filter;
}

static void test_an_empty_filter_passes_every_event (void)
{
    feed_filter_t filter = s_filter ("", "");
    event_t deposit = s_event ("deposited", "alice", "", "");
    event_t transfer = s_event ("transferred", "", "alice", "bob");
    CHECK (feed_filter_matches (&filter, &deposit));
    CHECK (feed_filter_matches (&filter, &transfer));
}

static void test_an_account_passes_events_that_touch_it_on_either_side (void)
{
    feed_filter_t bob = s_filter ("bob", "");
    event_t to_bob = s_event ("transferred", "", "alice", "bob");
    event_t from_bob = s_event ("transferred", "", "bob", "carol");
    event_t bob_deposit = s_event ("deposited", "bob", "", "");
    event_t other = s_event ("deposited", "bobby", "", "");
    CHECK (feed_filter_matches (&bob, &to_bob));
    CHECK (feed_filter_matches (&bob, &from_bob));
    CHECK (feed_filter_matches (&bob, &bob_deposit));
    CHECK (!feed_filter_matches (&bob, &other)); // a prefix is not the account
}

static void test_a_token_pattern_passes_events_touching_an_account_it_may_see (void)
{
    feed_filter_t alice_star = s_filter ("", "alice*");
    feed_filter_t exact = s_filter ("", "alice");
    feed_filter_t star = s_filter ("", "*");
    event_t alice2 = s_event ("deposited", "alice2", "", "");
    event_t to_alice = s_event ("transferred", "", "bob", "alice:savings");
    event_t bob = s_event ("deposited", "bob", "", "");
    CHECK (feed_filter_matches (&alice_star, &alice2));
    CHECK (feed_filter_matches (&alice_star, &to_alice));
    CHECK (!feed_filter_matches (&alice_star, &bob));
    CHECK (!feed_filter_matches (&exact, &alice2));
    CHECK (feed_filter_matches (&star, &bob));
    //  An event that names no account (an unknown type): only a token
    //  that sees everything sees it.
    event_t unknown = s_event ("renamed", "", "", "");
    CHECK (!feed_filter_matches (&alice_star, &unknown));
    CHECK (feed_filter_matches (&star, &unknown));
}

static void test_account_and_pattern_must_both_hold (void)
{
    feed_filter_t filter = s_filter ("bob", "alice*");
    event_t both = s_event ("transferred", "", "alice", "bob");
    event_t only_bob = s_event ("deposited", "bob", "", "");
    CHECK (feed_filter_matches (&filter, &both));
    CHECK (!feed_filter_matches (&filter, &only_bob));
}

int main (void)
{
    RUN (test_an_empty_filter_passes_every_event);
    RUN (test_an_account_passes_events_that_touch_it_on_either_side);
    RUN (test_a_token_pattern_passes_events_touching_an_account_it_may_see);
    RUN (test_account_and_pattern_must_both_hold);
    return check_exit_status ();
}
