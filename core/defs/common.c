/*
 * core/defs/common.c: shared helpers of the definitions module: kind
 * names, stored outcomes (kdef_outcome) and their combination and text
 * form, diagnostics (kdef_diag) and small string utilities.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "defs/defs_impl.h"

/* ---- kinds ------------------------------------------------------------- */

static const char *const kind_names[KDEF_KIND_COUNT] = {
    "ValueFunction", "ResourceFunction", "ResourceTemplate", "Workflow", "FunctionTest",
};

/* kdef_kind_name: see definition.h. */
const char *kdef_kind_name(kdef_kind k) {
  if (k < 0 || k >= KDEF_KIND_COUNT) return "Unknown";
  return kind_names[k];
}

/* kdef_kind_from_name: see definition.h. */
kdef_kind kdef_kind_from_name(const char *name) {
  if (!name) return KDEF_KIND_NONE;
  for (int i = 0; i < KDEF_KIND_COUNT; i++)
    if (strcmp(kind_names[i], name) == 0) return (kdef_kind)i;
  return KDEF_KIND_NONE;
}

/* ---- strings --------------------------------------------------------------
 */

void kd_buf_put(kd_buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) kv_oom();
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

void kd_buf_puts(kd_buf *b, const char *s) { kd_buf_put(b, s, strlen(s)); }

void kd_buf_printf(kd_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = kd_vprintf(fmt, ap);
  va_end(ap);
  kd_buf_puts(b, s);
  free(s);
}

char *kd_buf_take(kd_buf *b) {
  char *p = b->p;
  if (!p) p = kd_strdup("");
  b->p = NULL;
  b->len = b->cap = 0;
  return p;
}

char *kd_strdup(const char *s) {
  if (!s) return NULL;
  char *p = strdup(s);
  if (!p) kv_oom();
  return p;
}

char *kd_vprintf(const char *fmt, va_list ap) {
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) kv_oom();
  return s;
}

char *kd_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = kd_vprintf(fmt, ap);
  va_end(ap);
  return s;
}

char *kd_json(const kv *v) { return kv_json_write(v, 0, NULL); }

char *kd_text(const kv *v) {
  if (!v) return kd_strdup("None");
  if (v->kind == KV_STRING) return kd_strdup(kv_str(v));
  return kd_json(v);
}

/* ---- outcomes ---------------------------------------------------------------
 */

/* kdef_outcome_clear: see definition.h. */
void kdef_outcome_clear(kdef_outcome *o) {
  free(o->message);
  free(o->location);
  free(o->path);
  memset(o, 0, sizeof *o);
  o->kind = KDEF_O_OK;
}

/* kdef_outcome_copy: see definition.h. */
void kdef_outcome_copy(kdef_outcome *dst, const kdef_outcome *src) {
  kdef_outcome c = *src;
  c.message = kd_strdup(src->message);
  c.location = kd_strdup(src->location);
  c.path = kd_strdup(src->path);
  *dst = c;
}

void kd_fail(kdef_outcome *o, kdef_outcome_kind kind, int64_t delay, const char *location,
             const char *path, const kv *at, const char *fmt, ...) {
  kdef_outcome_clear(o);
  o->kind = kind;
  o->delay = delay;
  va_list ap;
  va_start(ap, fmt);
  o->message = kd_vprintf(fmt, ap);
  va_end(ap);
  o->location = kd_strdup(location);
  o->path = kd_strdup(path);
  const kv_srcpos *pos = kv_pos(at);
  if (pos) o->pos = *pos;
}

static char *join2(const char *a, const char *b) {
  bool ea = !a || !*a, eb = !b || !*b;
  if (ea && eb) return (a || b) ? kd_strdup("") : NULL;
  if (ea) return kd_strdup(b);
  if (eb) return kd_strdup(a);
  return kd_printf("%s, %s", a, b);
}

void kd_combine_errors(kdef_outcome *acc, const kdef_outcome *next) {
  if (next->kind == KDEF_O_OK) return;
  if (acc->kind == KDEF_O_OK || next->kind > acc->kind ||
      (next->kind == acc->kind && next->kind < KDEF_O_OK)) {
    kdef_outcome_clear(acc);
    kdef_outcome_copy(acc, next);
    return;
  }
  if (next->kind < acc->kind) return;
  /* equal Retry or PermFail: merge */
  if (next->delay > acc->delay) acc->delay = next->delay;
  char *m = join2(acc->message, next->message);
  char *l = join2(acc->location, next->location);
  free(acc->message);
  free(acc->location);
  acc->message = m;
  acc->location = l;
}

/* kdef_outcome_text: see definition.h (spec 3.1 text forms). */
char *kdef_outcome_text(const kdef_outcome *o) {
  const char *m = o->message;
  switch (o->kind) {
  case KDEF_O_OK: return kd_strdup("Ok(data=None)");
  case KDEF_O_SKIP: return m ? kd_printf("Skip (message=%s)", m) : kd_strdup("User Skip");
  case KDEF_O_DEPSKIP:
    return m ? kd_printf("Dependency Skip (message=%s)", m)
             : kd_strdup("Dependency Violation Skip");
  case KDEF_O_RETRY:
    return kd_printf("Retry(delay=%lld, message=%s)", (long long)o->delay, m ? m : "None");
  case KDEF_O_PERMFAIL: return kd_printf("Permanent Failure (message=%s)", m ? m : "None");
  }
  return kd_strdup("?");
}

/* ---- diagnostics ------------------------------------------------------------
 */

/* kdef_diags_free: see definition.h. */
void kdef_diags_free(kdef_diags *d) {
  for (size_t i = 0; i < d->n; i++) {
    free(d->items[i].name);
    free(d->items[i].path);
    free(d->items[i].message);
  }
  free(d->items);
  memset(d, 0, sizeof *d);
}

/* kdef_diags_errors: see definition.h. */
size_t kdef_diags_errors(const kdef_diags *d) {
  size_t n = 0;
  for (size_t i = 0; i < d->n; i++)
    if (!d->items[i].warning) n++;
  return n;
}

static void diag_push(kdef_diags *d, kdef_diag g) {
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 16;
    kdef_diag *p = realloc(d->items, cap * sizeof *p);
    if (!p) kv_oom();
    d->items = p;
    d->cap = cap;
  }
  d->items[d->n++] = g;
}

void kd_diag_add(kdef_diags *d, const char *file, uint32_t line, uint32_t col, kdef_kind kind,
                 const char *name, const char *path, bool warning, const char *fmt, ...) {
  if (!d) return;
  kdef_diag g = {.file = file ? kv_intern_file(file) : NULL,
                 .line = line,
                 .col = col,
                 .kind = kind,
                 .name = kd_strdup(name),
                 .path = kd_strdup(path),
                 .warning = warning};
  va_list ap;
  va_start(ap, fmt);
  g.message = kd_vprintf(fmt, ap);
  va_end(ap);
  diag_push(d, g);
}

void kd_diag_outcome(kdef_diags *d, const kdef_definition *def, const kdef_outcome *o,
                     bool warning) {
  if (!d || o->kind == KDEF_O_OK) return;
  kv_srcpos pos = o->pos.file || o->pos.line ? o->pos : def->pos;
  char *text = (o->kind == KDEF_O_PERMFAIL && o->message && *o->message) ? kd_strdup(o->message)
                                                                         : kdef_outcome_text(o);
  kd_diag_add(d, pos.file, pos.line, pos.col, def->kind, def->name, o->path, warning, "%s", text);
  free(text);
}

/* kdef_diag_format: see definition.h. */
char *kdef_diag_format(const kdef_diag *d) {
  kd_buf b = {0};
  if (d->file) {
    kd_buf_puts(&b, d->file);
    if (d->line) kd_buf_printf(&b, ":%u:%u", d->line, d->col);
    kd_buf_puts(&b, ": ");
  }
  if (d->warning) kd_buf_puts(&b, "warning: ");
  if (d->kind != KDEF_KIND_NONE && d->name)
    kd_buf_printf(&b, "%s/%s: ", kdef_kind_name(d->kind), d->name);
  if (d->path && *d->path) kd_buf_printf(&b, "%s: ", d->path);
  kd_buf_puts(&b, d->message ? d->message : "");
  return kd_buf_take(&b);
}

/* ---- dependencies
 * ------------------------------------------------------------ */

void kd_deps_add(kd_deps *d, kdef_kind kind, const char *name) {
  for (size_t i = 0; i < d->n; i++)
    if (d->items[i].kind == kind && strcmp(d->items[i].name, name) == 0) return;
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 8;
    kd_dep *p = realloc(d->items, cap * sizeof *p);
    if (!p) kv_oom();
    d->items = p;
    d->cap = cap;
  }
  d->items[d->n++] = (kd_dep){kind, kd_strdup(name)};
}

void kd_deps_free(kd_deps *d) {
  for (size_t i = 0; i < d->n; i++)
    free(d->items[i].name);
  free(d->items);
  memset(d, 0, sizeof *d);
}

/* kdef_changes_free: see definition.h. */
void kdef_changes_free(kdef_changes *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->items[i].ns);
    free(c->items[i].name);
    kdef_outcome_clear(&c->items[i].status);
  }
  free(c->items);
  memset(c, 0, sizeof *c);
}
