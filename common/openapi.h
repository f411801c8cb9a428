/*  openapi — serves each service's part of the project's openapi.json.

    The document is compiled into every binary. GET /openapi.json answers
    with the paths and methods of the document that the service's route
    table has; routes of the table missing from the document are listed
    under "x-undocumented-routes", so a test can tell the spec drifted
    from the code (in both directions, with the document's own list).
*/
#ifndef OPENAPI_H_INCLUDED
#define OPENAPI_H_INCLUDED

#include "http.h"

//  The route table to describe (borrowed for the life of the process; the
//  table itself should contain OPENAPI_ROUTE). Call once before serving.
void openapi_register (const http_route_t *routes, size_t route_count);

//  GET /openapi.json handler (arg unused).
void openapi_handle (http_request_t *request, void *arg);

#define OPENAPI_ROUTE                                                                    \
    {                                                                                    \
        "GET", "/openapi.json", openapi_handle, 0, AUTH_SCOPE_OPEN, NULL                     \
    }

#endif
