/*
 * dashboard.h — the memory dashboard of `orion serve` (dashboard.c,
 * docs/dashboard.md): the page at / and its assets (web/, embedded at build
 * time by cmake/embed_assets.cmake), and the endpoints only it needs:
 *
 *   GET  /, /index.html, /assets/NAME   the page, its script and style
 *   GET  /api/profile                   device, budget, tier, pressure, and
 *                                       every served model with its task
 *   POST /api/load {"model", "keep_alive"}  loads a model through the
 *                                       manager (progress goes out as
 *                                       /events); replies once it is loaded
 *   POST /api/load/cancel {"model"}     cancels the loads in progress of it
 *
 * server.c hands every URL it does not route itself to
 * orion__dashboard_serve before answering 404.
 */
#ifndef ORION_SERVICE_DASHBOARD_H
#define ORION_SERVICE_DASHBOARD_H

#include "service/service.h"

/* One embedded file (the generated dashboard_assets.c holds the table). */
typedef struct orion__asset {
    const char          *path;   /* "/index.html", "/assets/app.js" */
    const char          *ctype;  /* "text/html; charset=utf-8", ... */
    const unsigned char *data;   /* len bytes (and a NUL after them) */
    size_t               len;
} orion__asset;

extern const orion__asset orion__dashboard_assets[];
extern const int          orion__dashboard_n_assets;

/* The embedded file served at `url` ("/" is "/index.html"), or NULL. */
const orion__asset *orion__dashboard_asset(const char *url);

typedef struct orion__dashboard orion__dashboard;

/* mgr and models are borrowed (they must outlive the dashboard); api_key
 * (copied; NULL: none) guards the /api/ endpoints, not the static files,
 * which hold no data. ORION_ERR_NOMEM. */
orion_status orion__dashboard_init(orion_manager *mgr, orion__models *models, const char *api_key,
                                   orion__dashboard **out);
/* Every load it started must have returned (the server's drain). NULL is a
 * no-op. */
void         orion__dashboard_free(orion__dashboard *d);

/* The request's state as server.c saw it. */
typedef struct orion__dashboard_req {
    const char *url, *method;
    const char *body;       /* the request body (may be NULL) */
    size_t      len;
    bool        too_large;  /* the body was over the server's limit (413) */
    bool        stopping;   /* the server is shutting down (503 for loads) */
} orion__dashboard_req;

/* Answers the request when its URL is one of the dashboard's and returns
 * the HTTP status sent; returns 0 (nothing sent) otherwise. Called from
 * libmicrohttpd's connection threads; POST /api/load blocks its thread for
 * the load. Thread-safe. */
int orion__dashboard_serve(orion__dashboard *d, struct MHD_Connection *c, const orion__dashboard_req *r);

/* Cancels the loads of `id` in progress (started by POST /api/load);
 * returns how many. Thread-safe. */
int orion__dashboard_cancel(orion__dashboard *d, const char *id);

#endif /* ORION_SERVICE_DASHBOARD_H */
