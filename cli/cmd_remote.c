/*
 * cli/cmd_remote.c: koreoctl's remote commands against koreo-controlplane's
 * HTTP API (issue 6 item 7, docs/koreoctl-remote.md):
 *
 *   koreoctl apply -f PATH...
 *   koreoctl get definitions [KIND/NAME [-n NS]] [--kind KIND] | clusters | triggers
 *   koreoctl delete definition KIND/NAME [-n NS]
 *   koreoctl executions list [--workflow W] [--cluster C] [--trigger T] [--outcome O]
 *                            [--since T] [--until T] [--limit N]
 *   koreoctl executions show ID
 *   koreoctl tokens bootstrap --cluster NAME [--ttl 1h]
 *   koreoctl tokens create --role R [--clusters a,b] [--ttl D] [--description TEXT]
 *   koreoctl tokens revoke ID
 *
 * Common: --server URL, --token TOKEN, --ca-file FILE (or KOREO_SERVER,
 * KOREO_TOKEN, KOREO_CA_FILE, or the config file), -o table|json|yaml.
 * Exit 0; 1 when the server refused (its message on stderr) or could not
 * be reached; 2 for usage errors.
 */
#include "remote.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "koreo/json.h"

/* ------------------------------------------------------------- arguments */

typedef struct args {
  const char *cmd;
  char **pos;
  size_t npos;
  const char **fname, **fval; /* flags in order: name (without dashes) and value */
  size_t nflag;
  const char *output;
  remote_cfg cfg;
  bool resolved; /* cfg completed from the environment and config file */
} args;

static void usage_remote(FILE *f) {
  fputs("remote commands (against koreo-controlplane; docs/koreoctl-remote.md):\n"
        "  apply -f PATH...                     Apply definition files/directories as one batch.\n"
        "  get definitions [KIND/NAME [-n NS]] [--kind KIND]\n"
        "  get clusters | get triggers [--cluster C] [--kind K]\n"
        "  delete definition KIND/NAME [-n NS]\n"
        "  executions list [--workflow W] [--cluster C] [--trigger [KIND/]NS/NAME]\n"
        "                  [--outcome O] [--since T] [--until T] [--limit N]\n"
        "  executions show ID\n"
        "  tokens bootstrap --cluster NAME [--ttl 1h]\n"
        "  tokens revoke ID\n"
        "  tokens create --role viewer|operator|admin [--clusters a,b] [--ttl D] "
        "[--description T]\n"
        "options: --server URL --token TOKEN --ca-file FILE (or KOREO_SERVER, KOREO_TOKEN,\n"
        "  KOREO_CA_FILE, or ~/.config/koreo/config.yaml), -o table|json|yaml\n",
        f);
}

static int usage_error(const char *cmd, const char *fmt, const char *arg) {
  fprintf(stderr, "koreoctl %s: ", cmd);
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  usage_remote(stderr);
  return 2;
}

/* The last value of flag `name`, or NULL. */
static const char *flag(const args *a, const char *name) {
  const char *v = NULL;
  for (size_t i = 0; i < a->nflag; i++)
    if (!strcmp(a->fname[i], name)) v = a->fval[i];
  return v;
}

/* Parse argv: every option takes a value (--name VALUE, --name=VALUE, -x VALUE).
 * `allowed` lists the command's own options (space separated, without dashes). */
static int parse_args(args *a, int argc, char **argv, const char *allowed) {
  a->pos = calloc((size_t)argc + 1, sizeof *a->pos);
  a->fname = calloc((size_t)argc + 1, sizeof *a->fname);
  a->fval = calloc((size_t)argc + 1, sizeof *a->fval);
  if (!a->pos || !a->fname || !a->fval) kv_oom();
  a->output = "table";
  for (int i = 0; i < argc; i++) {
    char *s = argv[i];
    if (s[0] != '-' || !s[1]) {
      a->pos[a->npos++] = s;
      continue;
    }
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
      usage_remote(stdout);
      return 1;
    }
    const char *name = s + (s[1] == '-' ? 2 : 1);
    char buf[64];
    const char *val = NULL;
    const char *eq = strchr(name, '=');
    if (eq) {
      snprintf(buf, sizeof buf, "%.*s", (int)(eq - name), name);
      name = buf;
      val = eq + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      return usage_error(a->cmd, "option %s needs a value", s);
    }
    static const char *common[] = {"server", "token", "ca-file", "o", "output"};
    bool ok = false;
    for (size_t k = 0; k < 5; k++)
      ok |= !strcmp(name, common[k]);
    if (!ok) {
      size_t nl = strlen(name);
      for (const char *p = allowed; p && *p;) {
        size_t wl = strcspn(p, " ");
        if (wl == nl && !strncmp(p, name, nl)) ok = true;
        p += wl;
        p += strspn(p, " ");
      }
    }
    if (!ok) return usage_error(a->cmd, "unknown option '%s'", s);
    a->fname[a->nflag] = strdup(name);
    a->fval[a->nflag++] = val;
  }
  const char *o = flag(a, "o") ? flag(a, "o") : flag(a, "output");
  if (o) {
    if (strcmp(o, "table") && strcmp(o, "json") && strcmp(o, "yaml"))
      return usage_error(a->cmd, "-o %s: expected table, json or yaml", o);
    a->output = o;
  }
  if (flag(a, "server")) a->cfg.server = strdup(flag(a, "server"));
  if (flag(a, "token")) a->cfg.token = strdup(flag(a, "token"));
  if (flag(a, "ca-file")) a->cfg.ca_file = strdup(flag(a, "ca-file"));
  return 0;
}

static void args_free(args *a) {
  for (size_t i = 0; i < a->nflag; i++)
    free((char *)a->fname[i]);
  free(a->pos);
  free(a->fname);
  free(a->fval);
  remote_cfg_free(&a->cfg);
}

/* "90s", "20m", "1h", "30d", "2h30m", or plain seconds -> seconds; -1 when malformed. */
static long long parse_duration(const char *s) {
  if (!s || !*s) return -1;
  long long total = 0;
  const char *p = s;
  while (*p) {
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 0) return -1;
    long long mult = 1;
    switch (*end) {
    case 0: mult = 1; break;
    case 's':
      mult = 1;
      end++;
      break;
    case 'm':
      mult = 60;
      end++;
      break;
    case 'h':
      mult = 3600;
      end++;
      break;
    case 'd':
      mult = 86400;
      end++;
      break;
    default: return -1;
    }
    total += v * mult;
    p = end;
  }
  return total;
}

/* --since/--until: RFC 3339 as is, or a duration meaning that long ago. */
static char *time_arg(const char *s) {
  long long d = parse_duration(s);
  if (d < 0) return strdup(s);
  time_t t = time(NULL) - (time_t)d;
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return strdup(buf);
}

/* ------------------------------------------------------------ requests */

/* Send and check (completing the settings on first use): returns the
 * answer with status < 400, or NULL after printing the error (*rc set to 1). */
static remote_resp *call(args *a, const char *method, const char *path, const char *body,
                         size_t len, const char *ctype, int *rc) {
  if (!a->resolved) {
    if (remote_cfg_resolve(&a->cfg) != 0) {
      *rc = 1;
      return NULL;
    }
    a->resolved = true;
  }
  remote_resp *r = calloc(1, sizeof *r);
  if (!r) kv_oom();
  if (remote_request(&a->cfg, method, path, body, len, ctype, r) != 0) {
    free(r);
    *rc = 1;
    return NULL;
  }
  if (r->status >= 400 || !r->json) {
    if (r->status < 400)
      fprintf(stderr, "koreoctl: the server answered HTTP %ld with a body that is not JSON\n",
              r->status);
    else
      remote_print_error(r);
    remote_resp_free(r);
    free(r);
    *rc = 1;
    return NULL;
  }
  return r;
}

static void resp_done(remote_resp *r) {
  remote_resp_free(r);
  free(r);
}

static bool structured(const args *a, const kv *v) {
  if (!strcmp(a->output, "json")) {
    remote_print_json(stdout, v);
    return true;
  }
  if (!strcmp(a->output, "yaml")) {
    remote_print_yaml(stdout, v);
    return true;
  }
  return false;
}

static const char *sget(const kv *m, const char *key) {
  kv *v = m && m->kind == KV_MAP ? kv_map_get_str(m, key) : NULL;
  return v && v->kind == KV_STRING ? kv_str(v) : NULL;
}

/* A table row from cells (each malloc'ed text, taken). */
static void row_add(kv *rows, size_t n, char **cells) {
  kv *row = kv_list_new(n);
  for (size_t i = 0; i < n; i++)
    kv_list_push(row, kv_string_take(cells[i], strlen(cells[i])));
  kv_list_push(rows, row);
}

static char *field(const kv *m, const char *key) {
  return remote_cell(m && m->kind == KV_MAP ? kv_map_get_str(m, key) : NULL);
}

/* ---------------------------------------------------------------- apply */

typedef struct batch {
  kv_strbuf text;
  /* per file: its name and first line in the stream */
  char **files;
  size_t *first_line;
  size_t nfiles;
  size_t lines; /* lines so far */
} batch;

static bool has_suffix(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

static size_t count_lines(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += s[i] == '\n';
  return c;
}

static void batch_put(batch *b, const char *s, size_t n) {
  kv_strbuf_put(&b->text, s, n);
  b->lines += count_lines(s, n);
}

static int add_file(batch *b, const char *path) {
  kv_parse_error pe = {0};
  size_t len;
  char *text = kv_read_file(path, &len, &pe);
  if (!text) {
    fprintf(stderr, "koreoctl apply: %s: %s\n", path, pe.msg);
    return -1;
  }
  int rc = 0;
  bool json = has_suffix(path, ".json");
  kv *docs = json ? kv_json_parse(text, len, &pe) : kv_yaml_parse(text, len, path, &pe);
  if (!docs) {
    fprintf(stderr, "koreoctl apply: %s:%u:%u: %s\n", path, pe.line, pe.col, pe.msg);
    free(text);
    return -1;
  }
  b->files = realloc(b->files, (b->nfiles + 1) * sizeof *b->files);
  b->first_line = realloc(b->first_line, (b->nfiles + 1) * sizeof *b->first_line);
  if (!b->files || !b->first_line) kv_oom();
  if (b->text.len) batch_put(b, "---\n", 4);
  b->files[b->nfiles] = strdup(path);
  b->first_line[b->nfiles++] = b->lines + 1;
  if (json) {
    /* one JSON document per line: a JSON list holds several */
    bool many = docs->kind == KV_LIST;
    size_t n = many ? kv_len(docs) : 1;
    for (size_t i = 0; i < n; i++) {
      size_t jl;
      char *j = kv_json_write(many ? kv_list_at(docs, i) : docs, 0, &jl);
      if (i) batch_put(b, "---\n", 4);
      batch_put(b, j, jl);
      batch_put(b, "\n", 1);
      free(j);
    }
  } else {
    batch_put(b, text, len);
    if (len && text[len - 1] != '\n') batch_put(b, "\n", 1);
  }
  kv_unref(docs);
  free(text);
  return rc;
}

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

static int add_path(batch *b, const char *path, bool named, int depth) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "koreoctl apply: %s: no such file or directory\n", path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (named || has_suffix(path, ".yaml") || has_suffix(path, ".yml") || has_suffix(path, ".json"))
      return add_file(b, path);
    return 0;
  }
  if (depth > 32) return 0;
  DIR *d = opendir(path);
  if (!d) {
    fprintf(stderr, "koreoctl apply: %s: cannot read the directory\n", path);
    return -1;
  }
  char **names = NULL;
  size_t n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    names = realloc(names, (n + 1) * sizeof *names);
    if (!names) kv_oom();
    names[n++] = kv_asprintf("%s/%s", path, e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp_str);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    if (rc == 0) rc = add_path(b, names[i], false, depth + 1);
    free(names[i]);
  }
  free(names);
  return rc;
}

/* Where a line of the stream came from. */
static void where(const batch *b, long line, const char **file, long *fline) {
  *file = NULL;
  *fline = 0;
  for (size_t i = 0; i < b->nfiles; i++)
    if ((long)b->first_line[i] <= line) {
      *file = b->files[i];
      *fline = line - (long)b->first_line[i] + 1;
    }
}

static void print_diagnostics(const batch *b, const kv *json) {
  kv *ds = json && json->kind == KV_MAP ? kv_map_get_str(json, "diagnostics") : NULL;
  if (!ds || ds->kind != KV_LIST) return;
  for (size_t i = 0; i < kv_len(ds); i++) {
    kv *d = kv_list_at(ds, i);
    kv *ln = kv_map_get_str(d, "line"), *col = kv_map_get_str(d, "column");
    long line = ln && ln->kind == KV_INT ? (long)ln->u.i : 0;
    const char *file;
    long fline;
    where(b, line, &file, &fline);
    if (file && line)
      fprintf(stderr, "%s:%ld:%lld: ", file, fline,
              col && col->kind == KV_INT ? (long long)col->u.i : 0LL);
    else
      fputs("  ", stderr);
    const char *kind = sget(d, "kind"), *name = sget(d, "name"), *path = sget(d, "path"),
               *msg = sget(d, "message");
    if (kind && name) fprintf(stderr, "%s/%s: ", kind, name);
    if (path) fprintf(stderr, "%s: ", path);
    fprintf(stderr, "%s\n", msg ? msg : "?");
  }
}

static int cmd_apply(args *a) {
  batch b = {0};
  int rc = 0;
  size_t npaths = 0;
  for (size_t i = 0; i < a->nflag && rc == 0; i++)
    if (!strcmp(a->fname[i], "f") || !strcmp(a->fname[i], "filename")) {
      rc = add_path(&b, a->fval[i], true, 0);
      npaths++;
    }
  for (size_t i = 0; i < a->npos && rc == 0; i++) {
    rc = add_path(&b, a->pos[i], true, 0);
    npaths++;
  }
  if (rc == 0 && npaths == 0)
    rc = usage_error("apply", "%s", "give the files with -f PATH");
  else if (rc == 0 && b.text.len == 0) {
    fputs("koreoctl apply: no .yaml, .yml or .json files found\n", stderr);
    rc = 1;
  }
  if (rc == 0 && remote_cfg_resolve(&a->cfg) != 0) rc = 1;
  if (rc == 0) {
    remote_resp r = {0};
    if (remote_request(&a->cfg, "POST", "/api/v1/definitions", b.text.p, b.text.len,
                       "application/yaml", &r) != 0)
      rc = 1;
    else if (r.status >= 400 || !r.json) {
      remote_print_error(&r);
      print_diagnostics(&b, r.json);
      rc = 1;
    } else if (!structured(a, r.json)) {
      kv *rows = kv_list_new(4);
      kv *ap = kv_map_get_str(r.json, "applied");
      for (size_t i = 0; ap && i < kv_len(ap); i++) {
        kv *e = kv_list_at(ap, i);
        kv *ch = kv_map_get_str(e, "changed"), *gen = kv_map_get_str(e, "generation");
        bool changed = ch && ch->kind == KV_BOOL && ch->u.b;
        const char *res = !changed                                      ? "unchanged"
                          : gen && gen->kind == KV_INT && gen->u.i == 1 ? "created"
                                                                        : "configured";
        char *cells[5] = {field(e, "kind"), field(e, "namespace"), field(e, "name"),
                          field(e, "generation"), strdup(res)};
        row_add(rows, 5, cells);
      }
      static const char *h[] = {"KIND", "NAMESPACE", "NAME", "GENERATION", "RESULT"};
      remote_print_table(stdout, h, 5, rows);
      kv_unref(rows);
      kv *sk = kv_map_get_str(r.json, "skipped");
      for (size_t i = 0; sk && i < kv_len(sk); i++) {
        kv *s = kv_list_at(sk, i);
        fprintf(stderr, "skipped: %s %s %s: %s\n",
                sget(s, "apiVersion") ? sget(s, "apiVersion") : "?",
                sget(s, "kind") ? sget(s, "kind") : "?", sget(s, "name") ? sget(s, "name") : "?",
                sget(s, "reason") ? sget(s, "reason") : "");
      }
    }
    remote_resp_free(&r);
  }
  for (size_t i = 0; i < b.nfiles; i++)
    free(b.files[i]);
  free(b.files);
  free(b.first_line);
  kv_strbuf_free(&b.text);
  return rc < 0 ? 1 : rc;
}

/* ------------------------------------------------------------------ get */

/* KIND/NAME (+ -n NS, default "default") into an escaped path tail. */
static char *definition_path(args *a, const char *ref) {
  const char *slash = strchr(ref, '/');
  if (!slash || slash == ref || !slash[1] || strchr(slash + 1, '/')) return NULL;
  char *kind = strndup(ref, (size_t)(slash - ref));
  const char *ns = flag(a, "n")           ? flag(a, "n")
                   : flag(a, "namespace") ? flag(a, "namespace")
                                          : "default";
  char *ek = remote_escape(kind), *en = remote_escape(ns), *em = remote_escape(slash + 1);
  char *p = kv_asprintf("/api/v1/definitions/%s/%s/%s", ek, en, em);
  free(kind);
  free(ek);
  free(en);
  free(em);
  return p;
}

static int get_definitions(args *a) {
  int rc = 0;
  char *path;
  bool one = a->npos > 1;
  if (one) {
    path = definition_path(a, a->pos[1]);
    if (!path) return usage_error("get", "'%s': expected KIND/NAME", a->pos[1]);
  } else if (flag(a, "kind")) {
    char *k = remote_escape(flag(a, "kind"));
    path = kv_asprintf("/api/v1/definitions?kind=%s", k);
    free(k);
  } else {
    path = strdup("/api/v1/definitions");
  }
  remote_resp *r = call(a, "GET", path, NULL, 0, NULL, &rc);
  free(path);
  if (!r) return rc;
  if (!structured(a, r->json)) {
    kv *rows = kv_list_new(4);
    if (one) {
      kv *gens = kv_map_get_str(r->json, "generations");
      char *gen = field(r->json, "generation");
      printf("%s %s/%s (generation %s)\n\n", sget(r->json, "kind"), sget(r->json, "namespace"),
             sget(r->json, "name"), gen);
      free(gen);
      for (size_t i = 0; gens && i < kv_len(gens); i++) {
        kv *g = kv_list_at(gens, i);
        char *cells[5] = {field(g, "generation"), field(g, "contentHash"), field(g, "deleted"),
                          field(g, "appliedBy"), field(g, "appliedAt")};
        row_add(rows, 5, cells);
      }
      static const char *h[] = {"GENERATION", "CONTENT-HASH", "DELETED", "APPLIED-BY",
                                "APPLIED-AT"};
      remote_print_table(stdout, h, 5, rows);
    } else {
      kv *items = kv_map_get_str(r->json, "items");
      for (size_t i = 0; items && i < kv_len(items); i++) {
        kv *e = kv_list_at(items, i);
        char *cells[6] = {field(e, "kind"),       field(e, "namespace"), field(e, "name"),
                          field(e, "generation"), field(e, "appliedBy"), field(e, "appliedAt")};
        row_add(rows, 6, cells);
      }
      static const char *h[] = {"KIND",       "NAMESPACE",  "NAME",
                                "GENERATION", "APPLIED-BY", "APPLIED-AT"};
      remote_print_table(stdout, h, 6, rows);
    }
    kv_unref(rows);
  }
  resp_done(r);
  return rc;
}

static int get_list(args *a, const char *what) {
  int rc = 0;
  kv_strbuf p = {0};
  kv_strbuf_printf(&p, "/api/v1/%s", what);
  const char *q[2] = {"cluster", "kind"};
  char sep = '?';
  for (int i = 0; i < 2 && !strcmp(what, "triggers"); i++)
    if (flag(a, q[i])) {
      char *e = remote_escape(flag(a, q[i]));
      kv_strbuf_printf(&p, "%c%s=%s", sep, q[i], e);
      sep = '&';
      free(e);
    }
  remote_resp *r = call(a, "GET", p.p, NULL, 0, NULL, &rc);
  kv_strbuf_free(&p);
  if (!r) return rc;
  if (!structured(a, r->json)) {
    kv *rows = kv_list_new(4), *items = kv_map_get_str(r->json, "items");
    for (size_t i = 0; items && i < kv_len(items); i++) {
      kv *e = kv_list_at(items, i);
      if (!strcmp(what, "clusters")) {
        char *cells[6] = {field(e, "name"),         field(e, "state"),   field(e, "lastHeartbeat"),
                          field(e, "agentVersion"), field(e, "replica"), field(e, "stateReason")};
        row_add(rows, 6, cells);
      } else {
        char *cells[7] = {field(e, "cluster"),         field(e, "kind"),
                          field(e, "namespace"),       field(e, "name"),
                          field(e, "resourceVersion"), field(e, "lastOutcome"),
                          field(e, "updatedAt")};
        row_add(rows, 7, cells);
      }
    }
    if (!strcmp(what, "clusters")) {
      static const char *h[] = {"NAME",          "STATE",   "LAST-HEARTBEAT",
                                "AGENT-VERSION", "REPLICA", "REASON"};
      remote_print_table(stdout, h, 6, rows);
    } else {
      static const char *h[] = {"CLUSTER",          "KIND",         "NAMESPACE", "NAME",
                                "RESOURCE-VERSION", "LAST-OUTCOME", "UPDATED-AT"};
      remote_print_table(stdout, h, 7, rows);
    }
    kv_unref(rows);
  }
  resp_done(r);
  return rc;
}

static int cmd_get(args *a) {
  if (a->npos < 1) return usage_error("get", "%s", "what? definitions, clusters or triggers");
  const char *w = a->pos[0];
  if (!strcmp(w, "definitions") || !strcmp(w, "definition") || !strcmp(w, "defs"))
    return get_definitions(a);
  if (a->npos > 1) return usage_error("get", "unexpected argument '%s'", a->pos[1]);
  if (!strcmp(w, "clusters") || !strcmp(w, "cluster")) return get_list(a, "clusters");
  if (!strcmp(w, "triggers") || !strcmp(w, "trigger")) return get_list(a, "triggers");
  return usage_error("get", "unknown resource '%s': definitions, clusters or triggers", w);
}

/* --------------------------------------------------------------- delete */

static int cmd_delete(args *a) {
  if (a->npos != 2 || (strcmp(a->pos[0], "definition") && strcmp(a->pos[0], "definitions")))
    return usage_error("delete", "%s", "expected: delete definition KIND/NAME [-n NAMESPACE]");
  char *path = definition_path(a, a->pos[1]);
  if (!path) return usage_error("delete", "'%s': expected KIND/NAME", a->pos[1]);
  int rc = 0;
  remote_resp *r = call(a, "DELETE", path, NULL, 0, NULL, &rc);
  free(path);
  if (!r) return rc;
  if (!structured(a, r->json)) {
    kv *d = kv_map_get_str(r->json, "deleted");
    char *gen = field(d, "generation");
    printf("%s %s/%s deleted (generation %s)\n", sget(d, "kind"), sget(d, "namespace"),
           sget(d, "name"), gen);
    free(gen);
  }
  resp_done(r);
  return rc;
}

/* ----------------------------------------------------------- executions */

static char *trigger_text(const kv *t) {
  return kv_asprintf("%s/%s/%s", sget(t, "kind") ? sget(t, "kind") : "?",
                     sget(t, "namespace") ? sget(t, "namespace") : "",
                     sget(t, "name") ? sget(t, "name") : "?");
}

static char *duration_text(const kv *m) {
  kv *d = m ? kv_map_get_str(m, "durationMs") : NULL;
  double ms = !d ? 0 : d->kind == KV_DOUBLE ? d->u.d : d->kind == KV_INT ? (double)d->u.i : 0;
  return ms >= 1000 ? kv_asprintf("%.2fs", ms / 1000) : kv_asprintf("%.0fms", ms);
}

static int executions_list(args *a) {
  long limit = 50;
  if (flag(a, "limit")) {
    char *end;
    limit = strtol(flag(a, "limit"), &end, 10);
    if (*end || limit < 1)
      return usage_error("executions list", "--limit %s: expected a positive number",
                         flag(a, "limit"));
  }
  kv_strbuf base = {0};
  kv_strbuf_puts(&base, "/api/v1/executions?");
  static const char *names[] = {"workflow", "cluster", "trigger", "outcome", "since", "until"};
  for (int i = 0; i < 6; i++) {
    const char *v = flag(a, names[i]);
    if (!v) continue;
    char *t = i >= 4 ? time_arg(v) : strdup(v);
    char *e = remote_escape(t);
    kv_strbuf_printf(&base, "%s=%s&", names[i], e);
    free(e);
    free(t);
  }
  int rc = 0;
  kv *all = kv_list_new(16);
  kv *next = kv_null();
  char *cursor = NULL;
  while ((long)kv_len(all) < limit) {
    long want = limit - (long)kv_len(all);
    kv_strbuf p = {0};
    kv_strbuf_printf(&p, "%slimit=%ld", base.p, want > 500 ? 500 : want);
    if (cursor) kv_strbuf_printf(&p, "&cursor=%s", cursor);
    remote_resp *r = call(a, "GET", p.p, NULL, 0, NULL, &rc);
    kv_strbuf_free(&p);
    free(cursor);
    cursor = NULL;
    if (!r) break;
    kv *items = kv_map_get_str(r->json, "items");
    for (size_t i = 0; items && i < kv_len(items); i++)
      kv_list_push(all, kv_ref(kv_list_at(items, i)));
    kv *nc = kv_map_get_str(r->json, "nextCursor");
    kv_unref(next);
    next = nc ? kv_ref(nc) : kv_null();
    if (nc && nc->kind == KV_STRING) cursor = remote_escape(kv_str(nc));
    resp_done(r);
    if (!cursor) break;
  }
  free(cursor);
  kv_strbuf_free(&base);
  if (rc == 0) {
    kv *out = kv_map_new(2);
    kv_map_set_str(out, "items", kv_ref(all));
    kv_map_set_str(out, "nextCursor", kv_ref(next));
    if (!structured(a, out)) {
      kv *rows = kv_list_new(kv_len(all));
      for (size_t i = 0; i < kv_len(all); i++) {
        kv *e = kv_list_at(all, i);
        char *cells[9] = {field(e, "id"),      field(e, "workflow"),
                          field(e, "cluster"), trigger_text(kv_map_get_str(e, "trigger")),
                          field(e, "outcome"), field(e, "startedAt"),
                          duration_text(e),    field(e, "repeatCount"),
                          field(e, "message")};
        row_add(rows, 9, cells);
      }
      static const char *h[] = {"ID",      "WORKFLOW", "CLUSTER", "TRIGGER", "OUTCOME",
                                "STARTED", "DURATION", "REPEAT",  "MESSAGE"};
      remote_print_table(stdout, h, 9, rows);
      kv_unref(rows);
    }
    kv_unref(out);
  }
  kv_unref(all);
  kv_unref(next);
  return rc;
}

static int executions_show(args *a) {
  if (a->npos != 2) return usage_error("executions show", "%s", "expected: executions show ID");
  char *id = remote_escape(a->pos[1]);
  char *path = kv_asprintf("/api/v1/executions/%s", id);
  free(id);
  int rc = 0;
  remote_resp *r = call(a, "GET", path, NULL, 0, NULL, &rc);
  free(path);
  if (!r) return rc;
  kv *e = r->json;
  if (!structured(a, e)) {
    static const char *keys[] = {"id",         "workflow",    "cluster",   "outcome",
                                 "message",    "location",    "startedAt", "finishedAt",
                                 "lastSeenAt", "repeatCount", "replica"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
      char *v = field(e, keys[i]);
      printf("%-12s %s\n", keys[i], v);
      free(v);
      if (i == 2) {
        char *t = trigger_text(kv_map_get_str(e, "trigger"));
        printf("%-12s %s\n", "trigger", t);
        free(t);
      }
    }
    char *d = duration_text(e);
    printf("%-12s %s\n", "duration", d);
    free(d);
    kv *st = kv_map_get_str(e, "state");
    if (st && st->kind != KV_NULL) {
      char *s = kv_json_write(st, 0, NULL);
      printf("%-12s %s\n", "state", s);
      free(s);
    }
    printf("\nSTEPS\n");
    kv *steps = kv_map_get_str(e, "steps"), *rows = kv_list_new(4);
    for (size_t i = 0; steps && i < kv_len(steps); i++) {
      kv *s = kv_list_at(steps, i);
      char *cells[5] = {field(s, "label"), field(s, "outcome"), duration_text(s),
                        field(s, "resourceIds"), field(s, "message")};
      row_add(rows, 5, cells);
    }
    static const char *h[] = {"LABEL", "OUTCOME", "DURATION", "RESOURCES", "MESSAGE"};
    remote_print_table(stdout, h, 5, rows);
    kv_unref(rows);
  }
  resp_done(r);
  return rc;
}

static int cmd_executions(args *a) {
  if (a->npos >= 1 && !strcmp(a->pos[0], "list")) {
    if (a->npos > 1) return usage_error("executions list", "unexpected argument '%s'", a->pos[1]);
    return executions_list(a);
  }
  if (a->npos >= 1 && !strcmp(a->pos[0], "show")) return executions_show(a);
  return usage_error("executions", "%s", "expected 'list' or 'show ID'");
}

/* --------------------------------------------------------------- tokens */

static int print_token(args *a, remote_resp *r) {
  if (!structured(a, r->json)) {
    printf("%s\n", sget(r->json, "token") ? sget(r->json, "token") : "");
    const char *exp = sget(r->json, "expiresAt");
    fprintf(stderr, "token %s%s%s\n", sget(r->json, "cluster") ? "for cluster " : "created",
            sget(r->json, "cluster") ? sget(r->json, "cluster") : "", exp ? "" : " (no expiry)");
    if (exp) fprintf(stderr, "expires at %s\n", exp);
  }
  resp_done(r);
  return 0;
}

/* koreoctl tokens revoke ID|kat.ID.SECRET */
static int cmd_tokens_revoke(args *a) {
  if (a->npos != 2)
    return usage_error("tokens revoke", "%s", "expected the token's id (or the token itself)");
  char id[64];
  const char *t = a->pos[1];
  if (strncmp(t, "kat.", 4) == 0) t += 4; /* the whole token: its id is the part after kat. */
  snprintf(id, sizeof id, "%.*s", (int)strcspn(t, "."), t);
  char *path = kv_asprintf("/api/v1/tokens/%s", id);
  int rc = 0;
  remote_resp *r = call(a, "DELETE", path, NULL, 0, NULL, &rc);
  free(path);
  if (!r) return rc;
  if (!structured(a, r->json)) printf("token %s revoked\n", id);
  resp_done(r);
  return 0;
}

static int cmd_tokens(args *a) {
  if (a->npos == 2 && !strcmp(a->pos[0], "revoke")) return cmd_tokens_revoke(a);
  if (a->npos != 1 || (strcmp(a->pos[0], "bootstrap") && strcmp(a->pos[0], "create")))
    return usage_error("tokens", "%s",
                       "expected 'bootstrap --cluster NAME', 'create --role R' or 'revoke ID'");
  bool boot = !strcmp(a->pos[0], "bootstrap");
  kv *body = kv_map_new(4);
  int rc = 0;
  const char *ttl = flag(a, "ttl");
  long long secs = ttl ? parse_duration(ttl) : (boot ? 3600 : 0);
  if (secs < 0)
    rc = usage_error("tokens", "--ttl %s: expected a duration such as 1h, 30m, 7d", ttl);
  if (boot && rc == 0) {
    if (!flag(a, "cluster"))
      rc = usage_error("tokens bootstrap", "%s", "--cluster NAME is required");
    else {
      kv_map_set_str(body, "cluster", kv_cstring(flag(a, "cluster")));
      kv_map_set_str(body, "ttlSeconds", kv_int(secs));
    }
  } else if (rc == 0) {
    if (!flag(a, "role"))
      rc = usage_error("tokens create", "%s", "--role viewer|operator|admin is required");
    else {
      kv_map_set_str(body, "role", kv_cstring(flag(a, "role")));
      if (flag(a, "clusters")) {
        kv *l = kv_list_new(2);
        char *copy = strdup(flag(a, "clusters"));
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
          if (*t) kv_list_push(l, kv_cstring(t));
        free(copy);
        kv_map_set_str(body, "clusters", l);
      }
      kv_map_set_str(body, "ttlSeconds", kv_int(secs));
      if (flag(a, "description"))
        kv_map_set_str(body, "description", kv_cstring(flag(a, "description")));
    }
  }
  if (rc == 0) {
    size_t len;
    char *json = kv_json_write(body, 0, &len);
    remote_resp *r = call(a, "POST", boot ? "/api/v1/tokens/bootstrap" : "/api/v1/tokens", json,
                          len, "application/json", &rc);
    free(json);
    if (r) rc = print_token(a, r);
  }
  kv_unref(body);
  return rc;
}

/* ------------------------------------------------------------- dispatch */

/* cmd_remote: see remote.h. */
int cmd_remote(const char *cmd, int argc, char **argv) {
  args a = {.cmd = cmd};
  const char *allowed = !strcmp(cmd, "apply")    ? "f filename"
                        : !strcmp(cmd, "get")    ? "kind cluster n namespace"
                        : !strcmp(cmd, "delete") ? "n namespace"
                        : !strcmp(cmd, "executions")
                            ? "workflow cluster trigger outcome since until limit"
                        : !strcmp(cmd, "tokens") ? "cluster ttl role clusters description"
                                                 : "";
  int rc = parse_args(&a, argc, argv, allowed);
  if (rc == 1) {
    args_free(&a);
    return 0; /* --help */
  }
  if (rc == 0) {
    if (!strcmp(cmd, "apply"))
      rc = cmd_apply(&a);
    else if (!strcmp(cmd, "get"))
      rc = cmd_get(&a);
    else if (!strcmp(cmd, "delete"))
      rc = cmd_delete(&a);
    else if (!strcmp(cmd, "executions"))
      rc = cmd_executions(&a);
    else if (!strcmp(cmd, "tokens"))
      rc = cmd_tokens(&a);
    else
      rc = usage_error(cmd, "%s", "unknown remote command");
  }
  args_free(&a);
  return rc;
}
