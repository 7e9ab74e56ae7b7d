/*
 * controlplane/api.h: the HTTP API of koreo-controlplane (issue 6 item 3,
 * 6; docs/http-api.md): HTTPS (TLS 1.2+, the pki server certificate) on
 * --api-listen with libevent's evhttp, JSON bodies, bearer tokens
 * (api_tokens: roles viewer < operator < admin, optional cluster scope),
 * cursor pagination, /healthz, /readyz and /metrics (Prometheus text).
 * All database work goes through ctx->db asynchronously.
 */
#ifndef KOREO_CP_API_H
#define KOREO_CP_API_H

#include "cp.h"

/* Listen on ctx->opt->api_listen.  NULL + err when it cannot bind. */
cp_api *cp_api_new(cp_ctx *ctx, char *err, size_t errlen);
void cp_api_free(cp_api *a);
int cp_api_port(const cp_api *a); /* the bound port (tests use port 0) */

#endif
