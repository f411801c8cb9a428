/*  http_stream — streamed responses (see http.h): a handler's stream
    that MHD reads from as data comes, suspended while there is none.
*/
#include "http_internal.h"
#include "log.h"

#include <string.h>

//  ---------------------------------------------------------------------
//  Streaming responses
//
//  MHD calls the content reader whenever the socket can take more. When
//  the caller has nothing, the reader suspends the connection (MHD allows
//  that from a content reader whose response is not shared), and
//  http_stream_wake resumes it. Suspended connections do not time out, so
//  idle streams need the caller's own keep-alive; a stream that has data
//  but a client that does not read is subject to MHD's inactivity timeout.

//  MHD's read size hint; the reader is given what fits in the
//  connection's write buffer, which HTTP_CONNECTION_MEMORY_BYTES_MAX bounds.
#define HTTP_STREAM_BLOCK_BYTES 4096

struct http_stream {
    http_server_t *server;
    struct MHD_Connection *connection;
    http_stream_read_fn *reader;
    http_stream_free_fn *free_fn;
    void *arg;
    bool waiting;               // suspended until http_stream_wake
    http_stream_t *prev, *next; // server's streams_waiting list
};

static void s_stream_unlink (http_stream_t *self)
{
    http_server_t *server = self->server;
    if (self->prev)
        self->prev->next = self->next;
    else
        server->streams_waiting = self->next;
    if (self->next)
        self->next->prev = self->prev;
    self->prev = self->next = NULL;
    self->waiting = false;
}

static ssize_t s_stream_read (void *cls, uint64_t position, char *buffer, size_t max)
{
    http_stream_t *self = cls;
    if (self->server->stopping)
        return MHD_CONTENT_READER_END_OF_STREAM;
    ssize_t bytes = self->reader (self->arg, buffer, max);
    if (bytes < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (bytes == 0 && !self->waiting) {
        MHD_suspend_connection (self->connection);
        self->waiting = true;
        self->next = self->server->streams_waiting;
        if (self->next)
            self->next->prev = self;
        self->server->streams_waiting = self;
    }
    return bytes;
}

static void s_stream_free (void *cls)
{
    http_stream_t *self = cls;
    if (self->waiting)
        s_stream_unlink (self); // not expected: MHD frees after a resume
    self->free_fn (self->arg);
    free (self);
}

http_stream_t *http_respond_stream (http_request_t *self, unsigned status,
                                    const char *content_type, http_stream_read_fn *reader,
                                    http_stream_free_fn *free_fn, void *arg)
{
    assert (self);
    assert (reader && free_fn);
    http_stream_t *stream = calloc (1, sizeof *stream);
    struct MHD_Response *response =
        stream ? MHD_create_response_from_callback (MHD_SIZE_UNKNOWN,
                                                    HTTP_STREAM_BLOCK_BYTES,
                                                    s_stream_read, stream, s_stream_free)
               : NULL;
    if (!response) {
        free (stream);
        http_answer (self, status, content_type, NULL);
        return NULL;
    }
    *stream = (http_stream_t){.server = self->server,
                              .connection = self->connection,
                              .reader = reader,
                              .free_fn = free_fn,
                              .arg = arg};
    http_answer (self, status, content_type, response);
    return stream;
}

void http_stream_wake (http_stream_t *self)
{
    assert (self);
    if (!self->waiting)
        return;
    s_stream_unlink (self);
    MHD_resume_connection (self->connection);
    if (self->server->in_run)
        self->server->run_again = true;
    else
        http_run_later (self->server);
}

uint64_t http_server_auth_generation (http_server_t *self)
{
    assert (self);
    return self->auth ? auth_reloads (self->auth) - auth_reload_failures (self->auth) : 0;
}

//  At shutdown every waiting stream is resumed to end at its next read.
void http_streams_stop (http_server_t *self)
{
    self->stopping = true;
    while (self->streams_waiting)
        http_stream_wake (self->streams_waiting);
}
