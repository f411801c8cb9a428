/*  fuzz_frames — fuzz input as ZeroMQ multi-frame messages, shared by the
    targets that drive the stream's sockets (ingest, replay).

    Format: per message one byte of frame count, then per frame a 2-byte
    big-endian length and that many bytes; a length past the end of the
    input takes what is left. Messages with no frame are dropped.
*/
#ifndef FUZZ_FRAMES_H_INCLUDED
#define FUZZ_FRAMES_H_INCLUDED

#include <czmq.h>

#include "fuzz_common.h"

#define FUZZ_FRAMES_MESSAGES_MAX 64  // per input
#define FUZZ_FRAMES_PER_MESSAGE  256 // what one count byte can say

typedef struct {
    const uint8_t *frames[FUZZ_FRAMES_PER_MESSAGE];
    size_t frame_bytes[FUZZ_FRAMES_PER_MESSAGE];
    size_t frame_count;
} message_t;

//  Splits the input into messages (frames point into data); returns how many.
static inline size_t fuzz_frames_decode (const uint8_t *data, size_t size,
                                         message_t *messages)
{
    size_t count = 0, offset = 0;
    while (offset < size && count < FUZZ_FRAMES_MESSAGES_MAX) {
        message_t *message = &messages[count];
        size_t frames = data[offset++];
        message->frame_count = 0;
        for (size_t index = 0; index < frames && offset < size; index++) {
            size_t bytes = data[offset];
            if (offset + 1 < size)
                bytes = bytes << 8 | data[offset + 1];
            offset += 2;
            if (offset > size || bytes > size - offset)
                bytes = offset > size ? 0 : size - offset;
            message->frames[index] = data + (offset > size ? size : offset);
            message->frame_bytes[index] = bytes;
            message->frame_count++;
            offset += bytes;
        }
        if (message->frame_count > 0)
            count++;
    }
    return count;
}

//  Sends one message, frame by frame, on a libzmq socket.
static inline void fuzz_frames_send (void *socket, const message_t *message)
{
    for (size_t index = 0; index < message->frame_count; index++) {
        bool more = index + 1 < message->frame_count;
        int rc = zmq_send (socket, message->frames[index], message->frame_bytes[index],
                           more ? ZMQ_SNDMORE : 0);
        fuzz_check (rc >= 0, "zmq_send: %s", zmq_strerror (errno));
    }
}

#define FUZZ_FRAMES_WAIT_MS 5000 // for a message that must come; only a failure waits
#define FUZZ_FRAMES_POLL_MS 10

//  The next message on reader, calling serve (arg) (the code under test,
//  which shares this thread) while none is there. what names the message
//  in the failure when none comes.
static inline zmsg_t *fuzz_frames_next (zsock_t *reader, void (*serve) (void *),
                                        void *arg, const char *what)
{
    int64_t deadline = zclock_mono () + FUZZ_FRAMES_WAIT_MS;
    while (!(zsock_events (reader) & ZMQ_POLLIN)) {
        fuzz_check (zclock_mono () < deadline, "%s never came", what);
        serve (arg);
        if (!(zsock_events (reader) & ZMQ_POLLIN)) {
            zpoller_t *poller = zpoller_new (reader, NULL);
            zpoller_wait (poller, FUZZ_FRAMES_POLL_MS);
            zpoller_destroy (&poller);
        }
    }
    zmsg_t *msg = zmsg_recv (reader);
    fuzz_check (msg, "zmsg_recv");
    return msg;
}

#endif
