/*  dashboard — see dashboard.h. */
#include "dashboard.h"

extern const char dashboard_page[];
extern const size_t dashboard_page_bytes;

void dashboard_handle (http_request_t *request, void *arg)
{
    //  The page is served from static storage; nothing it shows is in it.
    http_request_add_header (request, "Cache-Control", "no-cache");
    http_request_add_header (
        request, "Content-Security-Policy",
        "default-src 'self'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; img-src data:; connect-src 'self'");
    http_respond (request, 200, "text/html; charset=utf-8", dashboard_page,
                  dashboard_page_bytes);
}
