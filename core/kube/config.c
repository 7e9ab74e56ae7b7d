/*
 * core/kube/config.c: where the client gets its API server, credentials and
 * namespace from (koreo/kube.h, "Configuration"): kubeconfig files (merged
 * as kubectl merges $KUBECONFIG), named or current contexts, and the
 * in-cluster service account.
 *
 * Reference: https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/
 * (merging rules, relative paths) and client-go's rest.InClusterConfig.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "koreo/json.h"
#include "koreo/kube.h"
#include "kube_impl.h"

#define SA_DIR_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount"

static char *xstrndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) kv_oom();
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

void kube_config_free(kube_config *cfg) {
  if (!cfg) return;
  free(cfg->server);
  free(cfg->namespace_);
  free(cfg->context);
  free(cfg->cluster);
  free(cfg->user);
  free(cfg->source);
  free(cfg->ca_pem);
  free(cfg->cert_pem);
  free(cfg->key_pem);
  free(cfg->tls_server_name);
  free(cfg->token);
  free(cfg->token_file);
  free(cfg);
}

/* Read a whole file; NULL + err. */
static char *read_all(const char *path, size_t *len, kube_error *err, const char *what) {
  kv_parse_error pe;
  char *text = kv_read_file(path, len, &pe);
  if (!text) kube_error_set(err, KUBE_ERR_CONFIG, "%s: %s", what, pe.msg);
  return text;
}

/* RFC 4648 base64 (standard alphabet, padding optional, whitespace
 * ignored).  Returns a malloc'ed NUL-terminated buffer or NULL. */
static char *b64_decode(const char *in, size_t *out_len) {
  size_t n = strlen(in);
  char *out = malloc(n / 4 * 3 + 4);
  if (!out) kv_oom();
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)in[i];
    int v;
    if (ch >= 'A' && ch <= 'Z')
      v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z')
      v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9')
      v = ch - '0' + 52;
    else if (ch == '+' || ch == '-')
      v = 62;
    else if (ch == '/' || ch == '_')
      v = 63;
    else if (ch == '=' || ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
      continue;
    else {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  out[o] = 0;
  *out_len = o;
  return out;
}

/* --- kubeconfig merging ---------------------------------------------------- */

typedef struct named {
  const char *name;
  kv *body;  /* the "cluster"/"user"/"context" map (borrowed from docs) */
  char *dir; /* directory of the file it came from (owned) */
} named;

typedef struct kc_merge {
  kv *docs[32]; /* owned parsed files */
  size_t n_docs;
  named clusters[256], users[256], contexts[256];
  size_t n_clusters, n_users, n_contexts;
  char *current; /* owned */
  char *first_file;
} kc_merge;

static void kc_merge_free(kc_merge *m) {
  for (size_t i = 0; i < m->n_docs; i++)
    kv_unref(m->docs[i]);
  for (size_t i = 0; i < m->n_clusters; i++)
    free(m->clusters[i].dir);
  for (size_t i = 0; i < m->n_users; i++)
    free(m->users[i].dir);
  for (size_t i = 0; i < m->n_contexts; i++)
    free(m->contexts[i].dir);
  free(m->current);
  free(m->first_file);
}

static const char *kv_s(const kv *m, const char *key) {
  if (!m || kv_kind_of(m) != KV_MAP) return NULL;
  kv *v = kv_map_get_str(m, key);
  return v && kv_kind_of(v) == KV_STRING ? kv_str(v) : NULL;
}

static bool kv_b(const kv *m, const char *key) {
  if (!m || kv_kind_of(m) != KV_MAP) return false;
  kv *v = kv_map_get_str(m, key);
  if (!v) return false;
  if (kv_kind_of(v) == KV_BOOL) return v->u.b;
  if (kv_kind_of(v) == KV_STRING) return strcasecmp(kv_str(v), "true") == 0;
  return false;
}

static void add_named(named *arr, size_t *n, const kv *list, const char *field, const char *dir) {
  if (!list || kv_kind_of(list) != KV_LIST) return;
  for (size_t i = 0; i < kv_len(list); i++) {
    kv *e = kv_list_at(list, i);
    const char *name = kv_s(e, "name");
    if (!name) continue;
    bool seen = false;
    for (size_t j = 0; j < *n && !seen; j++)
      seen = strcmp(arr[j].name, name) == 0;
    if (seen || *n >= 256) continue; /* first definition wins */
    kv *body = kv_map_get_str(e, field);
    arr[*n].name = name;
    arr[*n].body = body && kv_kind_of(body) == KV_MAP ? body : NULL;
    arr[*n].dir = kube_xstrdup(dir);
    (*n)++;
  }
}

static int kc_merge_file(kc_merge *m, const char *path, bool must_exist, kube_error *err) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (!must_exist) return 0;
    kube_error_set(err, KUBE_ERR_CONFIG, "kubeconfig %s: %s", path, strerror(errno));
    return -1;
  }
  if (m->n_docs >= sizeof m->docs / sizeof m->docs[0]) {
    kube_error_set(err, KUBE_ERR_CONFIG, "kubeconfig: more than 32 files in the list");
    return -1;
  }
  size_t len = 0;
  char what[1100];
  snprintf(what, sizeof what, "kubeconfig %s", path);
  char *text = read_all(path, &len, err, what);
  if (!text) return -1;
  kv_parse_error pe;
  kv *docs = kv_yaml_parse(text, len, path, &pe);
  free(text);
  if (!docs) {
    kube_error_set(err, KUBE_ERR_CONFIG, "kubeconfig %s:%u:%u: %s", path, pe.line, pe.col, pe.msg);
    return -1;
  }
  m->docs[m->n_docs++] = docs;
  if (!m->first_file) m->first_file = kube_xstrdup(path);
  kv *doc = kv_len(docs) ? kv_list_at(docs, 0) : NULL;
  if (!doc || kv_kind_of(doc) == KV_NULL) return 0; /* an empty file is allowed */
  if (kv_kind_of(doc) != KV_MAP) {
    kube_error_set(err, KUBE_ERR_CONFIG, "kubeconfig %s: the document is not a map", path);
    return -1;
  }
  const char *slash = strrchr(path, '/');
  char *dir =
      slash ? xstrndup(path, (size_t)(slash - path) + (slash == path ? 1 : 0)) : kube_xstrdup(".");
  add_named(m->clusters, &m->n_clusters, kv_map_get_str(doc, "clusters"), "cluster", dir);
  add_named(m->users, &m->n_users, kv_map_get_str(doc, "users"), "user", dir);
  add_named(m->contexts, &m->n_contexts, kv_map_get_str(doc, "contexts"), "context", dir);
  const char *cur = kv_s(doc, "current-context");
  if (!m->current && cur && *cur) m->current = kube_xstrdup(cur);
  free(dir);
  return 0;
}

static const named *find_named(const named *arr, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(arr[i].name, name) == 0) return &arr[i];
  return NULL;
}

/* A path from a kubeconfig, resolved against its directory. */
static char *resolve_path(const char *dir, const char *p) {
  if (p[0] == '/') return kube_xstrdup(p);
  char *out = NULL;
  if (asprintf(&out, "%s/%s", dir, p) < 0) kv_oom();
  return out;
}

/* Load PEM from `<key>-data` (base64) or `<key>` (a file). */
static int load_pem(const named *nm, const char *key, char **pem, size_t *len, kube_error *err,
                    const char *what) {
  char dkey[96];
  snprintf(dkey, sizeof dkey, "%s-data", key);
  const char *data = kv_s(nm->body, dkey);
  const char *file = kv_s(nm->body, key);
  if (data && *data) {
    *pem = b64_decode(data, len);
    if (!*pem) {
      kube_error_set(err, KUBE_ERR_CONFIG, "%s \"%s\": %s is not valid base64", what, nm->name,
                     dkey);
      return -1;
    }
    return 0;
  }
  if (file && *file) {
    char *p = resolve_path(nm->dir, file);
    char w[1200];
    snprintf(w, sizeof w, "%s \"%s\": %s", what, nm->name, key);
    *pem = read_all(p, len, err, w);
    free(p);
    return *pem ? 0 : -1;
  }
  return 0;
}

static void trim_trailing(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
    s[--n] = 0;
}

/* http is accepted only for loopback hosts (no credentials in the clear on
 * a network); https everywhere. */
static int check_server(const char *server, const char *where, kube_error *err) {
  if (strncmp(server, "https://", 8) == 0) return 0;
  if (strncmp(server, "http://", 7) == 0) {
    const char *h = server + 7;
    if (strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost", 9) == 0 ||
        strncmp(h, "[::1]", 5) == 0)
      return 0;
    kube_error_set(err, KUBE_ERR_CONFIG,
                   "%s: server %s uses plain http to a non-loopback host; use https", where,
                   server);
    return -1;
  }
  kube_error_set(err, KUBE_ERR_CONFIG, "%s: server \"%s\" is not an https:// URL", where, server);
  return -1;
}

static int kc_build(kc_merge *m, const char *context, kube_config **out, kube_error *err) {
  const char *src = m->first_file ? m->first_file : "kubeconfig";
  const char *ctx_name = context && *context ? context : m->current;
  if (!ctx_name) {
    kube_error_set(err, KUBE_ERR_CONFIG,
                   "kubeconfig %s: no context given and no current-context set", src);
    return -1;
  }
  const named *ctx = find_named(m->contexts, m->n_contexts, ctx_name);
  if (!ctx || !ctx->body) {
    kube_error_set(err, KUBE_ERR_CONFIG, "kubeconfig %s: context \"%s\" does not exist", src,
                   ctx_name);
    return -1;
  }
  const char *cl_name = kv_s(ctx->body, "cluster");
  const char *us_name = kv_s(ctx->body, "user");
  const named *cl = cl_name ? find_named(m->clusters, m->n_clusters, cl_name) : NULL;
  if (!cl || !cl->body) {
    kube_error_set(err, KUBE_ERR_CONFIG,
                   "kubeconfig %s: context \"%s\" names cluster \"%s\" which does not exist", src,
                   ctx_name, cl_name ? cl_name : "");
    return -1;
  }
  const named *us = us_name && *us_name ? find_named(m->users, m->n_users, us_name) : NULL;
  if (us_name && *us_name && (!us)) {
    kube_error_set(err, KUBE_ERR_CONFIG,
                   "kubeconfig %s: context \"%s\" names user \"%s\" which does not exist", src,
                   ctx_name, us_name);
    return -1;
  }
  const char *server = kv_s(cl->body, "server");
  if (!server || !*server) {
    kube_error_set(err, KUBE_ERR_CONFIG, "kubeconfig %s: cluster \"%s\" has no server", src,
                   cl->name);
    return -1;
  }
  char where[512];
  snprintf(where, sizeof where, "kubeconfig %s: cluster \"%s\"", src, cl->name);
  if (check_server(server, where, err) != 0) return -1;
  if (us && us->body) {
    if (kv_map_get_str(us->body, "exec")) {
      kube_error_set(err, KUBE_ERR_CONFIG,
                     "kubeconfig %s: user \"%s\" uses an exec credential plugin, which koreo "
                     "does not run; give a token, tokenFile or client certificate instead",
                     src, us->name);
      return -1;
    }
    if (kv_map_get_str(us->body, "auth-provider")) {
      kube_error_set(err, KUBE_ERR_CONFIG,
                     "kubeconfig %s: user \"%s\" uses an auth-provider plugin, which koreo does "
                     "not support; give a token, tokenFile or client certificate instead",
                     src, us->name);
      return -1;
    }
    if (kv_s(us->body, "username") || kv_s(us->body, "password")) {
      kube_error_set(err, KUBE_ERR_CONFIG,
                     "kubeconfig %s: user \"%s\" uses basic authentication, which Kubernetes "
                     "removed; give a token or client certificate instead",
                     src, us->name);
      return -1;
    }
  }
  kube_config *c = calloc(1, sizeof *c);
  if (!c) kv_oom();
  c->server = kube_xstrdup(server);
  size_t sl = strlen(c->server);
  while (sl > 0 && c->server[sl - 1] == '/')
    c->server[--sl] = 0;
  const char *ns = kv_s(ctx->body, "namespace");
  c->namespace_ = kube_xstrdup(ns && *ns ? ns : "default");
  c->context = kube_xstrdup(ctx_name);
  c->cluster = kube_xstrdup(cl->name);
  c->user = kube_xstrdup(us ? us->name : "");
  c->source = kube_xstrdup(src);
  c->insecure = kv_b(cl->body, "insecure-skip-tls-verify");
  const char *tsn = kv_s(cl->body, "tls-server-name");
  if (tsn && *tsn) c->tls_server_name = kube_xstrdup(tsn);
  if (load_pem(cl, "certificate-authority", &c->ca_pem, &c->ca_len, err, "cluster") != 0) goto fail;
  if (us && us->body) {
    if (load_pem(us, "client-certificate", &c->cert_pem, &c->cert_len, err, "user") != 0) goto fail;
    if (load_pem(us, "client-key", &c->key_pem, &c->key_len, err, "user") != 0) goto fail;
    if ((c->cert_pem != NULL) != (c->key_pem != NULL)) {
      kube_error_set(err, KUBE_ERR_CONFIG,
                     "kubeconfig %s: user \"%s\" has a client %s without its %s", src, us->name,
                     c->cert_pem ? "certificate" : "key", c->cert_pem ? "key" : "certificate");
      goto fail;
    }
    const char *tok = kv_s(us->body, "token");
    const char *tokf = kv_s(us->body, "tokenFile");
    if (tok && *tok)
      c->token = kube_xstrdup(tok);
    else if (tokf && *tokf) {
      c->token_file = resolve_path(us->dir, tokf);
      size_t tl;
      char w[600];
      snprintf(w, sizeof w, "user \"%s\": tokenFile", us->name);
      c->token = read_all(c->token_file, &tl, err, w);
      if (!c->token) goto fail;
      trim_trailing(c->token);
    }
  }
  *out = c;
  return 0;
fail:
  kube_config_free(c);
  return -1;
}

int kube_config_load_kubeconfig(const char *path, const char *context, kube_config **out,
                                kube_error *err) {
  kube_error_clear(err);
  *out = NULL;
  kc_merge m;
  memset(&m, 0, sizeof m);
  int rc = -1;
  char *list = NULL;
  if (path && *path)
    list = kube_xstrdup(path);
  else {
    const char *env = getenv("KUBECONFIG");
    if (env && *env)
      list = kube_xstrdup(env);
    else {
      const char *home = getenv("HOME");
      if (!home || !*home) {
        kube_error_set(err, KUBE_ERR_CONFIG,
                       "no kubeconfig: --kubeconfig not given, KUBECONFIG and HOME unset");
        return -1;
      }
      if (asprintf(&list, "%s/.kube/config", home) < 0) kv_oom();
    }
  }
  /* A single explicit path must exist; in a KUBECONFIG list missing files
   * are skipped as kubectl does, but at least one must be there. */
  bool single = strchr(list, ':') == NULL;
  char *shown = kube_xstrdup(list);
  char *save = NULL;
  for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
    if (!*p) continue;
    if (kc_merge_file(&m, p, single, err) != 0) goto done;
  }
  if (m.n_docs == 0) {
    kube_error_set(err, KUBE_ERR_CONFIG, "no kubeconfig file found in \"%s\"", shown);
    goto done;
  }
  rc = kc_build(&m, context, out, err);
done:
  free(shown);
  free(list);
  kc_merge_free(&m);
  return rc;
}

int kube_config_load_in_cluster(const char *sa_dir, kube_config **out, kube_error *err) {
  kube_error_clear(err);
  *out = NULL;
  const char *host = getenv("KUBERNETES_SERVICE_HOST");
  const char *port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
    kube_error_set(err, KUBE_ERR_CONFIG,
                   "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set "
                   "(the process is not running in a pod?)");
    return -1;
  }
  const char *dir = sa_dir && *sa_dir ? sa_dir : SA_DIR_DEFAULT;
  kube_config *c = calloc(1, sizeof *c);
  if (!c) kv_oom();
  bool v6 = strchr(host, ':') != NULL;
  if (asprintf(&c->server, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port) < 0)
    kv_oom();
  c->context = kube_xstrdup("");
  c->cluster = kube_xstrdup("in-cluster");
  c->user = kube_xstrdup("serviceaccount");
  c->source = kube_xstrdup("in-cluster");
  if (asprintf(&c->token_file, "%s/token", dir) < 0) kv_oom();
  size_t len;
  c->token = read_all(c->token_file, &len, err, "in-cluster service-account token");
  if (!c->token) goto fail;
  trim_trailing(c->token);
  char *ca = NULL;
  if (asprintf(&ca, "%s/ca.crt", dir) < 0) kv_oom();
  c->ca_pem = read_all(ca, &c->ca_len, err, "in-cluster CA certificate");
  free(ca);
  if (!c->ca_pem) goto fail;
  char *nsf = NULL;
  if (asprintf(&nsf, "%s/namespace", dir) < 0) kv_oom();
  kv_parse_error pe;
  c->namespace_ = kv_read_file(nsf, &len, &pe);
  free(nsf);
  if (c->namespace_) trim_trailing(c->namespace_);
  if (!c->namespace_ || !*c->namespace_) {
    free(c->namespace_);
    c->namespace_ = kube_xstrdup("default");
  }
  *out = c;
  return 0;
fail:
  kube_config_free(c);
  return -1;
}

int kube_config_load(const char *path, const char *context, kube_config **out, kube_error *err) {
  if (path && *path) return kube_config_load_kubeconfig(path, context, out, err);
  const char *env = getenv("KUBECONFIG");
  if (env && *env) return kube_config_load_kubeconfig(NULL, context, out, err);
  const char *host = getenv("KUBERNETES_SERVICE_HOST");
  if (host && *host) return kube_config_load_in_cluster(NULL, out, err);
  return kube_config_load_kubeconfig(NULL, context, out, err);
}
