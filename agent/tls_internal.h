/*
 * agent/tls_internal.h: helpers shared by agent/tls.c and agent/tls_server.c
 * (error formatting, identity frames over bufferevents).  Not a public API.
 */
#ifndef KOREO_AGENT_TLS_INTERNAL_H
#define KOREO_AGENT_TLS_INTERNAL_H

#include "tls.h"

struct evbuffer;

/* printf into err->msg, appending the last OpenSSL error if any (and
 * clearing OpenSSL's error queue). */
void ktls_seterr(ktls_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send one envelope as a frame.  0, or -1 + err. */
int ktls_send(struct bufferevent *bev, const kframe_envelope *env, ktls_err *err);

/* Send Error{code, message, fatal}. */
int ktls_send_error(struct bufferevent *bev, Koreo__Agent__V1__ErrorCode code, const char *message,
                    bool fatal);

/* Take exactly one whole frame from `in` (leaving later bytes for whoever
 * reads next): 1 + *out (caller frees with kframe_envelope_free) when
 * complete, 0 when more bytes are needed, -1 + err when oversized
 * (> max bytes: KTLS_MAX_FRAME before authentication, KFRAME_MAX_DEFAULT
 * on a session), malformed or of an unknown type. */
int ktls_frame_take(struct evbuffer *in, size_t max, kframe_envelope **out, ktls_err *err);

/* The most telling OpenSSL error recorded on a bufferevent_openssl into
 * buf (libevent also records bare socket errors, which have no library
 * name; those are skipped).  buf[0] == 0 when there is none. */
void ktls_bev_ssl_error(struct bufferevent *bev, char *buf, size_t size);

/* Free a context made by ktls_client_ctx (and its pin copy). */
void ktls_client_ctx_free(SSL_CTX *ctx);

#endif
