/*
 * cli/remote_http.c: koreoctl's connection to koreo-controlplane: the
 * settings (flags > environment > config file) and HTTPS requests with
 * libcurl (TLS 1.2+, the server verified against --ca-file or the system
 * CAs, bearer token).  See cli/remote.h.
 */
#include "remote.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "koreo/json.h"

static char *config_path(void) {
  const char *p = getenv("KOREO_CONFIG");
  if (p && *p) return strdup(p);
  const char *x = getenv("XDG_CONFIG_HOME");
  if (x && *x) return kv_asprintf("%s/koreo/config.yaml", x);
  const char *h = getenv("HOME");
  if (h && *h) return kv_asprintf("%s/.config/koreo/config.yaml", h);
  return NULL;
}

static void set_from(char **dst, const char *v) {
  if (!*dst && v && *v) *dst = strdup(v);
}

/* remote_cfg_resolve: see remote.h. */
int remote_cfg_resolve(remote_cfg *c) {
  set_from(&c->server, getenv("KOREO_SERVER"));
  set_from(&c->token, getenv("KOREO_TOKEN"));
  set_from(&c->ca_file, getenv("KOREO_CA_FILE"));
  char *path = config_path();
  bool explicit_path = getenv("KOREO_CONFIG") && *getenv("KOREO_CONFIG");
  if (path && (!c->server || !c->token || !c->ca_file)) {
    kv_parse_error pe = {0};
    size_t len;
    char *text = kv_read_file(path, &len, &pe);
    if (!text && explicit_path) {
      fprintf(stderr, "koreoctl: config file %s: %s\n", path, pe.msg);
      free(path);
      return -1;
    }
    if (text) {
      kv *docs = kv_yaml_parse(text, len, path, &pe);
      free(text);
      if (!docs) {
        fprintf(stderr, "koreoctl: config file %s:%u:%u: %s\n", path, pe.line, pe.col, pe.msg);
        free(path);
        return -1;
      }
      kv *m = kv_len(docs) ? kv_list_at(docs, 0) : NULL;
      if (m && m->kind == KV_MAP) {
        static const char *keys[3] = {"server", "token", "caFile"};
        char **dst[3] = {&c->server, &c->token, &c->ca_file};
        for (int i = 0; i < 3; i++) {
          kv *v = kv_map_get_str(m, keys[i]);
          if (v && v->kind == KV_STRING) set_from(dst[i], kv_str(v));
        }
      } else if (m && m->kind != KV_NULL) {
        fprintf(stderr, "koreoctl: config file %s: expected a mapping with server, token, caFile\n",
                path);
        kv_unref(docs);
        free(path);
        return -1;
      }
      kv_unref(docs);
    }
  }
  free(path);
  if (!c->server) {
    fputs("koreoctl: no control plane given: use --server https://HOST:PORT, KOREO_SERVER, or "
          "'server:' in ~/.config/koreo/config.yaml\n",
          stderr);
    return -1;
  }
  size_t n = strlen(c->server);
  while (n > 0 && c->server[n - 1] == '/')
    c->server[--n] = 0;
  return 0;
}

/* remote_cfg_free: see remote.h. */
void remote_cfg_free(remote_cfg *c) {
  free(c->server);
  free(c->token);
  free(c->ca_file);
  *c = (remote_cfg){0};
}

/* remote_resp_free: see remote.h. */
void remote_resp_free(remote_resp *r) {
  free(r->body);
  kv_unref(r->json);
  *r = (remote_resp){0};
}

static size_t on_write(char *p, size_t size, size_t n, void *arg) {
  kv_strbuf_put(arg, p, size * n);
  return size * n;
}

/* remote_request: see remote.h. */
int remote_request(const remote_cfg *c, const char *method, const char *path, const char *body,
                   size_t len, const char *ctype, remote_resp *out) {
  static bool inited;
  if (!inited) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    inited = true;
  }
  *out = (remote_resp){0};
  CURL *e = curl_easy_init();
  if (!e) {
    fputs("koreoctl: cannot initialise libcurl\n", stderr);
    return -1;
  }
  char *url = kv_asprintf("%s%s", c->server, path);
  char errbuf[CURL_ERROR_SIZE] = "";
  kv_strbuf b = {0};
  kv_strbuf_put(&b, "", 0);
  struct curl_slist *h = NULL;
  if (c->token) {
    char *auth = kv_asprintf("Authorization: Bearer %s", c->token);
    h = curl_slist_append(h, auth);
    free(auth);
  }
  h = curl_slist_append(h, "Accept: application/json");
  if (body) {
    char *ct = kv_asprintf("Content-Type: %s", ctype ? ctype : "application/json");
    h = curl_slist_append(h, ct);
    free(ct);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  }
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  if (c->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
  CURLcode rc = curl_easy_perform(e);
  int ret = 0;
  if (rc != CURLE_OK) {
    fprintf(stderr, "koreoctl: %s %s: %s\n", method, url,
            *errbuf ? errbuf : curl_easy_strerror(rc));
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
      fputs("koreoctl: the server's certificate was not trusted: pass the control plane's CA "
            "with --ca-file (its pki-dir/ca.crt)\n",
            stderr);
    ret = -1;
    kv_strbuf_free(&b);
  } else {
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = kv_strbuf_take(&b, &out->len);
    kv_parse_error pe;
    out->json = kv_json_parse(out->body, out->len, &pe);
  }
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  free(url);
  return ret;
}

/* remote_print_error: see remote.h. */
void remote_print_error(const remote_resp *r) {
  kv *err = r->json && r->json->kind == KV_MAP ? kv_map_get_str(r->json, "error") : NULL;
  kv *msg = err && err->kind == KV_MAP ? kv_map_get_str(err, "message") : NULL;
  if (msg && msg->kind == KV_STRING)
    fprintf(stderr, "koreoctl: %s (HTTP %ld)\n", kv_str(msg), r->status);
  else if (r->status == 413)
    fputs("koreoctl: the request is too large: the server accepts bodies up to 8 MiB (HTTP 413)\n",
          stderr);
  else
    fprintf(stderr, "koreoctl: the server answered HTTP %ld%s%.200s\n", r->status,
            r->len ? ": " : "", r->body ? r->body : "");
}

/* remote_escape: see remote.h. */
char *remote_escape(const char *s) {
  kv_strbuf b = {0};
  kv_strbuf_put(&b, "", 0);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '.' || *p == '_' || *p == '~')
      kv_strbuf_putc(&b, (char)*p);
    else
      kv_strbuf_printf(&b, "%%%02X", *p);
  }
  return kv_strbuf_take(&b, NULL);
}
