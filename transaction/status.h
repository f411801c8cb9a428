/*  status — whether the transaction service can take writes, and its
    /health and /metrics answers.
*/
#ifndef STATUS_H_INCLUDED
#define STATUS_H_INCLUDED

#include "request.h"

//  Why writes would be refused now, or NULL; *status: the /health status.
const char *status_not_writable (api_t *self, const char **status);

void status_handle_health (http_request_t *http, void *arg);
void status_handle_metrics (http_request_t *http, void *arg);

#endif
