/*
 * controlplane/api_definitions.c: the definition endpoints of the HTTP API
 * (issue 6 item 3, docs/http-api.md "Definitions"):
 *   POST   /api/v1/definitions                          apply a batch
 *   GET    /api/v1/definitions[?kind=]                  list the current ones
 *   GET    /api/v1/definitions/{kind}/{namespace}/{name} one, with generations
 *   DELETE /api/v1/definitions/{kind}/{namespace}/{name} delete (new generation)
 * A batch is validated as a whole together with the stored definitions (a
 * fresh kdef_registry: stored sources, then the new documents, then
 * kdef_registry_check); any error in a new document answers 422 with
 * diagnostics and stores nothing.  Otherwise one SQL statement inserts the
 * changed generations, the audit_log rows and the koreo_definitions
 * notifications, so all of them commit together.
 */
#include "api_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/definition.h"
#include "koreo/json.h"

#define BATCH_FILE "request"

/* ------------------------------------------------------------- diagnostics */

typedef struct diag_out {
  kv_strbuf json; /* the "diagnostics" list items, comma separated */
  size_t n;
  char *first; /* the first one as text, for the error message */
} diag_out;

/* Add one diagnostic: document index (-1: unknown), position, kind/name, path. */
static void diag_add(diag_out *o, long doc, uint32_t line, uint32_t col, const char *kind,
                     const char *name, const char *path, const char *msg) {
  kv_strbuf *b = &o->json;
  if (o->n++) kv_strbuf_puts(b, ", ");
  kv_strbuf_puts(b, "{\"document\": ");
  if (doc >= 0)
    kv_strbuf_printf(b, "%ld", doc);
  else
    kv_strbuf_puts(b, "null");
  kv_strbuf_printf(b, ", \"line\": %u, \"column\": %u, \"kind\": ", line, col);
  if (kind)
    api_json_str(b, kind);
  else
    kv_strbuf_puts(b, "null");
  kv_strbuf_puts(b, ", \"name\": ");
  if (name)
    api_json_str(b, name);
  else
    kv_strbuf_puts(b, "null");
  kv_strbuf_puts(b, ", \"path\": ");
  if (path)
    api_json_str(b, path);
  else
    kv_strbuf_puts(b, "null");
  kv_strbuf_puts(b, ", \"message\": ");
  api_json_str(b, msg);
  kv_strbuf_puts(b, "}");
  if (!o->first) {
    kv_strbuf t = {0};
    if (doc >= 0) kv_strbuf_printf(&t, "document %ld", doc);
    if (kind && name) kv_strbuf_printf(&t, "%s%s %s", t.len ? " (" : "", kind, name);
    if (kind && name && doc >= 0) kv_strbuf_putc(&t, ')');
    if (line) kv_strbuf_printf(&t, "%sline %u, column %u", t.len ? ", " : "", line, col);
    if (path) kv_strbuf_printf(&t, "%s%s", t.len ? ", " : "", path);
    kv_strbuf_printf(&t, "%s%s", t.len ? ": " : "", msg);
    o->first = kv_strbuf_take(&t, NULL);
  }
}

static void diag_reply(api_req *r, diag_out *o, size_t ndocs) {
  kv_strbuf b = {0};
  kv_strbuf_puts(&b, "{\"error\": {\"code\": \"invalid_definition\", \"message\": ");
  char *msg = kv_asprintf("%zu problem%s in the batch of %zu document%s; nothing was stored. "
                          "First: %s",
                          o->n, o->n == 1 ? "" : "s", ndocs, ndocs == 1 ? "" : "s",
                          o->first ? o->first : "?");
  api_json_str(&b, msg);
  free(msg);
  kv_strbuf_puts(&b, "}, \"diagnostics\": [");
  if (o->json.p) kv_strbuf_puts(&b, o->json.p);
  kv_strbuf_puts(&b, "]}");
  api_reply(r, 422, b.p);
  kv_strbuf_free(&b);
  kv_strbuf_free(&o->json);
  free(o->first);
}

/* ------------------------------------------------------------------ batch */

/* r->work for an apply: {"docs": [entry...], "skipped": [...], "count": N}
 * where entry = {"index", "kind", "namespace", "name", "hash", "doc", "line"}. */

static kv *str_at(const kv *m, const char *key) {
  kv *v = m && m->kind == KV_MAP ? kv_map_get_str(m, key) : NULL;
  return v && v->kind == KV_STRING ? v : NULL;
}

/* The document with metadata.namespace set to "default" when absent (new
 * reference; the same document when it has one). */
static kv *with_namespace(kv *doc) {
  kv *md = kv_map_get_str(doc, "metadata");
  if (str_at(md, "namespace")) return kv_ref(doc);
  kv *nmd = kv_map_new(kv_len(md) + 1);
  for (size_t i = 0; i < kv_len(md); i++)
    kv_map_set(nmd, kv_ref(kv_map_key_at(md, i)), kv_ref(kv_map_val_at(md, i)));
  kv_map_set_str(nmd, "namespace", kv_cstring("default"));
  if (kv_pos(md)) kv_set_pos(nmd, kv_pos(md)->file, kv_pos(md)->line, kv_pos(md)->col);
  kv *nd = kv_map_new(kv_len(doc));
  for (size_t i = 0; i < kv_len(doc); i++) {
    kv *k = kv_map_key_at(doc, i);
    bool is_md = k->kind == KV_STRING && strcmp(kv_str(k), "metadata") == 0;
    kv_map_set(nd, kv_ref(k), is_md ? kv_ref(nmd) : kv_ref(kv_map_val_at(doc, i)));
  }
  kv_unref(nmd);
  if (kv_pos(doc)) kv_set_pos(nd, kv_pos(doc)->file, kv_pos(doc)->line, kv_pos(doc)->col);
  return nd;
}

static char *content_hash(const kv *doc) {
  char h[72];
  cp_definition_hash(doc, h);
  return strdup(h);
}

/* Parse the body into the list of documents (new reference), or NULL after
 * replying. */
static kv *parse_batch(api_req *r) {
  size_t len;
  const char *body = api_body(r, &len);
  size_t sp = strspn(body, " \t\r\n");
  if (sp == len) {
    api_error(r, 400,
              "empty request body: send definitions as multi-document YAML, a JSON "
              "document or a JSON list");
    return NULL;
  }
  kv_parse_error pe = {0};
  kv *docs = kv_yaml_parse(body, len, BATCH_FILE, &pe);
  if (!docs && (body[sp] == '{' || body[sp] == '[')) {
    kv_parse_error je = {0};
    kv *j = kv_json_parse(body, len, &je);
    if (j) {
      docs = kv_list_new(1);
      kv_list_push(docs, j);
    }
  }
  if (!docs) {
    diag_out o = {0};
    diag_add(&o, -1, pe.line, pe.col, NULL, NULL, NULL, pe.msg);
    diag_reply(r, &o, 0);
    return NULL;
  }
  if (kv_len(docs) == 1 && kv_list_at(docs, 0)->kind == KV_LIST) {
    kv *inner = kv_ref(kv_list_at(docs, 0));
    kv_unref(docs);
    docs = inner;
  }
  return docs;
}

static void apply_stored(void *arg, PGresult *res, const char *err);

/* api_definitions_apply: see api_impl.h. */
void api_definitions_apply(api_req *r) {
  kv *docs = parse_batch(r);
  if (!docs) return;
  size_t n = kv_len(docs);
  diag_out o = {0};
  kv *entries = kv_list_new(n), *skipped = kv_list_new(0);
  for (size_t i = 0; i < n; i++) {
    kv *d = kv_list_at(docs, i);
    uint32_t line = kv_pos(d) ? kv_pos(d)->line : 0, col = kv_pos(d) ? kv_pos(d)->col : 0;
    if (d->kind == KV_NULL) continue; /* an empty document ("---" at the end) */
    if (d->kind != KV_MAP) {
      char *m = kv_asprintf("expected a mapping (a Kubernetes-style object), got %s",
                            kv_kind_name(d->kind));
      diag_add(&o, (long)i, line, col, NULL, NULL, NULL, m);
      free(m);
      continue;
    }
    kv *av = str_at(d, "apiVersion"), *kd = str_at(d, "kind");
    kv *md = kv_map_get_str(d, "metadata");
    kv *nm = str_at(md, "name");
    if (!av || strncmp(kv_str(av), "koreo.dev/", 10) != 0) {
      kv *s = kv_map_new(4);
      kv_map_set_str(s, "document", kv_int((int64_t)i));
      kv_map_set_str(s, "apiVersion", av ? kv_ref(av) : kv_null());
      kv_map_set_str(s, "kind", kd ? kv_ref(kd) : kv_null());
      kv_map_set_str(s, "name", nm ? kv_ref(nm) : kv_null());
      kv_map_set_str(s, "reason", kv_cstring("not a Koreo definition (apiVersion koreo.dev/...)"));
      kv_list_push(skipped, s);
      continue;
    }
    const char *kname = kd ? kv_str(kd) : NULL;
    if (strcmp(kv_str(av), "koreo.dev/v1beta1") != 0) {
      char *m = kv_asprintf("apiVersion '%s' is not supported: use koreo.dev/v1beta1", kv_str(av));
      diag_add(&o, (long)i, line, col, kname, nm ? kv_str(nm) : NULL, "apiVersion", m);
      free(m);
      continue;
    }
    if (!kd || kdef_kind_from_name(kv_str(kd)) == KDEF_KIND_NONE) {
      char *m = kv_asprintf("kind %s%s%s is not a Koreo kind (ValueFunction, ResourceFunction, "
                            "ResourceTemplate, Workflow, FunctionTest)",
                            kd ? "'" : "", kd ? kv_str(kd) : "(missing)", kd ? "'" : "");
      diag_add(&o, (long)i, line, col, kname, nm ? kv_str(nm) : NULL, "kind", m);
      free(m);
      continue;
    }
    if (!nm || !*kv_str(nm)) {
      diag_add(&o, (long)i, line, col, kname, NULL, "metadata.name",
               "metadata.name is missing or empty");
      continue;
    }
    kv *ns = md ? kv_map_get_str(md, "namespace") : NULL;
    if (ns && (ns->kind != KV_STRING || !*kv_str(ns))) {
      diag_add(&o, (long)i, line, col, kname, kv_str(nm), "metadata.namespace",
               "metadata.namespace must be a non-empty string when given");
      continue;
    }
    kv *nd = with_namespace(d);
    const char *nsname = kv_str(str_at(kv_map_get_str(nd, "metadata"), "namespace"));
    for (size_t j = 0; j < kv_len(entries); j++) {
      kv *e = kv_list_at(entries, j);
      if (!strcmp(kv_str(kv_map_get_str(e, "kind")), kname) &&
          !strcmp(kv_str(kv_map_get_str(e, "namespace")), nsname) &&
          !strcmp(kv_str(kv_map_get_str(e, "name")), kv_str(nm))) {
        char *m = kv_asprintf("%s %s/%s appears twice in the batch (documents %lld and %zu)", kname,
                              nsname, kv_str(nm), (long long)kv_map_get_str(e, "index")->u.i, i);
        diag_add(&o, (long)i, line, col, kname, kv_str(nm), NULL, m);
        free(m);
      }
    }
    char *hash = content_hash(nd);
    kv *e = kv_map_new(8);
    kv_map_set_str(e, "index", kv_int((int64_t)i));
    kv_map_set_str(e, "kind", kv_ref(kd));
    kv_map_set_str(e, "namespace", kv_cstring(nsname));
    kv_map_set_str(e, "name", kv_ref(nm));
    kv_map_set_str(e, "hash", kv_string_take(hash, strlen(hash)));
    kv_map_set_str(e, "doc", nd);
    kv_map_set_str(e, "line", kv_int(line));
    kv_list_push(entries, e);
  }
  if (o.n) {
    kv_unref(entries);
    kv_unref(skipped);
    kv_unref(docs);
    diag_reply(r, &o, n);
    return;
  }
  kv *w = kv_map_new(3);
  kv_map_set_str(w, "docs", entries);
  kv_map_set_str(w, "skipped", skipped);
  kv_map_set_str(w, "count", kv_int((int64_t)n));
  r->work = w;
  kv_unref(docs);
  if (kv_len(entries) == 0) {
    kv_strbuf b = {0};
    char *sj = kv_json_write(skipped, 0, NULL);
    kv_strbuf_printf(&b, "{\"applied\": [], \"skipped\": %s}", sj);
    free(sj);
    api_reply(r, 200, b.p);
    kv_strbuf_free(&b);
    return;
  }
  api_query(r,
            "SELECT kind, namespace, name, source::text FROM current_definitions WHERE NOT "
            "deleted",
            0, NULL, apply_stored);
}

/* The batch entry a diagnostic belongs to: by kind + name, else by the line
 * range of the documents in the request; -1 when it concerns a stored one. */
static long diag_entry(const kv *entries, const kdef_diag *d) {
  if (d->kind != KDEF_KIND_NONE && d->name) {
    for (size_t j = 0; j < kv_len(entries); j++) {
      kv *e = kv_list_at(entries, j);
      if (!strcmp(kv_str(kv_map_get_str(e, "kind")), kdef_kind_name(d->kind)) &&
          !strcmp(kv_str(kv_map_get_str(e, "name")), d->name))
        return (long)j;
    }
  }
  if (d->file && !strcmp(d->file, BATCH_FILE) && d->line) {
    long best = -1;
    for (size_t j = 0; j < kv_len(entries); j++)
      if (kv_map_get_str(kv_list_at(entries, j), "line")->u.i <= (int64_t)d->line) best = (long)j;
    return best;
  }
  return -1;
}

static const char SQL_APPLY[] =
    "WITH input AS (SELECT d->>'kind' AS kind, d->>'namespace' AS ns, d->>'name' AS name, "
    "d->>'hash' AS hash, d->'source' AS source, ord FROM json_array_elements($1::json) WITH "
    "ORDINALITY AS t(d, ord)), "
    "cur AS (SELECT i.*, c.generation AS cur_gen, c.content_hash AS cur_hash, c.deleted AS "
    "cur_deleted FROM input i LEFT JOIN current_definitions c ON c.kind = i.kind AND "
    "c.namespace = i.ns AND c.name = i.name), "
    "ins AS (INSERT INTO definitions (kind, namespace, name, generation, content_hash, source, "
    "applied_by) SELECT kind, ns, name, COALESCE(cur_gen, 0) + 1, hash, source, $2::text FROM cur "
    "WHERE cur_gen IS NULL OR cur_deleted OR cur_hash <> hash RETURNING kind, namespace, name, "
    "generation), "
    "aud AS (INSERT INTO audit_log (actor, action, target, detail) SELECT $2::text, "
    "'definition.apply', kind || '/' || namespace || '/' || name, jsonb_build_object("
    "'generation', generation) FROM ins RETURNING 1), "
    "ntf AS (SELECT pg_notify('koreo_definitions', kind || '/' || namespace || '/' || name) FROM "
    "ins) "
    "SELECT c.ord, COALESCE(i.generation, c.cur_gen), i.generation IS NOT NULL, "
    "(SELECT count(*) FROM aud), (SELECT count(*) FROM ntf) FROM cur c LEFT JOIN ins i ON "
    "i.kind = c.kind AND i.namespace = c.ns AND i.name = c.name ORDER BY c.ord";

static void on_applied(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "storing the definitions")) return;
  kv *entries = kv_map_get_str(r->work, "docs");
  if ((size_t)PQntuples(res) != kv_len(entries)) {
    api_error(r, 500, "storing the definitions: %d result rows for %zu documents", PQntuples(res),
              kv_len(entries));
    return;
  }
  kv_strbuf b = {0};
  kv_strbuf_puts(&b, "{\"applied\": [");
  size_t changed = 0;
  for (int i = 0; i < PQntuples(res); i++) {
    long ord = strtol(PQgetvalue(res, i, 0), NULL, 10);
    kv *e = kv_list_at(entries, (size_t)(ord - 1));
    bool ch = PQgetvalue(res, i, 2)[0] == 't';
    changed += ch;
    if (i) kv_strbuf_puts(&b, ", ");
    kv_strbuf_puts(&b, "{\"kind\": ");
    api_json_str(&b, kv_str(kv_map_get_str(e, "kind")));
    kv_strbuf_puts(&b, ", \"namespace\": ");
    api_json_str(&b, kv_str(kv_map_get_str(e, "namespace")));
    kv_strbuf_puts(&b, ", \"name\": ");
    api_json_str(&b, kv_str(kv_map_get_str(e, "name")));
    kv_strbuf_printf(&b, ", \"generation\": %s, \"contentHash\": ", PQgetvalue(res, i, 1));
    api_json_str(&b, kv_str(kv_map_get_str(e, "hash")));
    kv_strbuf_printf(&b, ", \"changed\": %s}", ch ? "true" : "false");
  }
  char *sj = kv_json_write(kv_map_get_str(r->work, "skipped"), 0, NULL);
  kv_strbuf_printf(&b, "], \"skipped\": %s}", sj);
  free(sj);
  cp_log(CP_INFO, "api: token %s applied %zu definition(s), %zu changed", r->token_id,
         kv_len(entries), changed);
  api_reply(r, 200, b.p);
  kv_strbuf_free(&b);
}

static bool same_key(const kv *e, const char *kind, const char *ns, const char *name) {
  return !strcmp(kv_str(kv_map_get_str(e, "kind")), kind) &&
         !strcmp(kv_str(kv_map_get_str(e, "namespace")), ns) &&
         !strcmp(kv_str(kv_map_get_str(e, "name")), name);
}

/* The stored definitions arrived: validate the batch against them. */
static void apply_stored(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "reading the stored definitions")) return;
  kv *entries = kv_map_get_str(r->work, "docs");
  kdef_registry *reg = kdef_registry_new();
  const cp_options *opt = r->api->ctx->opt;
  if (opt && opt->n_namespaces)
    kdef_registry_set_namespaces(reg, opt->namespaces, opt->n_namespaces);
  for (int i = 0; i < PQntuples(res); i++) {
    bool replaced = false;
    for (size_t j = 0; j < kv_len(entries) && !replaced; j++)
      replaced = same_key(kv_list_at(entries, j), PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                          PQgetvalue(res, i, 2));
    if (replaced || PQgetisnull(res, i, 3)) continue;
    kv_parse_error pe = {0};
    const char *src = PQgetvalue(res, i, 3);
    kv *doc = kv_json_parse(src, strlen(src), &pe);
    if (!doc) continue;
    kdef_registry_put(reg, doc, NULL, NULL);
    kv_unref(doc);
  }
  kdef_diags diags = {0};
  for (size_t j = 0; j < kv_len(entries); j++)
    kdef_registry_put(reg, kv_map_get_str(kv_list_at(entries, j), "doc"), NULL, &diags);
  kdef_registry_check(reg, &diags);
  diag_out o = {0};
  for (size_t k = 0; k < diags.n; k++) {
    const kdef_diag *d = &diags.items[k];
    if (d->warning) continue;
    long j = diag_entry(entries, d);
    if (j < 0) continue;
    kv *e = kv_list_at(entries, (size_t)j);
    bool dup = false; /* put and check may report the same problem */
    for (size_t m = 0; m < k && !dup; m++) {
      const kdef_diag *x = &diags.items[m];
      dup = !x->warning && x->line == d->line && x->col == d->col && x->kind == d->kind &&
            !strcmp(x->message ? x->message : "", d->message ? d->message : "");
    }
    if (dup) continue;
    diag_add(&o, (long)kv_map_get_str(e, "index")->u.i, d->line, d->col,
             kv_str(kv_map_get_str(e, "kind")), kv_str(kv_map_get_str(e, "name")), d->path,
             d->message ? d->message : "invalid");
  }
  kdef_diags_free(&diags);
  kdef_registry_free(reg);
  if (o.n) {
    diag_reply(r, &o, (size_t)kv_map_get_str(r->work, "count")->u.i);
    return;
  }
  kv *input = kv_list_new(kv_len(entries));
  for (size_t j = 0; j < kv_len(entries); j++) {
    kv *e = kv_list_at(entries, j), *x = kv_map_new(5);
    kv_map_set_str(x, "kind", kv_ref(kv_map_get_str(e, "kind")));
    kv_map_set_str(x, "namespace", kv_ref(kv_map_get_str(e, "namespace")));
    kv_map_set_str(x, "name", kv_ref(kv_map_get_str(e, "name")));
    kv_map_set_str(x, "hash", kv_ref(kv_map_get_str(e, "hash")));
    kv_map_set_str(x, "source", kv_ref(kv_map_get_str(e, "doc")));
    kv_list_push(input, x);
  }
  char *json = kv_json_write(input, 0, NULL);
  kv_unref(input);
  const char *p[2] = {json, r->token_id};
  api_query(r, SQL_APPLY, 2, p, on_applied);
  free(json);
}

/* ------------------------------------------------------------ list, one */

/* A known kind, or false after replying 400. */
static bool check_kind(api_req *r, const char *kind) {
  if (kdef_kind_from_name(kind) != KDEF_KIND_NONE) return true;
  api_error(r, 400,
            "kind '%s' is not a Koreo kind (ValueFunction, ResourceFunction, ResourceTemplate, "
            "Workflow, FunctionTest)",
            kind);
  return false;
}

#define DEF_FIELDS                                                                                 \
  "'kind', kind, 'namespace', namespace, 'name', name, 'generation', generation, "                 \
  "'contentHash', content_hash, 'appliedBy', applied_by, 'appliedAt', " API_TS("applied_at")

static const char SQL_LIST[] =
    "SELECT json_build_object('items', COALESCE(json_agg(json_build_object(" DEF_FIELDS
    ") ORDER BY kind, namespace, name), '[]'::json))::text FROM current_definitions WHERE NOT "
    "deleted AND ($1::text IS NULL OR kind = $1)";

static void on_list(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "listing the definitions")) return;
  api_reply(r, 200, PQgetvalue(res, 0, 0));
}

/* api_definitions_list: see api_impl.h. */
void api_definitions_list(api_req *r) {
  const char *kind = api_param(r, "kind");
  if (kind && !check_kind(r, kind)) return;
  const char *p[1] = {kind};
  api_query(r, SQL_LIST, 1, p, on_list);
}

static const char SQL_ONE[] =
    "WITH g AS (SELECT * FROM definitions WHERE kind = $1 AND namespace = $2 AND name = $3), "
    "cur AS (SELECT * FROM g ORDER BY generation DESC LIMIT 1) "
    "SELECT deleted, generation, json_build_object(" DEF_FIELDS ", 'source', source, "
    "'generations', (SELECT json_agg(json_build_object('generation', g.generation, "
    "'contentHash', g.content_hash, 'deleted', g.deleted, 'appliedBy', g.applied_by, "
    "'appliedAt', " API_TS("g.applied_at") ") ORDER BY g.generation DESC) FROM g))::text FROM cur";

static void on_one(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "reading the definition")) return;
  if (PQntuples(res) == 0)
    api_error(r, 404, "definition %s %s/%s not found", r->seg[3], r->seg[4], r->seg[5]);
  else if (PQgetvalue(res, 0, 0)[0] == 't')
    api_error(r, 404, "definition %s %s/%s was deleted (generation %s)", r->seg[3], r->seg[4],
              r->seg[5], PQgetvalue(res, 0, 1));
  else
    api_reply(r, 200, PQgetvalue(res, 0, 2));
}

/* api_definition_get: see api_impl.h. */
void api_definition_get(api_req *r, const char *kind, const char *ns, const char *name) {
  if (!check_kind(r, kind)) return;
  const char *p[3] = {kind, ns, name};
  api_query(r, SQL_ONE, 3, p, on_one);
}

static const char SQL_DELETE[] =
    "WITH cur AS (SELECT * FROM current_definitions WHERE kind = $1 AND namespace = $2 AND name "
    "= $3 AND NOT deleted), "
    "ins AS (INSERT INTO definitions (kind, namespace, name, generation, content_hash, source, "
    "deleted, applied_by) SELECT kind, namespace, name, generation + 1, '', NULL, true, $4::text "
    "FROM cur RETURNING *), "
    "aud AS (INSERT INTO audit_log (actor, action, target, detail) SELECT $4::text, "
    "'definition.delete', kind || '/' || namespace || '/' || name, jsonb_build_object("
    "'generation', generation) FROM ins RETURNING 1), "
    "ntf AS (SELECT pg_notify('koreo_definitions', kind || '/' || namespace || '/' || name) FROM "
    "ins) "
    "SELECT json_build_object('deleted', json_build_object(" DEF_FIELDS "))::text, "
    "(SELECT count(*) FROM aud), (SELECT count(*) FROM ntf) FROM ins";

static void on_deleted(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "deleting the definition")) return;
  if (PQntuples(res) == 0) {
    api_error(r, 404, "definition %s %s/%s not found", r->seg[3], r->seg[4], r->seg[5]);
    return;
  }
  cp_log(CP_INFO, "api: token %s deleted %s %s/%s", r->token_id, r->seg[3], r->seg[4], r->seg[5]);
  api_reply(r, 200, PQgetvalue(res, 0, 0));
}

/* api_definition_delete: see api_impl.h. */
void api_definition_delete(api_req *r, const char *kind, const char *ns, const char *name) {
  if (!check_kind(r, kind)) return;
  const char *p[4] = {kind, ns, name, r->token_id};
  api_query(r, SQL_DELETE, 4, p, on_deleted);
}
