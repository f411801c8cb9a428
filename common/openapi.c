/*  openapi — see openapi.h. */
#include "openapi.h"

#include <assert.h>
#include <ctype.h>
#include <string.h>

extern const char openapi_document[];
extern const size_t openapi_document_bytes;

static const http_route_t *s_routes;
static size_t s_route_count;

void openapi_register (const http_route_t *routes, size_t route_count)
{
    s_routes = routes;
    s_route_count = route_count;
}

//  OpenAPI keys operations by lower-case method names.
static void s_lower (const char *text, char *buffer, size_t size)
{
    size_t i = 0;
    for (; text[i] && i + 1 < size; i++)
        buffer[i] = (char)tolower ((unsigned char)text[i]);
    buffer[i] = '\0';
}

static bool s_route_served (const char *path, const char *method)
{
    char lower[16];
    for (size_t i = 0; i < s_route_count; i++) {
        s_lower (s_routes[i].method, lower, sizeof lower);
        if (streq (s_routes[i].path, path) && streq (lower, method))
            return true;
    }
    return false;
}

//  The keys of a path item that are operations (the others: servers,
//  parameters, summary, description).
static bool s_is_method (const char *key)
{
    static const char *const methods[] = {"get",     "put",  "post",  "delete",
                                          "options", "head", "patch", "trace"};
    for (size_t index = 0; index < sizeof methods / sizeof methods[0]; index++)
        if (streq (key, methods[index]))
            return true;
    return false;
}

//  Keeps the operations this service serves; drops paths left empty. The
//  per-path servers go: the document's servers name this one.
static void s_filter_paths (cJSON *paths)
{
    cJSON *path = paths->child;
    while (path) {
        cJSON *next_path = path->next;
        cJSON_DeleteItemFromObjectCaseSensitive (path, "servers");
        bool served = false;
        cJSON *operation = path->child;
        while (operation) {
            cJSON *next_operation = operation->next;
            if (s_is_method (operation->string)) {
                if (s_route_served (path->string, operation->string))
                    served = true;
                else
                    cJSON_Delete (cJSON_DetachItemViaPointer (path, operation));
            }
            operation = next_operation;
        }
        if (!served)
            cJSON_Delete (cJSON_DetachItemViaPointer (paths, path));
        path = next_path;
    }
}

//  The document's servers: the one answering, at its real address.
static void s_set_servers (cJSON *document, http_request_t *request)
{
    char url[300];
    http_request_base_url (request, url, sizeof url);
    cJSON *servers = cJSON_CreateArray ();
    cJSON *server = cJSON_CreateObject ();
    cJSON_AddStringToObject (server, "url", url);
    cJSON_AddStringToObject (server, "description", http_request_service (request));
    cJSON_AddItemToArray (servers, server);
    cJSON_ReplaceItemInObjectCaseSensitive (document, "servers", servers);
}

static cJSON *s_undocumented_routes (const cJSON *paths)
{
    cJSON *missing = cJSON_CreateArray ();
    char lower[16];
    for (size_t i = 0; i < s_route_count; i++) {
        s_lower (s_routes[i].method, lower, sizeof lower);
        const cJSON *path = cJSON_GetObjectItemCaseSensitive (paths, s_routes[i].path);
        if (!cJSON_GetObjectItemCaseSensitive (path, lower)) {
            char route[256];
            snprintf (route, sizeof route, "%s %s", s_routes[i].method, s_routes[i].path);
            cJSON_AddItemToArray (missing, cJSON_CreateString (route));
        }
    }
    return missing;
}

void openapi_handle (http_request_t *request, void *arg)
{
    assert (s_routes);
    cJSON *document = cJSON_ParseWithLength (openapi_document, openapi_document_bytes);
    assert (document); // validated at build time: the file is ours
    cJSON *paths = cJSON_GetObjectItemCaseSensitive (document, "paths");
    cJSON *missing = s_undocumented_routes (paths);
    s_filter_paths (paths);
    s_set_servers (document, request);
    if (cJSON_GetArraySize (missing) > 0)
        cJSON_AddItemToObject (document, "x-undocumented-routes", missing);
    else
        cJSON_Delete (missing);
    http_respond_json (request, 200, document);
    cJSON_Delete (document);
}
