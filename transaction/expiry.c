/*  expiry — appends transfer_expired for holds whose timeout_at passed.

    Every instance looks for due holds in its write model on a timer and
    sends one request per hold, with no HTTP client, through the same
    planning, APPEND and retries as a client's: the event's id is
    "<pending id>.expired" and it expects from's version, so when several
    instances expire one hold, or one posts it while another expires it,
    the stream keeps exactly one resolution (a second expiry is a
    duplicate of the first, anything else conflicts and is refused when
    retried against the hold's new state). A hold whose expiry did not
    land (stream down, conflicts beyond the retries) is due again at
    once. After a restart the write model folds the holds again, so what
    fell due meanwhile is expired then; while this instance is down, the
    others do it.
*/
#include "expiry.h"

#include "log.h"
#include "plan.h"
#include "status.h"

//  One expiry request for hold.
static void s_expire (api_t *self, const write_model_pending_t *hold)
{
    //  This service makes hold ids short enough for ".expired"; another
    //  writer's may not be: such a hold is left pending (and said so).
    size_t bytes = strlen (hold->id);
    if (bytes > COMMANDS_HOLD_ID_BYTES_MAX) {
        log_warn ("hold %s: its id is too long for an expiry id; not expired", hold->id);
        return;
    }
    parsed_t parsed = {calloc (1, sizeof (command_t)), 1, ""};
    assert (parsed.commands);
    command_t *command = parsed.commands;
    command->kind = COMMAND_EXPIRE;
    request_copy (command->pending_id, sizeof command->pending_id, hold->id);
    memcpy (command->id, hold->id, bytes);
    memcpy (command->id + bytes, ".expired", sizeof ".expired");
    zhashx_insert (self->expiring, hold->id, (void *)1);
    request_t *request = request_new (self, NULL, ROUTE_EXPIRE, &parsed, "");
    if (plan_request (request) != 0)
        return; // ended: e.g. resolved meanwhile by a request of this instance
    if (plan_send (request) != 0)
        request_fail (request, 503, "the stream is unreachable", NULL, NULL);
}

static int s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    api_t *self = (api_t *)arg;
    const char *status;
    if (status_not_writable (self, &status) || subscriber_diverged (self->subscriber))
        return 0; // due holds stay in the heap
    int64_t now_ms = zclock_time ();
    const write_model_pending_t *hold;
    //  Bounded per round too: a hold whose request ends at once is due
    //  again at once, and waits for the next round.
    for (int round = 0; round < EXPIRY_INFLIGHT_MAX &&
                        zhashx_size (self->expiring) < EXPIRY_INFLIGHT_MAX &&
                        (hold = write_model_next_due (self->model, now_ms));
         round++)
        if (!zhashx_lookup (self->expiring, hold->id))
            s_expire (self, hold);
    return 0;
}

void expiry_ended (api_t *self, const char *pending_id, bool appended)
{
    zhashx_delete (self->expiring, pending_id);
    if (appended)
        self->expired++;
    else
        write_model_due_again (self->model, pending_id);
}

int expiry_start (api_t *self)
{
    self->expiry_timer_id = -1;
    self->expiring = zhashx_new ();
    if (!self->expiring)
        return -1;
    if (self->config.hold_expiry_ms <= 0)
        return 0;
    self->expiry_timer_id = zloop_timer (self->loop, (size_t)self->config.hold_expiry_ms,
                                         0, s_on_timer, self);
    return self->expiry_timer_id < 0 ? -1 : 0;
}

void expiry_stop (api_t *self)
{
    if (self->expiry_timer_id >= 0)
        zloop_timer_end (self->loop, self->expiry_timer_id);
    self->expiry_timer_id = -1;
    zhashx_destroy (&self->expiring);
}
