/*
 * controlplane/main.c: the koreo-controlplane executable (issue 6,
 * cp-design.md "Process shape"): flags and KOREO_DATABASE_URL, the
 * subcommands `serve` (default: PKI, migrations, the async database, the
 * engine and the HTTP API on one libevent loop, hourly history partition
 * upkeep, SIGINT/SIGTERM), `migrate`, `tokens create` and `tokens
 * bootstrap` (direct database access, for the first admin token and
 * scripts).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "cp.h"
#include "koreo/value.h"
#ifdef KOREO_CP_ENGINE
#include "engine.h"
#endif
#ifdef KOREO_CP_API
#include "api.h"
#endif

static const char USAGE[] =
    "usage: koreo-controlplane [serve] --database-url URL --pki-dir DIR [options]\n"
    "       koreo-controlplane migrate --database-url URL\n"
    "       koreo-controlplane tokens create --role viewer|operator|admin [--clusters a,b]\n"
    "                                        [--ttl 720h] [--description TEXT] --database-url URL\n"
    "       koreo-controlplane tokens bootstrap --cluster NAME [--ttl 1h] --pki-dir DIR\n"
    "                                           --database-url URL\n"
    "\n"
    "serve options:\n"
    "  --database-url URL       PostgreSQL (libpq URI or conninfo; env KOREO_DATABASE_URL)\n"
    "  --pki-dir DIR            ca.crt ca.key server.crt server.key (generated when absent)\n"
    "  --agent-listen H:P       agents' mutual-TLS listener (default 0.0.0.0:9443)\n"
    "  --api-listen H:P         HTTPS API (default 127.0.0.1:8443)\n"
    "  --namespaces a,b         definition namespaces in priority order\n"
    "  --resync DUR             re-run every trigger this often (default 20m)\n"
    "  --history-retention DUR  drop execution history older than this (default 30d)\n"
    "  --heartbeat DUR          agents' heartbeat interval (default 10s)\n"
    "  --run-timeout DUR        deadline of one Workflow run (default 30s)\n"
    "  --backoff-min DUR, --backoff-max DUR  failed runs' retry backoff (default 1s .. 5m)\n"
    "  --lease DUR              work-queue claim lease (default 60s)\n"
    "  --log-format json|text   (default text)\n"
    "  --log-level debug|info|warn|error (default info)\n"
    "  --replica-id ID          this replica's name (default <hostname>-<pid>)\n"
    "  --server-name a,b        more DNS names or IPs for the server certificate (the names\n"
    "                           agents and clients dial, e.g. a Service or load balancer)\n"
    "Durations: 90s, 20m, 1h, 30d, 500ms, or combined (1h30m).\n";

/* ---- small parsers ----------------------------------------------------------- */

/* "90s", "20m", "1h30m", "30d", "500ms" -> milliseconds; -1 when malformed. */
static int64_t parse_duration_ms(const char *s) {
  if (!s || !*s) return -1;
  int64_t total = 0;
  while (*s) {
    if (*s < '0' || *s > '9') return -1;
    int64_t n = 0;
    while (*s >= '0' && *s <= '9') {
      n = n * 10 + (*s++ - '0');
      if (n > (int64_t)1e12) return -1;
    }
    int64_t unit;
    if (strncmp(s, "ms", 2) == 0) {
      unit = 1;
      s += 2;
    } else if (*s == 's') {
      unit = 1000, s++;
    } else if (*s == 'm') {
      unit = 60000, s++;
    } else if (*s == 'h') {
      unit = 3600000, s++;
    } else if (*s == 'd') {
      unit = 86400000, s++;
    } else {
      return -1;
    }
    total += n * unit;
  }
  return total;
}

/* Split "a,b,c" (empty items dropped) into a NULL-terminated malloc'd
 * array of malloc'd strings. */
static char **split_list(const char *s, size_t *n) {
  *n = 0;
  size_t cap = 1;
  for (const char *p = s; *p; p++)
    cap += *p == ',';
  char **v = calloc(cap + 1, sizeof *v);
  if (!v) kv_oom();
  const char *p = s;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    while (len && (*p == ' '))
      p++, len--;
    while (len && p[len - 1] == ' ')
      len--;
    if (len) {
      v[*n] = strndup(p, len);
      if (!v[*n]) kv_oom();
      (*n)++;
    }
    if (!e) break;
    p = e + 1;
  }
  return v;
}

static void free_list(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}

/* The host part of "HOST:PORT" / "[V6]:PORT" (malloc'd); NULL if malformed. */
static char *listen_host(const char *hp) {
  if (!hp) return NULL;
  if (hp[0] == '[') {
    const char *e = strchr(hp, ']');
    if (!e || e[1] != ':') return NULL;
    return strndup(hp + 1, (size_t)(e - hp - 1));
  }
  const char *c = strrchr(hp, ':');
  if (!c || !c[1]) return NULL;
  for (const char *p = c + 1; *p; p++)
    if (*p < '0' || *p > '9') return NULL;
  return strndup(hp, (size_t)(c - hp));
}

/* ---- options --------------------------------------------------------------------- */

typedef struct args {
  cp_options o;
  char **ns;
  cp_log_level level;
  /* tokens */
  const char *role, *clusters, *description, *cluster, *ttl;
  char replica_buf[300];
  char **server_names; /* --server-name a,b: extra names in the server certificate */
  size_t n_server_names;
} args;

static int usage_error(const char *fmt, const char *a) {
  fprintf(stderr, "koreo-controlplane: ");
  fprintf(stderr, fmt, a);
  fprintf(stderr, "\n(see koreo-controlplane --help)\n");
  return 2;
}

/* Parse argv[from..]; returns 0, 2 on a usage error, 1 for --help. */
static int parse_args(int argc, char **argv, int from, args *a) {
  cp_options *o = &a->o;
  o->database_url = getenv("KOREO_DATABASE_URL");
  o->agent_listen = "0.0.0.0:9443";
  o->api_listen = "127.0.0.1:8443";
  o->resync_ms = 20 * 60000;
  o->history_retention_s = 30 * 86400;
  o->heartbeat_ms = 10000;
  o->run_timeout_ms = 30000;
  o->backoff_min_ms = 1000;
  o->backoff_max_ms = 5 * 60000;
  o->lease_ms = 60000;
  a->level = CP_INFO;
  for (int i = from; i < argc; i++) {
    const char *f = argv[i];
    if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) return 1;
    const char *eq = strchr(f, '=');
    char name[64];
    const char *val = NULL;
    if (strncmp(f, "--", 2) != 0) return usage_error("unexpected argument %s", f);
    if (eq) {
      snprintf(name, sizeof name, "%.*s", (int)(eq - f), f);
      val = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", f);
      if (i + 1 >= argc) return usage_error("%s needs a value", f);
      val = argv[++i];
    }
    int64_t *dur = NULL;
    if (strcmp(name, "--database-url") == 0)
      o->database_url = val;
    else if (strcmp(name, "--pki-dir") == 0)
      o->pki_dir = val;
    else if (strcmp(name, "--agent-listen") == 0)
      o->agent_listen = val;
    else if (strcmp(name, "--api-listen") == 0)
      o->api_listen = val;
    else if (strcmp(name, "--server-name") == 0) {
      free_list(a->server_names);
      a->server_names = split_list(val, &a->n_server_names);
    } else if (strcmp(name, "--namespaces") == 0) {
      free_list(a->ns);
      a->ns = split_list(val, &o->n_namespaces);
      o->namespaces = (const char *const *)a->ns;
    } else if (strcmp(name, "--resync") == 0)
      dur = &o->resync_ms;
    else if (strcmp(name, "--history-retention") == 0) {
      int64_t ms = parse_duration_ms(val);
      if (ms < 3600000) return usage_error("--history-retention %s: a duration of 1h or more", val);
      o->history_retention_s = ms / 1000;
    } else if (strcmp(name, "--heartbeat") == 0)
      dur = &o->heartbeat_ms;
    else if (strcmp(name, "--run-timeout") == 0)
      dur = &o->run_timeout_ms;
    else if (strcmp(name, "--backoff-min") == 0)
      dur = &o->backoff_min_ms;
    else if (strcmp(name, "--backoff-max") == 0)
      dur = &o->backoff_max_ms;
    else if (strcmp(name, "--lease") == 0)
      dur = &o->lease_ms;
    else if (strcmp(name, "--log-format") == 0) {
      if (strcmp(val, "json") && strcmp(val, "text"))
        return usage_error("--log-format %s: json or text", val);
      o->log_json = strcmp(val, "json") == 0;
    } else if (strcmp(name, "--log-level") == 0) {
      static const char *lv[] = {"debug", "info", "warn", "error"};
      int k = 0;
      while (k < 4 && strcmp(val, lv[k]))
        k++;
      if (k == 4) return usage_error("--log-level %s: debug, info, warn or error", val);
      a->level = (cp_log_level)k;
    } else if (strcmp(name, "--replica-id") == 0)
      o->replica_id = val;
    else if (strcmp(name, "--role") == 0)
      a->role = val;
    else if (strcmp(name, "--clusters") == 0)
      a->clusters = val;
    else if (strcmp(name, "--description") == 0)
      a->description = val;
    else if (strcmp(name, "--cluster") == 0)
      a->cluster = val;
    else if (strcmp(name, "--ttl") == 0)
      a->ttl = val;
    else
      return usage_error("unknown flag %s", name);
    if (dur) {
      *dur = parse_duration_ms(val);
      if (*dur <= 0) return usage_error("%s: not a duration (90s, 20m, 1h, 30d)", f);
    }
  }
  if (o->backoff_max_ms < o->backoff_min_ms)
    return usage_error("%s", "--backoff-max must not be below --backoff-min");
  if (!o->replica_id) {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(a->replica_buf, sizeof a->replica_buf, "%s-%d", host, (int)getpid());
    o->replica_id = a->replica_buf;
  }
  return 0;
}

static int need_db(const args *a) {
  if (!a->o.database_url || !*a->o.database_url) {
    fprintf(stderr, "koreo-controlplane: --database-url (or KOREO_DATABASE_URL) is required\n");
    return 2;
  }
  return 0;
}

/* Connect and apply migrations (every subcommand needs the schema). */
static PGconn *connect_migrated(const args *a) {
  char err[2048];
  PGconn *c = cpdb_sync_connect(a->o.database_url, err, sizeof err);
  if (!c) {
    cp_log(CP_ERROR, "%s", err);
    return NULL;
  }
  int n = cpdb_migrate(c, err, sizeof err);
  if (n < 0) {
    cp_log(CP_ERROR, "%s", err);
    PQfinish(c);
    return NULL;
  }
  if (n > 0)
    cp_log(CP_INFO, "applied %d migration(s); schema version %d", n, cpdb_schema_version(c));
  return c;
}

/* ---- migrate --------------------------------------------------------------------- */

static int cmd_migrate(const args *a) {
  if (need_db(a)) return 2;
  PGconn *c = connect_migrated(a);
  if (!c) return 1;
  printf("schema version %d\n", cpdb_schema_version(c));
  PQfinish(c);
  return 0;
}

/* ---- tokens ---------------------------------------------------------------------- */

/* Run cmds (one parameter list each) in one transaction; -1 + log. */
static int exec_tx(PGconn *c, const char *what, size_t n, const char *const *sql,
                   const int *nparams, const char *const *const *params) {
  char err[1024];
  PGresult *r = cpdb_sync_exec(c, "BEGIN", 0, NULL, err, sizeof err);
  for (size_t i = 0; r && i < n; i++) {
    PQclear(r);
    r = cpdb_sync_exec(c, sql[i], nparams[i], params[i], err, sizeof err);
  }
  if (r) {
    PQclear(r);
    r = cpdb_sync_exec(c, "COMMIT", 0, NULL, err, sizeof err);
  }
  if (!r) {
    char e2[256];
    PGresult *rb = cpdb_sync_exec(c, "ROLLBACK", 0, NULL, e2, sizeof e2);
    if (rb) PQclear(rb);
    cp_log(CP_ERROR, "%s: %s", what, err);
    return -1;
  }
  PQclear(r);
  return 0;
}

/* "a,b" -> PostgreSQL text[] literal {"a","b"}; names validated. NULL +
 * log when one is not a cluster name. */
static char *clusters_literal(const char *list) {
  size_t n;
  char **v = split_list(list, &n);
  kv_strbuf b = {0};
  kv_strbuf_putc(&b, '{');
  for (size_t i = 0; i < n; i++) {
    if (!ktls_cluster_name_valid(v[i])) {
      cp_log(CP_ERROR, "--clusters: %s is not a cluster name (DNS-1123 subdomain)", v[i]);
      free_list(v);
      kv_strbuf_free(&b);
      return NULL;
    }
    kv_strbuf_printf(&b, "%s\"%s\"", i ? "," : "", v[i]);
  }
  kv_strbuf_putc(&b, '}');
  free_list(v);
  return kv_strbuf_take(&b, NULL);
}

static int cmd_tokens_create(const args *a) {
  if (need_db(a)) return 2;
  if (!a->role ||
      (strcmp(a->role, "viewer") && strcmp(a->role, "operator") && strcmp(a->role, "admin")))
    return usage_error("tokens create: --role %s: viewer, operator or admin",
                       a->role ? a->role : "(missing)");
  int64_t ttl_ms = 0;
  if (a->ttl && (ttl_ms = parse_duration_ms(a->ttl)) <= 0)
    return usage_error("tokens create: --ttl %s: not a duration", a->ttl);
  char *clusters = NULL;
  if (a->clusters && !(clusters = clusters_literal(a->clusters))) return 2;
  PGconn *c = connect_migrated(a);
  if (!c) {
    free(clusters);
    return 1;
  }
  char id[17], secret[33], hash[65], ttl[32];
  cp_token_new(id, secret, hash);
  snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms / 1000));
  const char *desc = a->description ? a->description : "";
  const char *sql[] = {
      "INSERT INTO api_tokens (id, secret_hash, role, clusters, description, created_by, "
      "expires_at) VALUES ($1, $2, $3, $4::text[], $5, 'cli', "
      "CASE WHEN $6::bigint > 0 THEN now() + $6::bigint * interval '1 second' END)",
      "INSERT INTO audit_log (actor, action, target, detail) VALUES ('cli', 'token.create', $1, "
      "jsonb_build_object('role', $2::text, 'clusters', $3::text[], 'description', $4::text, "
      "'ttlSeconds', $5::bigint))"};
  const char *p0[] = {id, hash, a->role, clusters, desc, ttl};
  const char *p1[] = {id, a->role, clusters, desc, ttl};
  const int np[] = {6, 5};
  const char *const *pp[] = {p0, p1};
  int rc = exec_tx(c, "tokens create", 2, sql, np, pp);
  PQfinish(c);
  free(clusters);
  if (rc != 0) return 1;
  printf("kat.%s.%s\n", id, secret);
  OPENSSL_cleanse(secret, sizeof secret);
  return 0;
}

static int cmd_tokens_bootstrap(const args *a) {
  if (need_db(a)) return 2;
  if (!a->cluster || !ktls_cluster_name_valid(a->cluster))
    return usage_error("tokens bootstrap: --cluster %s: a cluster name (DNS-1123 subdomain)",
                       a->cluster ? a->cluster : "(missing)");
  int64_t ttl_ms = parse_duration_ms(a->ttl ? a->ttl : "1h");
  if (ttl_ms < 1000) return usage_error("tokens bootstrap: --ttl %s: not a duration", a->ttl);
  if (!a->o.pki_dir) return usage_error("%s", "tokens bootstrap: --pki-dir is required");
  char err[2048];
  ktls_ca *ca = NULL;
  char *cert = NULL, *key = NULL;
  if (cp_pki_load(a->o.pki_dir, NULL, 0, &ca, &cert, &key, err, sizeof err) != 0) {
    cp_log(CP_ERROR, "%s", err);
    return 1;
  }
  free(cert);
  OPENSSL_cleanse(key, strlen(key));
  free(key);
  PGconn *c = connect_migrated(a);
  if (!c) {
    ktls_ca_free(ca);
    return 1;
  }
  char id[17], secret[33], hash[65], ttl[32];
  cp_token_new(id, secret, hash);
  snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms / 1000));
  const char *sql[] = {
      "INSERT INTO clusters (name, state) VALUES ($1, 'pending') ON CONFLICT (name) DO NOTHING",
      "INSERT INTO bootstrap_tokens (id, secret_hash, cluster, expires_at, created_by) VALUES "
      "($1, $2, $3, now() + $4::bigint * interval '1 second', 'cli')",
      "INSERT INTO audit_log (actor, action, target, detail) VALUES ('cli', 'token.bootstrap', "
      "$1, jsonb_build_object('id', $2::text, 'ttlSeconds', $3::bigint))"};
  const char *p0[] = {a->cluster};
  const char *p1[] = {id, hash, a->cluster, ttl};
  const char *p2[] = {a->cluster, id, ttl};
  const int np[] = {1, 4, 3};
  const char *const *pp[] = {p0, p1, p2};
  int rc = exec_tx(c, "tokens bootstrap", 3, sql, np, pp);
  PQfinish(c);
  if (rc == 0) printf("kbt.%s.%s.%s\n", id, secret, ktls_ca_pin(ca));
  OPENSSL_cleanse(secret, sizeof secret);
  ktls_ca_free(ca);
  return rc == 0 ? 0 : 1;
}

/* ---- serve ------------------------------------------------------------------------ */

typedef struct server {
  cp_ctx ctx;
  struct event *sigint, *sigterm, *partitions;
  int retention_days;
} server;

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)what;
  server *s = arg;
  cp_log(CP_INFO, "signal %d: shutting down", (int)sig);
  event_base_loopexit(s->ctx.base, NULL);
}

static void on_partitions_done(void *arg, PGresult *res, const char *err) {
  (void)arg;
  if (err)
    cp_log(CP_WARN, "history partitions: %s", err);
  else if (PQntuples(res) == 1 && atoi(PQgetvalue(res, 0, 0)) > 0)
    cp_log(CP_INFO, "history: dropped %s partition(s) past the retention period",
           PQgetvalue(res, 0, 0));
}

/* Hourly (and at start): partitions for yesterday .. tomorrow+1, and drop
 * the ones older than the retention period. */
static void on_partitions(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  server *s = arg;
  char days[16];
  snprintf(days, sizeof days, "%d", s->retention_days);
  const char *p[] = {days};
  cpdb_query(s->ctx.db, "SELECT koreo_ensure_partitions(current_date - 1, 3)", 0, NULL,
             on_partitions_done, NULL);
  cpdb_query(s->ctx.db, "SELECT koreo_drop_partitions(current_date - $1::int)", 1, p,
             on_partitions_done, NULL);
}

static int cmd_serve(const args *a) {
  const cp_options *o = &a->o;
  if (need_db(a)) return 2;
  if (!o->pki_dir) return usage_error("%s", "--pki-dir is required");
  char *hosts[3] = {listen_host(o->agent_listen), listen_host(o->api_listen), NULL};
  if (!hosts[0] || !hosts[1]) {
    free(hosts[0]);
    free(hosts[1]);
    return usage_error("%s", "--agent-listen/--api-listen: HOST:PORT expected");
  }
  /* a wildcard listener is reached by this machine's name */
  char hostname[256] = "";
  gethostname(hostname, sizeof hostname - 1);
  const char **names = calloc(2 + a->n_server_names, sizeof *names);
  if (!names) abort();
  size_t nn = 0;
  for (int i = 0; i < 2; i++) {
    bool wild = !*hosts[i] || strcmp(hosts[i], "0.0.0.0") == 0 || strcmp(hosts[i], "::") == 0;
    names[nn++] = wild ? hostname : hosts[i];
  }
  for (size_t i = 0; i < a->n_server_names; i++)
    names[nn++] = a->server_names[i];
  char err[2048];
  server s = {0};
  char *cert = NULL, *key = NULL;
  int rc = cp_pki_load(o->pki_dir, names, nn, &s.ctx.ca, &cert, &key, err, sizeof err);
  free(names);
  free(hosts[0]);
  free(hosts[1]);
  if (rc != 0) {
    cp_log(CP_ERROR, "%s", err);
    return 1;
  }
  s.retention_days = (int)((o->history_retention_s + 86399) / 86400);
  if (s.retention_days < 1) s.retention_days = 1;

  PGconn *c = connect_migrated(a);
  if (!c) {
    ktls_ca_free(s.ctx.ca);
    free(cert);
    free(key);
    return 1;
  }
  /* partitions before anything can write history */
  PGresult *pr = cpdb_sync_exec(c, "SELECT koreo_ensure_partitions(current_date - 1, 3)", 0, NULL,
                                err, sizeof err);
  if (pr) PQclear(pr);
  PQfinish(c);
  if (!pr) {
    cp_log(CP_ERROR, "history partitions: %s", err);
    ktls_ca_free(s.ctx.ca);
    free(cert);
    free(key);
    return 1;
  }

  s.ctx.base = event_base_new();
  s.ctx.opt = o;
  s.ctx.server_cert_pem = cert;
  s.ctx.server_key_pem = key;
  s.ctx.db = cpdb_new(s.ctx.base, o->database_url, err, sizeof err);
  rc = 1;
  if (!s.ctx.db) {
    cp_log(CP_ERROR, "%s", err);
    goto out;
  }
#ifdef KOREO_CP_ENGINE
  s.ctx.engine = cp_engine_new(&s.ctx, err, sizeof err);
  if (!s.ctx.engine) {
    cp_log(CP_ERROR, "engine: %s", err);
    goto out;
  }
#else
  cp_log(CP_WARN, "built without the engine (controlplane/engine.c): no agent listener");
#endif
#ifdef KOREO_CP_API
  s.ctx.api = cp_api_new(&s.ctx, err, sizeof err);
  if (!s.ctx.api) {
    cp_log(CP_ERROR, "api: %s", err);
    goto out;
  }
#else
  cp_log(CP_WARN, "built without the HTTP API (controlplane/api.c)");
#endif
  s.sigint = evsignal_new(s.ctx.base, SIGINT, on_signal, &s);
  s.sigterm = evsignal_new(s.ctx.base, SIGTERM, on_signal, &s);
  event_add(s.sigint, NULL);
  event_add(s.sigterm, NULL);
  s.partitions = event_new(s.ctx.base, -1, EV_PERSIST, on_partitions, &s);
  struct timeval hour = {3600, 0};
  event_add(s.partitions, &hour);
  on_partitions(-1, 0, &s);
  cp_log(CP_INFO, "koreo-controlplane %s running (agents %s, API %s, history %d days)",
         o->replica_id, o->agent_listen, o->api_listen, s.retention_days);
  event_base_dispatch(s.ctx.base);
  rc = 0;
out:
#ifdef KOREO_CP_API
  if (s.ctx.api) cp_api_free(s.ctx.api);
#endif
#ifdef KOREO_CP_ENGINE
  if (s.ctx.engine) {
    cp_engine_free(s.ctx.engine);
    /* cp_engine_free queued queries that hand claimed work back: let them
     * finish (at most 2 s) so another replica takes it at once */
    for (int i = 0; i < 200 && cpdb_connected(s.ctx.db) && cpdb_queue_length(s.ctx.db) > 0; i++) {
      event_base_loop(s.ctx.base, EVLOOP_NONBLOCK);
      usleep(10000);
    }
  }
#endif
  if (s.partitions) event_free(s.partitions);
  if (s.sigint) event_free(s.sigint);
  if (s.sigterm) event_free(s.sigterm);
  cpdb_free(s.ctx.db);
  event_base_free(s.ctx.base);
  ktls_ca_free(s.ctx.ca);
  free(cert);
  if (key) OPENSSL_cleanse(key, strlen(key));
  free(key);
  return rc;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  int i = 1;
  const char *cmd = "serve", *sub = NULL;
  if (i < argc && argv[i][0] != '-') cmd = argv[i++];
  if (strcmp(cmd, "tokens") == 0) {
    if (i >= argc || argv[i][0] == '-') {
      fprintf(stderr, "koreo-controlplane tokens: create or bootstrap?\n%s", USAGE);
      return 2;
    }
    sub = argv[i++];
  }
  args a = {0};
  int rc = parse_args(argc, argv, i, &a);
  if (rc == 1) {
    fputs(USAGE, stdout);
    free_list(a.ns);
    free_list(a.server_names);
    return 0;
  }
  if (rc == 0) {
    cp_log_setup(a.o.log_json, a.level);
    if (strcmp(cmd, "serve") == 0)
      rc = cmd_serve(&a);
    else if (strcmp(cmd, "migrate") == 0)
      rc = cmd_migrate(&a);
    else if (strcmp(cmd, "tokens") == 0 && strcmp(sub, "create") == 0)
      rc = cmd_tokens_create(&a);
    else if (strcmp(cmd, "tokens") == 0 && strcmp(sub, "bootstrap") == 0)
      rc = cmd_tokens_bootstrap(&a);
    else {
      fprintf(stderr, "koreo-controlplane: unknown command %s%s%s\n%s", cmd, sub ? " " : "",
              sub ? sub : "", USAGE);
      rc = 2;
    }
  }
  free_list(a.ns);
  free_list(a.server_names);
  return rc;
}
