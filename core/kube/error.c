/*
 * core/kube/error.c: typed Kubernetes API errors (koreo/kube.h): the
 * mapping from HTTP status and Status.reason to kube_err_code, decoding of
 * `Status` objects (message, details.causes, details.retryAfterSeconds) and
 * the Retry-After header, and the small object helpers.
 *
 * Reference: the Status kind (meta/v1) and StatusReason constants of
 * k8s.io/apimachinery/pkg/apis/meta/v1/types.go; client-go's
 * errors.ReasonForError decides by reason first, then by code.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/kube.h"

void kube_error_clear(kube_error *e) {
  if (!e) return;
  for (size_t i = 0; i < e->n_causes; i++) {
    free(e->causes[i].reason);
    free(e->causes[i].field);
    free(e->causes[i].message);
  }
  free(e->causes);
  memset(e, 0, sizeof *e);
  e->retry_after = -1;
}

static char *dup_or_null(const char *s) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) kv_oom();
  return d;
}

void kube_error_copy(kube_error *dst, const kube_error *src) {
  *dst = *src;
  dst->causes = NULL;
  dst->n_causes = 0;
  if (src->n_causes) {
    dst->causes = calloc(src->n_causes, sizeof *dst->causes);
    if (!dst->causes) kv_oom();
    for (size_t i = 0; i < src->n_causes; i++) {
      dst->causes[i].reason = dup_or_null(src->causes[i].reason);
      dst->causes[i].field = dup_or_null(src->causes[i].field);
      dst->causes[i].message = dup_or_null(src->causes[i].message);
    }
    dst->n_causes = src->n_causes;
  }
}

void kube_error_set(kube_error *e, kube_err_code code, const char *fmt, ...) {
  kube_error_clear(e);
  e->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
}

const char *kube_err_name(kube_err_code code) {
  switch (code) {
  case KUBE_OK: return "OK";
  case KUBE_ERR_BAD_REQUEST: return "BadRequest";
  case KUBE_ERR_UNAUTHORIZED: return "Unauthorized";
  case KUBE_ERR_FORBIDDEN: return "Forbidden";
  case KUBE_ERR_NOT_FOUND: return "NotFound";
  case KUBE_ERR_METHOD_NOT_ALLOWED: return "MethodNotAllowed";
  case KUBE_ERR_NOT_ACCEPTABLE: return "NotAcceptable";
  case KUBE_ERR_ALREADY_EXISTS: return "AlreadyExists";
  case KUBE_ERR_CONFLICT: return "Conflict";
  case KUBE_ERR_GONE: return "Gone";
  case KUBE_ERR_TOO_LARGE: return "RequestEntityTooLarge";
  case KUBE_ERR_UNSUPPORTED_MEDIA: return "UnsupportedMediaType";
  case KUBE_ERR_INVALID: return "Invalid";
  case KUBE_ERR_TOO_MANY_REQUESTS: return "TooManyRequests";
  case KUBE_ERR_INTERNAL: return "InternalError";
  case KUBE_ERR_SERVER_TIMEOUT: return "ServerTimeout";
  case KUBE_ERR_SERVICE_UNAVAILABLE: return "ServiceUnavailable";
  case KUBE_ERR_TIMEOUT: return "Timeout";
  case KUBE_ERR_HTTP: return "HTTPError";
  case KUBE_ERR_TRANSPORT: return "Transport";
  case KUBE_ERR_CONFIG: return "Config";
  case KUBE_ERR_NO_KIND: return "NoKindMatch";
  case KUBE_ERR_USAGE: return "Usage";
  case KUBE_ERR_DECODE: return "Decode";
  case KUBE_ERR_CANCELLED: return "Cancelled";
  }
  return "Unknown";
}

kube_err_code kube_err_code_for(int http_status, const char *reason) {
  if (http_status >= 200 && http_status < 300) return KUBE_OK;
  if (reason && *reason) {
    static const struct {
      const char *reason;
      kube_err_code code;
    } by_reason[] = {
        {"BadRequest", KUBE_ERR_BAD_REQUEST},
        {"Unauthorized", KUBE_ERR_UNAUTHORIZED},
        {"Forbidden", KUBE_ERR_FORBIDDEN},
        {"NotFound", KUBE_ERR_NOT_FOUND},
        {"MethodNotAllowed", KUBE_ERR_METHOD_NOT_ALLOWED},
        {"NotAcceptable", KUBE_ERR_NOT_ACCEPTABLE},
        {"AlreadyExists", KUBE_ERR_ALREADY_EXISTS},
        {"Conflict", KUBE_ERR_CONFLICT},
        {"Gone", KUBE_ERR_GONE},
        {"Expired", KUBE_ERR_GONE},
        {"RequestEntityTooLarge", KUBE_ERR_TOO_LARGE},
        {"UnsupportedMediaType", KUBE_ERR_UNSUPPORTED_MEDIA},
        {"Invalid", KUBE_ERR_INVALID},
        {"TooManyRequests", KUBE_ERR_TOO_MANY_REQUESTS},
        {"InternalError", KUBE_ERR_INTERNAL},
        {"ServerTimeout", KUBE_ERR_SERVER_TIMEOUT},
        {"ServiceUnavailable", KUBE_ERR_SERVICE_UNAVAILABLE},
        {"Timeout", KUBE_ERR_TIMEOUT},
    };
    for (size_t i = 0; i < sizeof by_reason / sizeof by_reason[0]; i++)
      if (strcmp(reason, by_reason[i].reason) == 0) return by_reason[i].code;
  }
  switch (http_status) {
  case 400: return KUBE_ERR_BAD_REQUEST;
  case 401: return KUBE_ERR_UNAUTHORIZED;
  case 403: return KUBE_ERR_FORBIDDEN;
  case 404: return KUBE_ERR_NOT_FOUND;
  case 405: return KUBE_ERR_METHOD_NOT_ALLOWED;
  case 406: return KUBE_ERR_NOT_ACCEPTABLE;
  case 409: return KUBE_ERR_CONFLICT;
  case 410: return KUBE_ERR_GONE;
  case 413: return KUBE_ERR_TOO_LARGE;
  case 415: return KUBE_ERR_UNSUPPORTED_MEDIA;
  case 422: return KUBE_ERR_INVALID;
  case 429: return KUBE_ERR_TOO_MANY_REQUESTS;
  case 500: return KUBE_ERR_INTERNAL;
  case 503: return KUBE_ERR_SERVICE_UNAVAILABLE;
  case 504: return KUBE_ERR_TIMEOUT;
  default: return KUBE_ERR_HTTP;
  }
}

bool kube_err_retryable(kube_err_code code) {
  return code == KUBE_ERR_TOO_MANY_REQUESTS || code == KUBE_ERR_SERVER_TIMEOUT ||
         code == KUBE_ERR_SERVICE_UNAVAILABLE || code == KUBE_ERR_TIMEOUT ||
         code == KUBE_ERR_TRANSPORT;
}

static const char *str_field(const kv *m, const char *key) {
  if (!m || kv_kind_of(m) != KV_MAP) return NULL;
  kv *v = kv_map_get_str(m, key);
  return v && kv_kind_of(v) == KV_STRING ? kv_str(v) : NULL;
}

/* Retry-After as delta-seconds ("3", "1.5" tolerated); -1 when absent or
 * not a number (HTTP-dates are not used by the API server). */
static double parse_retry_after(const char *h) {
  if (!h) return -1;
  while (isspace((unsigned char)*h))
    h++;
  if (!*h) return -1;
  char *end = NULL;
  double d = strtod(h, &end);
  while (end && isspace((unsigned char)*end))
    end++;
  if (!end || *end || !isfinite(d) || d < 0) return -1;
  return d;
}

void kube_error_from_status(kube_error *e, int http_status, const kv *body,
                            const char *retry_after_header) {
  kube_error_clear(e);
  e->http_status = http_status;
  const kv *st = NULL;
  if (body && kv_kind_of(body) == KV_MAP) {
    const char *k = str_field(body, "kind");
    if (k && strcmp(k, "Status") == 0) st = body;
  }
  const char *reason = st ? str_field(st, "reason") : NULL;
  int code_in_body = http_status;
  if (st) {
    kv *c = kv_map_get_str(st, "code");
    if (c && kv_kind_of(c) == KV_INT && c->u.i > 0 && http_status == 0) code_in_body = (int)c->u.i;
  }
  e->code = kube_err_code_for(code_in_body, reason);
  if (reason)
    snprintf(e->reason, sizeof e->reason, "%s", reason);
  else
    snprintf(e->reason, sizeof e->reason, "%s", kube_err_name(e->code));
  const char *msg = st ? str_field(st, "message") : NULL;
  if (msg && *msg)
    snprintf(e->message, sizeof e->message, "%s", msg);
  else
    snprintf(e->message, sizeof e->message, "the server answered %d %s", http_status, e->reason);
  e->retry_after = parse_retry_after(retry_after_header);
  kv *details = st ? kv_map_get_str(st, "details") : NULL;
  if (details && kv_kind_of(details) == KV_MAP) {
    kv *ra = kv_map_get_str(details, "retryAfterSeconds");
    if (e->retry_after < 0 && ra && kv_kind_of(ra) == KV_INT && ra->u.i >= 0)
      e->retry_after = (double)ra->u.i;
    kv *causes = kv_map_get_str(details, "causes");
    if (causes && kv_kind_of(causes) == KV_LIST && kv_len(causes) > 0) {
      size_t n = kv_len(causes);
      e->causes = calloc(n, sizeof *e->causes);
      if (!e->causes) kv_oom();
      for (size_t i = 0; i < n; i++) {
        kv *c = kv_list_at(causes, i);
        e->causes[e->n_causes].reason = dup_or_null(str_field(c, "reason"));
        e->causes[e->n_causes].field = dup_or_null(str_field(c, "field"));
        e->causes[e->n_causes].message = dup_or_null(str_field(c, "message"));
        e->n_causes++;
      }
    }
  }
}

const char *kube_obj_meta(const kv *obj, const char *field) {
  if (!obj || kv_kind_of(obj) != KV_MAP) return NULL;
  return str_field(kv_map_get_str(obj, "metadata"), field);
}

void kube_split_api_version(const char *api_version, char *group, size_t gsz, char *version,
                            size_t vsz) {
  const char *av = api_version ? api_version : "";
  const char *slash = strrchr(av, '/');
  if (slash) {
    snprintf(group, gsz, "%.*s", (int)(slash - av), av);
    snprintf(version, vsz, "%s", slash + 1);
  } else {
    snprintf(group, gsz, "%s", "");
    snprintf(version, vsz, "%s", av);
  }
}
