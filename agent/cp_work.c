/*
 * agent/cp_work.c: DefinitionPush cache + registry, ApplyRequest execution
 * with a result cache, and StatusUpdate writing for control-plane mode
 * (agent/cp_work.h).
 */
#include "cp_work.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "koreo/eval.h"
#include "koreo/json.h"
#include "koreo/outcome.h"
#include "koreo/value.h"
#include "standalone.h"
#include "status_write.h"

/* One registry built from a set of definition documents; runs in flight
 * keep theirs across a push. */
typedef struct defset {
  int refs;
  kdef_registry *reg;
  kv *docs; /* hash -> document */
} defset;

typedef struct cached_result {
  char *request_id;
  uint8_t *packed; /* the ApplyResult, protobuf-encoded */
  size_t len;
} cached_result;

typedef struct apply apply;
typedef struct su su;

struct kcw {
  struct event_base *base;
  kube_client *kc;
  ksession *s;
  char *dir;       /* <state-dir>/definitions */
  long timeout_ms; /* default apply deadline */
  long retry_ms;   /* status write backoff start */
  char **hashes;   /* cached hashes (Hello) */
  size_t n_hashes;
  defset *cur; /* registry of the current set, NULL until known */
  uint64_t generation;
  cached_result *results; /* ring */
  size_t n_results, cap_results, next_result;
  apply *running; /* applies in flight */
  su *sus;        /* status updates being written or waiting to retry */
  bool closing;
  kcw_stats st;
};

struct apply {
  apply *next;
  kcw *w; /* NULL once kcw_free ran */
  int refs;
  defset *ds;
  koreo_eval_ctx ctx;
  koreo_owner owner;
  kv *owner_ref, *inputs;
  char *request_id, *run_id, *step_label, *location, *owner_ns;
  bool in_for_each;
  uint32_t for_each_index;
  koreo_run *run;
  struct event *deadline;
  bool finished;
};

static char *xstrdup(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) kv_oom();
  return d;
}

static const kv *getp(const kv *m, const char *k) {
  return m && m->kind == KV_MAP ? kv_map_get_str(m, k) : NULL;
}

static const char *str_of(const kv *v) { return v && v->kind == KV_STRING ? kv_str(v) : NULL; }

/* The text at key k of map m, "" when absent (borrowed; for protobuf
 * string fields, which must not be NULL). */
static char *str_or_empty(const kv *m, const char *k) {
  const char *s = str_of(getp(m, k));
  return (char *)(s ? s : "");
}

/* Point a bytes field at the text s (borrowed; NULL leaves it empty). */
static void set_bytes(ProtobufCBinaryData *b, const char *s) {
  if (!s) return;
  b->data = (uint8_t *)s;
  b->len = strlen(s);
}

/* ManagedResource fields from a resource id map of spec 5.1 (borrowed). */
static void fill_managed(Koreo__Agent__V1__ManagedResource *mr, const kv *rid) {
  mr->api_version = str_or_empty(rid, "apiVersion");
  mr->kind = str_or_empty(rid, "kind");
  mr->namespace_ = str_or_empty(rid, "namespace");
  mr->name = str_or_empty(rid, "name");
  const kv *ro = getp(rid, "readonly");
  mr->readonly = ro && ro->kind == KV_BOOL && ro == kv_bool(true);
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- files */

/* "sha256:<64 hex>" -> the file name part, or NULL when malformed (a hash
 * never becomes a path with '/' or "..") */
static const char *hash_hex(const char *hash) {
  if (!hash || strncmp(hash, "sha256:", 7) != 0) return NULL;
  const char *h = hash + 7;
  size_t n = strlen(h);
  if (n != 64) return NULL;
  for (size_t i = 0; i < n; i++)
    if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) return NULL;
  return h;
}

static char *def_path(const kcw *w, const char *hex) {
  return kv_asprintf("%s/%s.json", w->dir, hex);
}

/* Write `len` bytes to `path` atomically (temporary file, fsync, rename),
 * mode 0600.  false with errno on failure. */
static bool write_atomic(const char *path, const void *data, size_t len) {
  char *tmp = kv_asprintf("%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  bool ok = fd >= 0;
  const char *p = data;
  size_t left = len;
  while (ok && left) {
    ssize_t n = write(fd, p, left);
    if (n <= 0)
      ok = false;
    else {
      p += n;
      left -= (size_t)n;
    }
  }
  if (fd >= 0) {
    if (ok && fsync(fd) != 0) ok = false;
    close(fd);
  }
  if (ok && rename(tmp, path) != 0) ok = false;
  if (!ok) unlink(tmp);
  free(tmp);
  return ok;
}

static void hashes_free(kcw *w) {
  for (size_t i = 0; i < w->n_hashes; i++)
    free(w->hashes[i]);
  free(w->hashes);
  w->hashes = NULL;
  w->n_hashes = 0;
}

/* Rescan definitions/ for <hex>.json files. */
static void hashes_scan(kcw *w) {
  hashes_free(w);
  DIR *d = opendir(w->dir);
  if (!d) return;
  struct dirent *e;
  size_t cap = 0;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n != 64 + 5 || strcmp(e->d_name + 64, ".json") != 0) continue;
    char *h = kv_asprintf("sha256:%.64s", e->d_name);
    if (!hash_hex(h)) {
      free(h);
      continue;
    }
    if (w->n_hashes == cap) {
      cap = cap ? cap * 2 : 16;
      w->hashes = realloc(w->hashes, cap * sizeof *w->hashes);
      if (!w->hashes) kv_oom();
    }
    w->hashes[w->n_hashes++] = h;
  }
  closedir(d);
}

/* The cached document of `hash` (new reference) or NULL. */
static kv *doc_load(const kcw *w, const char *hash) {
  const char *hex = hash_hex(hash);
  if (!hex) return NULL;
  char *path = def_path(w, hex);
  size_t len = 0;
  kv_parse_error pe = {0};
  char *text = kv_read_file(path, &len, &pe);
  kv *doc = text ? kv_json_parse(text, len, &pe) : NULL;
  if (text && !doc) agent_log(AGENT_ERROR, "definition cache %s: %s", path, pe.msg);
  free(text);
  free(path);
  return doc;
}

/* "sha256:" + hex SHA-256 of `text` into out[72]. */
static void sha256_hash(const char *text, size_t len, char out[72]) {
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL);
  memcpy(out, "sha256:", 7);
  for (unsigned i = 0; i < 32; i++)
    snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

/* ---------------------------------------------------------------- registry */

static void defset_unref(defset *d) {
  if (d && --d->refs == 0) {
    kdef_registry_free(d->reg);
    kv_unref(d->docs);
    free(d);
  }
}

/* A registry from `hashes` (documents from the cache; a missing one is
 * logged) plus `extra` (hash + document, may be NULL) put last. */
static defset *defset_build(kcw *w, char *const *hashes, size_t n, const char *extra_hash,
                            kv *extra) {
  defset *d = calloc(1, sizeof *d);
  if (!d) kv_oom();
  d->refs = 1;
  d->reg = kdef_registry_new();
  d->docs = kv_map_new(n + 1);
  kdef_diags diags = {0};
  size_t missing = 0;
  for (size_t i = 0; i < n; i++) {
    kv *doc = doc_load(w, hashes[i]);
    if (!doc) {
      missing++;
      agent_log(AGENT_ERROR, "definition %s of the current set is not cached", hashes[i]);
      continue;
    }
    kdef_registry_put(d->reg, doc, NULL, &diags);
    kv_map_set_str(d->docs, hashes[i], doc);
  }
  if (extra) {
    kdef_registry_put(d->reg, extra, NULL, &diags);
    kv_map_set_str(d->docs, extra_hash, kv_ref(extra));
  }
  kdef_registry_check(d->reg, &diags);
  for (size_t i = 0; i < diags.n; i++) {
    char *s = kdef_diag_format(&diags.items[i]);
    agent_log(diags.items[i].warning ? AGENT_WARN : AGENT_ERROR, "definitions: %s", s);
    free(s);
  }
  if (!extra)
    agent_log(AGENT_INFO,
              "definition set generation %llu: %zu Workflows, %zu ResourceFunctions, %zu "
              "ValueFunctions, %zu ResourceTemplates (%zu errors, %zu missing)",
              (unsigned long long)w->generation, kdef_registry_count(d->reg, KDEF_WORKFLOW),
              kdef_registry_count(d->reg, KDEF_RESOURCE_FUNCTION),
              kdef_registry_count(d->reg, KDEF_VALUE_FUNCTION),
              kdef_registry_count(d->reg, KDEF_RESOURCE_TEMPLATE), kdef_diags_errors(&diags),
              missing);
  kdef_diags_free(&diags);
  return d;
}

static char *current_path(const kcw *w) { return kv_asprintf("%s/current.json", w->dir); }

/* Make `hashes` the current set (generation gen): persist, rebuild. */
static void set_current(kcw *w, char *const *hashes, size_t n, uint64_t gen, bool persist) {
  w->generation = gen;
  if (persist) {
    kv *o = kv_map_new(2), *l = kv_list_new(n);
    for (size_t i = 0; i < n; i++)
      kv_list_push(l, kv_cstring(hashes[i]));
    kv_map_set_str(o, "generation", kv_uint(gen));
    kv_map_set_str(o, "hashes", l);
    size_t len = 0;
    char *text = kv_json_write(o, 0, &len);
    char *path = current_path(w);
    if (!write_atomic(path, text, len))
      agent_log(AGENT_ERROR, "saving %s: %s", path, strerror(errno));
    free(path);
    free(text);
    kv_unref(o);
  }
  defset *d = defset_build(w, hashes, n, NULL, NULL);
  defset_unref(w->cur);
  w->cur = d;
}

static void current_load(kcw *w) {
  char *path = current_path(w);
  size_t len = 0;
  kv_parse_error pe = {0};
  char *text = kv_read_file(path, &len, &pe);
  kv *o = text ? kv_json_parse(text, len, &pe) : NULL;
  free(text);
  const kv *l = getp(o, "hashes");
  const kv *g = getp(o, "generation");
  if (l && l->kind == KV_LIST) {
    size_t n = kv_len(l);
    char **hs = calloc(n ? n : 1, sizeof *hs);
    if (!hs) kv_oom();
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (str_of(kv_list_at(l, i))) hs[k++] = (char *)kv_str(kv_list_at(l, i));
    uint64_t gen = g && g->kind == KV_INT ? (uint64_t)g->u.i : g && g->kind == KV_UINT ? g->u.u : 0;
    set_current(w, hs, k, gen, false);
    free(hs);
  } else if (o) {
    agent_log(AGENT_ERROR, "%s: not a definition set (ignored)", path);
  }
  kv_unref(o);
  free(path);
}

/* ---------------------------------------------------------------- DefinitionPush */

void kcw_definition_push(kcw *w, const Koreo__Agent__V1__DefinitionPush *p) {
  w->st.pushes++;
  size_t stored = 0;
  for (size_t i = 0; i < p->n_definitions; i++) {
    const Koreo__Agent__V1__Definition *d = p->definitions[i];
    const char *hex = hash_hex(d->content_hash);
    if (!hex) {
      agent_log(AGENT_ERROR, "DefinitionPush: %s %s: malformed content hash '%s' (dropped)",
                d->kind, d->name, d->content_hash);
      continue;
    }
    kv_parse_error pe = {0};
    kv *doc = kv_json_parse((const char *)d->source.data, d->source.len, &pe);
    if (!doc || doc->kind != KV_MAP) {
      agent_log(AGENT_ERROR, "DefinitionPush: %s %s (%s): source is not a JSON object: %s", d->kind,
                d->name, d->content_hash, doc ? "wrong type" : pe.msg);
      kv_unref(doc);
      continue;
    }
    /* the hash is over the compact JSON of the document (docs/agent-protocol.md) */
    size_t clen = 0;
    char *canon = kv_json_write(doc, 0, &clen);
    char h[72];
    sha256_hash(canon, clen, h);
    if (strcmp(h, d->content_hash) != 0)
      agent_log(AGENT_WARN, "DefinitionPush: %s %s: content hash %s does not match the source (%s)",
                d->kind, d->name, d->content_hash, h);
    char *path = def_path(w, hex);
    if (!write_atomic(path, canon, clen))
      agent_log(AGENT_ERROR, "caching definition %s %s at %s: %s", d->kind, d->name, path,
                strerror(errno));
    else
      stored++;
    free(path);
    free(canon);
    kv_unref(doc);
  }
  w->st.definitions_cached += stored;
  /* retire hashes that are not current */
  for (size_t i = 0; i < p->n_retire_hashes; i++) {
    const char *hex = hash_hex(p->retire_hashes[i]);
    bool current = false;
    for (size_t j = 0; j < p->n_current_hashes && !current; j++)
      current = strcmp(p->current_hashes[j], p->retire_hashes[i]) == 0;
    if (!hex || current) continue;
    char *path = def_path(w, hex);
    unlink(path);
    free(path);
  }
  hashes_scan(w);
  if (p->generation || p->n_current_hashes) {
    if (p->generation && w->cur && p->generation < w->generation) {
      agent_log(AGENT_WARN, "DefinitionPush generation %llu is older than %llu (set ignored)",
                (unsigned long long)p->generation, (unsigned long long)w->generation);
    } else {
      set_current(w, p->current_hashes, p->n_current_hashes, p->generation, true);
    }
  }
  agent_log(AGENT_INFO, "DefinitionPush: %zu definitions cached, %zu retired, %zu current", stored,
            p->n_retire_hashes, p->n_current_hashes);
}

/* ---------------------------------------------------------------- results */

static void send_env(kcw *w, Koreo__Agent__V1__Envelope *e) {
  ktls_err err = {{0}};
  if (!w->s || !ksession_send(w->s, e, &err))
    agent_log(AGENT_ERROR, "sending %s: %s", kframe_body_name(e->body_case),
              w->s ? err.msg : "no session");
}

/* An ApplyResult naming its request (strings borrowed). */
static void result_init(Koreo__Agent__V1__ApplyResult *r, const char *request_id,
                        const char *run_id, const char *step_label, bool in_for_each,
                        uint32_t index) {
  koreo__agent__v1__apply_result__init(r);
  r->request_id = (char *)request_id;
  r->run_id = (char *)run_id;
  r->step_label = (char *)step_label;
  r->in_for_each = in_for_each;
  r->for_each_index = index;
}

static Koreo__Agent__V1__Outcome outcome_proto(koreo_outcome_kind k) {
  switch (k) {
  case KOREO_DEPSKIP: return KOREO__AGENT__V1__OUTCOME__OUTCOME_DEP_SKIP;
  case KOREO_SKIP: return KOREO__AGENT__V1__OUTCOME__OUTCOME_SKIP;
  case KOREO_OK: return KOREO__AGENT__V1__OUTCOME__OUTCOME_OK;
  case KOREO_RETRY: return KOREO__AGENT__V1__OUTCOME__OUTCOME_RETRY;
  default: return KOREO__AGENT__V1__OUTCOME__OUTCOME_PERM_FAIL;
  }
}

/* The outcome fields of an ApplyResult (strings borrowed from o;
 * default_location when o has none). */
static void result_outcome(Koreo__Agent__V1__ApplyResult *r, const koreo_outcome *o,
                           const char *default_location) {
  r->outcome = outcome_proto(o->kind);
  r->message = o->message ? o->message : "";
  r->location = o->location ? o->location : (char *)default_location;
  r->retry_delay_seconds = o->kind == KOREO_RETRY && o->delay > 0 ? (uint32_t)o->delay : 0;
}

static void send_result(kcw *w, Koreo__Agent__V1__ApplyResult *r) {
  Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_RESULT;
  e.apply_result = r;
  send_env(w, &e);
}

static cached_result *result_find(kcw *w, const char *id) {
  for (size_t i = 0; i < w->n_results; i++)
    if (strcmp(w->results[i].request_id, id) == 0) return &w->results[i];
  return NULL;
}

static void result_remember(kcw *w, const Koreo__Agent__V1__ApplyResult *r) {
  size_t len = koreo__agent__v1__apply_result__get_packed_size(r);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) kv_oom();
  koreo__agent__v1__apply_result__pack(r, buf);
  cached_result *slot;
  if (w->n_results < w->cap_results) {
    slot = &w->results[w->n_results++];
  } else { /* full: replace the oldest */
    slot = &w->results[w->next_result];
    w->next_result = (w->next_result + 1) % w->cap_results;
    free(slot->request_id);
    free(slot->packed);
  }
  slot->request_id = xstrdup(r->request_id);
  slot->packed = buf;
  slot->len = len;
}

/* ---------------------------------------------------------------- applies */

static void apply_unref(apply *a) {
  if (--a->refs > 0) return;
  if (a->w) { /* unlink */
    for (apply **p = &a->w->running; *p; p = &(*p)->next)
      if (*p == a) {
        *p = a->next;
        break;
      }
  }
  if (a->deadline) event_free(a->deadline);
  if (a->run) {
    if (!koreo_run_done(a->run)) koreo_run_cancel(a->run);
    koreo_run_free(a->run);
  }
  kv_unref(a->owner_ref);
  kv_unref(a->inputs);
  free(a->request_id);
  free(a->run_id);
  free(a->step_label);
  free(a->location);
  free(a->owner_ns);
  defset_unref(a->ds);
  free(a);
}

/* The run is over (done or past its deadline): send and remember the
 * ApplyResult, then drop the run's own reference. */
static void apply_finish(apply *a) {
  if (a->finished) return;
  a->finished = true;
  if (a->deadline) evtimer_del(a->deadline);
  kcw *w = a->w;
  if (!w || w->closing) {
    apply_unref(a);
    return;
  }
  const koreo_outcome *o = koreo_run_outcome(a->run);
  const kv *rid = koreo_run_resource_id(a->run);
  Koreo__Agent__V1__ApplyResult r;
  Koreo__Agent__V1__ManagedResource mr = KOREO__AGENT__V1__MANAGED_RESOURCE__INIT;
  result_init(&r, a->request_id, a->run_id, a->step_label, a->in_for_each, a->for_each_index);
  result_outcome(&r, o, a->location);
  char *ret = o->kind == KOREO_OK && o->value ? kv_json_write(o->value, 0, NULL) : NULL;
  char *ridj = rid ? kv_json_write(rid, 0, NULL) : NULL;
  set_bytes(&r.return_json, ret);
  set_bytes(&r.resource_id_json, ridj);
  if (ridj) {
    fill_managed(&mr, rid);
    r.resource = &mr;
  }
  r.finished_unix_ms = wall_ms();
  char *text = koreo_outcome_text(o);
  agent_log(o->kind == KOREO_PERMFAIL ? AGENT_WARN : AGENT_INFO, "ApplyRequest %s (%s): %s",
            a->request_id, a->location, text);
  free(text);
  result_remember(w, &r);
  send_result(w, &r);
  free(ret);
  free(ridj);
  apply_unref(a);
}

static void apply_pump(apply *a);

static void on_answer(void *ud, uint64_t id, kube_response *resp) {
  apply *a = ud;
  if (a->finished || !a->w || a->w->closing) {
    kube_response_clear(resp);
  } else {
    koreo_run_answer(a->run, id, resp);
    apply_pump(a);
  }
  apply_unref(a);
}

static void apply_pump(apply *a) {
  if (a->finished) return;
  if (koreo_run_advance(a->run)) {
    apply_finish(a);
    return;
  }
  const kube_request *q;
  while ((q = koreo_run_next_request(a->run))) {
    a->refs++;
    if (kube_client_answer(a->w->kc, q, on_answer, a) != 0) a->refs--;
  }
}

static void on_deadline(evutil_socket_t fd, short what, void *ud) {
  (void)fd, (void)what;
  apply *a = ud;
  if (a->finished) return;
  koreo_run_cancel(a->run);
  apply_finish(a);
}

/* Answer an ApplyRequest whose function hash is not cached. */
static void answer_unknown(kcw *w, const Koreo__Agent__V1__ApplyRequest *q, uint64_t sequence) {
  w->st.applies_unknown++;
  char *msg = kv_asprintf("ResourceFunction %s (%s) is not cached by the agent: waiting for its "
                          "DefinitionPush",
                          q->function_name, q->function_hash);
  agent_log(AGENT_WARN, "ApplyRequest %s: %s", q->request_id, msg);
  Koreo__Agent__V1__ApplyResult r;
  result_init(&r, q->request_id, q->run_id, q->step_label, q->in_for_each, q->for_each_index);
  r.outcome = KOREO__AGENT__V1__OUTCOME__OUTCOME_RETRY;
  r.message = msg;
  r.location = q->location;
  r.retry_delay_seconds = 5;
  r.finished_unix_ms = wall_ms();
  send_result(w, &r);
  Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__Error er = KOREO__AGENT__V1__ERROR__INIT;
  er.code = KOREO__AGENT__V1__ERROR_CODE__ERROR_CODE_UNKNOWN_DEFINITION;
  er.message = msg;
  er.related_sequence = sequence;
  e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_ERROR;
  e.error = &er;
  if (w->s) ksession_send_unsequenced(w->s, &e);
  free(msg);
}

/* The ResourceFunction of `hash` in `d`, or NULL. */
static kdef_definition *rf_in(defset *d, const char *hash) {
  const kv *doc = d ? kv_map_get_str(d->docs, hash) : NULL;
  if (!doc) return NULL;
  const char *kind = str_of(getp(doc, "kind"));
  const char *name = str_of(getp(getp(doc, "metadata"), "name"));
  const char *ns = str_of(getp(getp(doc, "metadata"), "namespace"));
  if (!kind || strcmp(kind, "ResourceFunction") != 0 || !name) return NULL;
  return kdef_registry_get(d->reg, KDEF_RESOURCE_FUNCTION, ns ? ns : "", name);
}

void kcw_apply_request(kcw *w, const Koreo__Agent__V1__ApplyRequest *q, uint64_t sequence) {
  cached_result *c = result_find(w, q->request_id);
  if (c) { /* answered before: answer again, do not re-apply */
    w->st.applies_from_cache++;
    Koreo__Agent__V1__ApplyResult *r =
        koreo__agent__v1__apply_result__unpack(NULL, c->len, c->packed);
    if (r) {
      agent_log(AGENT_INFO, "ApplyRequest %s: repeated, answered from the result cache",
                q->request_id);
      send_result(w, r);
      koreo__agent__v1__apply_result__free_unpacked(r, NULL);
    }
    return;
  }
  for (apply *a = w->running; a; a = a->next)
    if (strcmp(a->request_id, q->request_id) == 0 && !a->finished) {
      agent_log(AGENT_INFO, "ApplyRequest %s: repeated while running (one result follows)",
                q->request_id);
      return;
    }
  defset *ds = NULL;
  kdef_definition *rf = rf_in(w->cur, q->function_hash);
  if (rf) {
    ds = w->cur;
    ds->refs++;
  } else {
    kv *doc = doc_load(w, q->function_hash); /* cached, but not in the current set */
    if (doc) {
      size_t n = w->cur ? kv_len(w->cur->docs) : 0;
      char **hs = calloc(n ? n : 1, sizeof *hs);
      if (!hs) kv_oom();
      for (size_t i = 0; i < n; i++)
        hs[i] = (char *)kv_str(kv_map_key_at(w->cur->docs, i));
      ds = defset_build(w, hs, n, q->function_hash, doc);
      free(hs);
      kv_unref(doc);
      rf = rf_in(ds, q->function_hash);
    }
    if (!rf) {
      defset_unref(ds);
      answer_unknown(w, q, sequence);
      return;
    }
  }
  w->st.applies++;
  apply *a = calloc(1, sizeof *a);
  if (!a) kv_oom();
  a->w = w;
  a->refs = 1;
  a->ds = ds;
  a->ctx.registry = ds->reg;
  a->request_id = xstrdup(q->request_id);
  a->run_id = xstrdup(q->run_id);
  a->step_label = xstrdup(q->step_label);
  a->location = xstrdup(q->location && *q->location ? q->location : rf->name);
  a->in_for_each = q->in_for_each;
  a->for_each_index = q->for_each_index;
  kv_parse_error pe = {0};
  a->inputs = q->inputs_json.len
                  ? kv_json_parse((const char *)q->inputs_json.data, q->inputs_json.len, &pe)
                  : kv_map_new(0);
  if (!a->inputs || a->inputs->kind != KV_MAP) {
    agent_log(AGENT_ERROR, "ApplyRequest %s: inputs are not a JSON object: %s", q->request_id,
              a->inputs ? "wrong type" : pe.msg);
    kv_unref(a->inputs);
    a->inputs = kv_map_new(0);
  }
  const Koreo__Agent__V1__OwnerReference *ow = q->owner;
  if (ow && ow->name && *ow->name && ow->kind && *ow->kind) {
    kv *ref = kv_map_new(6);
    kv_map_set_str(ref, "apiVersion", kv_cstring(ow->api_version ? ow->api_version : ""));
    kv_map_set_str(ref, "kind", kv_cstring(ow->kind));
    kv_map_set_str(ref, "name", kv_cstring(ow->name));
    kv_map_set_str(ref, "uid", kv_cstring(ow->uid ? ow->uid : ""));
    kv_map_set_str(ref, "blockOwnerDeletion", kv_bool(ow->block_owner_deletion));
    kv_map_set_str(ref, "controller", kv_bool(ow->controller));
    a->owner_ref = ref;
    a->owner_ns = ow->namespace_ && *ow->namespace_ ? xstrdup(ow->namespace_) : NULL;
    a->owner.ns = a->owner_ns;
    a->owner.ref = a->owner_ns ? ref : NULL;
  }
  a->next = w->running;
  w->running = a;
  a->run = koreo_run_resource_function(&a->ctx, rf, a->inputs, &a->owner, a->location);
  a->deadline = evtimer_new(w->base, on_deadline, a);
  long ms = q->timeout_ms ? (long)q->timeout_ms : w->timeout_ms;
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(a->deadline, &tv);
  a->refs++; /* held across the pump */
  apply_pump(a);
  apply_unref(a);
}

/* ---------------------------------------------------------------- StatusUpdate */

struct su {
  su *next;
  kcw *w; /* NULL once kcw_free ran */
  char *api_version, *kind, *ns, *name;
  kv *patch;
  int attempts;
  bool writing; /* a write is in flight */
  struct event *timer;
};

static void su_free(su *u) {
  if (u->w)
    for (su **p = &u->w->sus; *p; p = &(*p)->next)
      if (*p == u) {
        *p = u->next;
        break;
      }
  if (u->timer) event_free(u->timer);
  free(u->api_version);
  free(u->kind);
  free(u->ns);
  free(u->name);
  kv_unref(u->patch);
  free(u);
}

static void su_write(su *u);

static void su_timer(evutil_socket_t fd, short what, void *ud) {
  (void)fd, (void)what;
  su_write(ud);
}

static void su_done(void *arg, const kube_error *err) {
  su *u = arg;
  u->writing = false;
  kcw *w = u->w;
  if (!w || w->closing) {
    su_free(u);
    return;
  }
  if (!err) {
    w->st.status_writes++;
    agent_log(AGENT_INFO, "status of %s %s/%s written", u->kind, u->ns, u->name);
    su_free(u);
    return;
  }
  w->st.status_write_errors++;
  if (err->code == KUBE_ERR_NOT_FOUND || err->code == KUBE_ERR_CANCELLED || u->attempts >= 6) {
    agent_log(AGENT_WARN, "writing the status of %s %s/%s: %s (given up)", u->kind, u->ns, u->name,
              err->message);
    su_free(u);
    return;
  }
  long d = w->retry_ms << (u->attempts - 1);
  agent_log(AGENT_WARN, "writing the status of %s %s/%s: %s (retrying in %ld ms)", u->kind, u->ns,
            u->name, err->message, d);
  struct timeval tv = {d / 1000, (d % 1000) * 1000};
  evtimer_add(u->timer, &tv);
}

static void su_write(su *u) {
  u->attempts++;
  u->writing = true;
  if (agent_status_write(u->w->kc, u->api_version, u->kind, u->ns, u->name, u->patch, su_done, u) !=
      0)
    su_free(u);
}

/* A JSON bytes field as a value (NULL when empty or not JSON: logged). */
static kv *json_field(const ProtobufCBinaryData *b, const char *what) {
  if (!b->len) return NULL;
  kv_parse_error pe = {0};
  kv *v = kv_json_parse((const char *)b->data, b->len, &pe);
  if (!v) agent_log(AGENT_ERROR, "StatusUpdate %s: not JSON: %s (left out)", what, pe.msg);
  return v;
}

static void set_opt_str(kv *m, const char *k, const char *v) {
  if (v && *v) kv_map_set_str(m, k, kv_cstring(v));
}

void kcw_status_update(kcw *w, const Koreo__Agent__V1__StatusUpdate *u) {
  w->st.status_updates++;
  const Koreo__Agent__V1__ObjectRef *t = u->trigger;
  if (!t || !t->kind || !*t->kind || !t->name || !*t->name || !t->api_version) {
    agent_log(AGENT_ERROR, "StatusUpdate (run %s) without a trigger reference (dropped)",
              u->run_id ? u->run_id : "");
    return;
  }
  /* conditions are final (merged by the control plane): written as given */
  kv *conds = kv_list_new(u->n_conditions);
  for (size_t i = 0; i < u->n_conditions; i++) {
    const Koreo__Agent__V1__Condition *c = u->conditions[i];
    kv *m = kv_map_new(7);
    set_opt_str(m, "type", c->type);
    set_opt_str(m, "status", c->status);
    set_opt_str(m, "reason", c->reason);
    set_opt_str(m, "message", c->message);
    set_opt_str(m, "location", c->location);
    set_opt_str(m, "lastTransitionTime", c->last_transition_time);
    set_opt_str(m, "lastUpdateTime", c->last_update_time);
    kv_list_push(conds, m);
  }
  kv *status = kv_map_new(3);
  kv_map_set_str(status, "conditions", conds);
  kv *state = json_field(&u->state_json, "state");
  if (state) kv_map_set_str(status, "state", state);
  kv *koreo = json_field(&u->koreo_json, "koreo");
  if (koreo) kv_map_set_str(status, "koreo", koreo);
  kv *patch = kv_map_new(2);
  if (u->managed_resources && *u->managed_resources) {
    kv *ann = kv_map_new(1), *md = kv_map_new(1);
    kv_map_set_str(ann, "koreo.dev/managed-resources", kv_cstring(u->managed_resources));
    kv_map_set_str(md, "annotations", ann);
    kv_map_set_str(patch, "metadata", md);
  }
  kv_map_set_str(patch, "status", status);
  su *x = calloc(1, sizeof *x);
  if (!x) kv_oom();
  x->w = w;
  x->api_version = xstrdup(t->api_version);
  x->kind = xstrdup(t->kind);
  x->ns = xstrdup(t->namespace_);
  x->name = xstrdup(t->name);
  x->patch = patch;
  x->timer = evtimer_new(w->base, su_timer, x);
  x->next = w->sus;
  w->sus = x;
  su_write(x);
}

/* ---------------------------------------------------------------- life cycle */

kcw *kcw_new(struct event_base *base, kube_client *kc, const kcw_opts *o, char *err,
             size_t errlen) {
  char *dir = kv_asprintf("%s/definitions", o->state_dir);
  if (mkdir(o->state_dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "creating state dir %s: %s", o->state_dir, strerror(errno));
    free(dir);
    return NULL;
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "creating the definition cache %s: %s", dir, strerror(errno));
    free(dir);
    return NULL;
  }
  kcw *w = calloc(1, sizeof *w);
  if (!w) kv_oom();
  w->base = base;
  w->kc = kc;
  w->dir = dir;
  w->timeout_ms = o->apply_timeout_ms > 0 ? o->apply_timeout_ms : 30000;
  w->retry_ms = o->status_retry_ms > 0 ? o->status_retry_ms : 1000;
  w->cap_results = o->result_cache ? o->result_cache : 1024;
  w->results = calloc(w->cap_results, sizeof *w->results);
  if (!w->results) kv_oom();
  hashes_scan(w);
  current_load(w);
  return w;
}

void kcw_attach(kcw *w, ksession *s) { w->s = s; }

void kcw_free(kcw *w) {
  if (!w) return;
  w->closing = true;
  for (apply *a = w->running, *n; a; a = n) {
    n = a->next;
    a->w = NULL;
    if (!a->finished) {
      a->finished = true;
      if (a->deadline) evtimer_del(a->deadline);
      apply_unref(a); /* its own reference; kube callbacks release theirs */
    }
  }
  for (su *u = w->sus, *n; u; u = n) {
    n = u->next;
    u->w = NULL;
    if (!u->writing) su_free(u); /* waiting to retry; a write in flight frees it when cancelled */
  }
  for (size_t i = 0; i < w->n_results; i++) {
    free(w->results[i].request_id);
    free(w->results[i].packed);
  }
  free(w->results);
  hashes_free(w);
  defset_unref(w->cur);
  free(w->dir);
  free(w);
}

size_t kcw_cached_hashes(const kcw *w, char ***out) {
  *out = w->hashes;
  return w->n_hashes;
}

const kdef_registry *kcw_registry(const kcw *w) { return w->cur ? w->cur->reg : NULL; }
uint64_t kcw_generation(const kcw *w) { return w->generation; }
const kcw_stats *kcw_get_stats(const kcw *w) { return &w->st; }

/* ---------------------------------------------------------------- autonomy */

kv *kcw_current_documents(const kcw *w) {
  size_t n = w->cur ? kv_len(w->cur->docs) : 0;
  kv *l = kv_list_new(n);
  for (size_t i = 0; i < n; i++)
    kv_list_push(l, kv_ref(kv_map_val_at(w->cur->docs, i)));
  return l;
}

/* One autonomous ApplyResult for step `label` (resource id `rid`, a map). */
static void auto_result(kcw *w, const char *run_id, const koreo_step_report *st, const kv *rid,
                        bool in_for_each, uint32_t index) {
  Koreo__Agent__V1__ApplyResult r;
  Koreo__Agent__V1__ManagedResource mr = KOREO__AGENT__V1__MANAGED_RESOURCE__INIT;
  char *id = in_for_each ? kv_asprintf("%s/%s[%u]", run_id, st->label, index)
                         : kv_asprintf("%s/%s", run_id, st->label);
  result_init(&r, id, run_id, st->label, in_for_each, index);
  result_outcome(&r, &st->outcome, "");
  char *ridj = kv_json_write(rid, 0, NULL);
  set_bytes(&r.resource_id_json, ridj);
  fill_managed(&mr, rid);
  r.resource = &mr;
  r.finished_unix_ms = wall_ms();
  r.autonomous = true;
  send_result(w, &r);
  free(ridj);
  free(id);
}

void kcw_report_autonomous(kcw *w, const agent_run_report *rep) {
  static unsigned counter;
  w->st.autonomous_runs++;
  char run_id[64];
  snprintf(run_id, sizeof run_id, "auto-%lld-%u", (long long)wall_ms(), ++counter);
  const koreo_workflow_result *res = rep->result;
  for (size_t i = 0; i < res->n_steps; i++) {
    const koreo_step_report *st = &res->steps[i];
    const kv *ids = st->resource_ids;
    if (getp(ids, "apiVersion")) {
      auto_result(w, run_id, st, ids, false, 0);
    } else if (ids && ids->kind == KV_LIST) {
      for (size_t j = 0; j < kv_len(ids); j++)
        if (getp(kv_list_at(ids, j), "apiVersion"))
          auto_result(w, run_id, st, kv_list_at(ids, j), true, (uint32_t)j);
    }
  }
  const kv *status = getp(rep->status_patch, "status");
  const kv *conds = getp(status, "conditions");
  size_t n = conds && conds->kind == KV_LIST ? kv_len(conds) : 0;
  Koreo__Agent__V1__Condition *cs = calloc(n ? n : 1, sizeof *cs);
  Koreo__Agent__V1__Condition **cp = calloc(n ? n : 1, sizeof *cp);
  if (!cs || !cp) kv_oom();
  for (size_t i = 0; i < n; i++) {
    const kv *c = kv_list_at(conds, i);
    koreo__agent__v1__condition__init(&cs[i]);
#define CSTR(f, k) cs[i].f = str_or_empty(c, k)
    CSTR(type, "type");
    CSTR(status, "status");
    CSTR(reason, "reason");
    CSTR(message, "message");
    CSTR(location, "location");
    CSTR(last_transition_time, "lastTransitionTime");
    CSTR(last_update_time, "lastUpdateTime");
#undef CSTR
    cp[i] = &cs[i];
  }
  Koreo__Agent__V1__StatusUpdate u = KOREO__AGENT__V1__STATUS_UPDATE__INIT;
  Koreo__Agent__V1__ObjectRef t = KOREO__AGENT__V1__OBJECT_REF__INIT;
  const kv *meta = getp(rep->trigger, "metadata");
  t.api_version = (char *)rep->api_version;
  t.kind = (char *)rep->kind;
  t.namespace_ = (char *)rep->ns;
  t.name = (char *)rep->name;
  t.uid = str_or_empty(meta, "uid");
  t.resource_version = str_or_empty(meta, "resourceVersion");
  char *state = getp(status, "state") ? kv_json_write(getp(status, "state"), 0, NULL) : NULL;
  char *koreo = getp(status, "koreo") ? kv_json_write(getp(status, "koreo"), 0, NULL) : NULL;
  const char *mr = str_of(getp(getp(getp(rep->status_patch, "metadata"), "annotations"),
                               "koreo.dev/managed-resources"));
  u.trigger = &t;
  u.n_conditions = n;
  u.conditions = cp;
  set_bytes(&u.state_json, state);
  set_bytes(&u.koreo_json, koreo);
  u.managed_resources = (char *)(mr ? mr : "");
  u.run_id = run_id;
  /* what ran, for the control plane's history */
  u.workflow = (char *)(rep->workflow ? rep->workflow : "");
  u.outcome = outcome_proto(res->outcome.kind);
  u.message = (char *)(res->outcome.message ? res->outcome.message : "");
  u.location = (char *)(res->outcome.location ? res->outcome.location : "");
  kv *steps = kv_list_new(res->n_steps);
  for (size_t i = 0; i < res->n_steps; i++) {
    const koreo_step_report *st = &res->steps[i];
    kv *x = kv_map_new(6);
    kv_map_set_str(x, "label", kv_cstring(st->label));
    kv_map_set_str(x, "outcome", kv_cstring(koreo_outcome_kind_name(st->outcome.kind)));
    kv_map_set_str(x, "message", kv_cstring(st->outcome.message ? st->outcome.message : ""));
    kv_map_set_str(x, "location", kv_cstring(st->outcome.location ? st->outcome.location : ""));
    kv_map_set_str(
        x, "value",
        kv_ref(st->outcome.kind == KOREO_OK && st->outcome.value ? st->outcome.value : kv_null()));
    kv_map_set_str(x, "resourceIds", kv_ref(st->resource_ids ? (kv *)st->resource_ids : kv_null()));
    kv_list_push(steps, x);
  }
  char *steps_json = kv_json_write(steps, 0, NULL);
  kv_unref(steps);
  set_bytes(&u.steps_json, steps_json);
  u.started_unix_ms = rep->started_unix_ms;
  u.finished_unix_ms = wall_ms();
  Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE;
  e.status_update = &u;
  send_env(w, &e);
  agent_log(AGENT_INFO,
            "autonomous run %s of Workflow %s for %s %s/%s queued for the control plane", run_id,
            rep->workflow, rep->kind, rep->ns, rep->name);
  free(state);
  free(koreo);
  free(steps_json);
  free(cs);
  free(cp);
}
