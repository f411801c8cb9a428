/*  dashboard — GET /: the one page that watches the ledger.

    accounting/dashboard.html (HTML, CSS and JavaScript in one file, no
    framework, nothing fetched from elsewhere) is compiled into the binary
    at build time. The page reads the API of this instance only: /events
    (the live feed), /accounts, /stats and /health.
*/
#ifndef DASHBOARD_H_INCLUDED
#define DASHBOARD_H_INCLUDED

#include "http.h"

//  GET / handler (arg unused).
void dashboard_handle (http_request_t *request, void *arg);

#endif
