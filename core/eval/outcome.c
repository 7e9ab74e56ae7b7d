/*
 * core/eval/outcome.c: the outcome type of spec 3 (outcome.h):
 * constructors, text forms, classification names and the combination fold
 * of spec 3.2, plus the conversion from a stored kdef_outcome (eval.h).
 */
#include "koreo/outcome.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/eval.h"
#include "koreo/json.h"

static char *dup_or_null(const char *s) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) kv_oom();
  return d;
}

static koreo_outcome make(koreo_outcome_kind kind, int64_t delay, const char *message,
                          const char *location) {
  koreo_outcome o = {0};
  o.kind = kind;
  o.delay = kind == KOREO_RETRY ? delay : 0;
  o.message = dup_or_null(message);
  o.location = dup_or_null(location);
  return o;
}

koreo_outcome koreo_outcome_ok(kv *value, const char *location) {
  koreo_outcome o = make(KOREO_OK, 0, NULL, location);
  o.value = value ? value : kv_null();
  return o;
}
koreo_outcome koreo_outcome_skip(const char *message, const char *location) {
  return make(KOREO_SKIP, 0, message, location);
}
koreo_outcome koreo_outcome_depskip(const char *message, const char *location) {
  return make(KOREO_DEPSKIP, 0, message, location);
}
koreo_outcome koreo_outcome_retry(int64_t delay, const char *message, const char *location) {
  return make(KOREO_RETRY, delay, message, location);
}
koreo_outcome koreo_outcome_permfail(const char *message, const char *location) {
  return make(KOREO_PERMFAIL, 0, message, location);
}

koreo_outcome koreo_outcome_make(koreo_outcome_kind kind, int64_t delay, const char *location,
                                 const char *fmt, ...) {
  char *msg = NULL;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) kv_oom();
    va_end(ap);
  }
  koreo_outcome o;
  if (kind == KOREO_OK) {
    o = koreo_outcome_ok(NULL, location);
  } else {
    o = make(kind, delay, NULL, location);
    o.message = msg;
    msg = NULL;
  }
  free(msg);
  return o;
}

void koreo_outcome_clear(koreo_outcome *o) {
  if (!o) return;
  kv_unref(o->value);
  free(o->message);
  free(o->location);
  memset(o, 0, sizeof *o);
}

koreo_outcome koreo_outcome_copy(const koreo_outcome *o) {
  koreo_outcome c = make(o->kind, o->delay, o->message, o->location);
  c.value = o->kind == KOREO_OK ? kv_ref(o->value ? o->value : kv_null()) : NULL;
  return c;
}

void koreo_outcome_set_location(koreo_outcome *o, const char *location) {
  free(o->location);
  o->location = dup_or_null(location);
}

koreo_outcome koreo_outcome_take(koreo_outcome *o) {
  koreo_outcome r = *o;
  memset(o, 0, sizeof *o);
  return r;
}

const char *koreo_outcome_kind_name(koreo_outcome_kind k) {
  switch (k) {
  case KOREO_DEPSKIP: return "DepSkip";
  case KOREO_SKIP: return "Skip";
  case KOREO_OK: return "Ok";
  case KOREO_RETRY: return "Retry";
  case KOREO_PERMFAIL: return "PermFail";
  }
  return "?";
}

const char *koreo_outcome_key(koreo_outcome_kind k) {
  switch (k) {
  case KOREO_DEPSKIP: return "depSkip";
  case KOREO_SKIP: return "skip";
  case KOREO_OK: return "ok";
  case KOREO_RETRY: return "retry";
  case KOREO_PERMFAIL: return "permFail";
  }
  return "?";
}

char *koreo_outcome_text(const koreo_outcome *o) {
  char *s = NULL;
  int r = 0;
  const char *m = o->message;
  switch (o->kind) {
  case KOREO_OK: {
    char *j = kv_json_write(o->value ? o->value : kv_null(), 0, NULL);
    r = asprintf(&s, "Ok(data=%s)", j);
    free(j);
    break;
  }
  case KOREO_SKIP: r = m ? asprintf(&s, "Skip (message=%s)", m) : asprintf(&s, "User Skip"); break;
  case KOREO_DEPSKIP:
    r = m ? asprintf(&s, "Dependency Skip (message=%s)", m)
          : asprintf(&s, "Dependency Violation Skip");
    break;
  case KOREO_RETRY:
    r = asprintf(&s, "Retry(delay=%lld, message=%s)", (long long)o->delay, m ? m : "None");
    break;
  case KOREO_PERMFAIL: r = asprintf(&s, "Permanent Failure (message=%s)", m ? m : "None"); break;
  }
  if (r < 0) kv_oom();
  return s;
}

kv *koreo_outcome_to_kv(const koreo_outcome *o) {
  kv *m = kv_map_new(5);
  kv_map_set_str(m, "kind", kv_cstring(koreo_outcome_kind_name(o->kind)));
  if (o->kind == KOREO_OK) kv_map_set_str(m, "value", kv_ref(o->value ? o->value : kv_null()));
  if (o->kind == KOREO_RETRY) kv_map_set_str(m, "delay", kv_int(o->delay));
  if (o->message) kv_map_set_str(m, "message", kv_cstring(o->message));
  if (o->location) kv_map_set_str(m, "location", kv_cstring(o->location));
  return m;
}

/* Append `add` to the ", "-joined text *acc unless it is empty. */
static void join_text(char **acc, const char *add) {
  if (!add || !*add) return;
  if (!*acc || !**acc) {
    free(*acc);
    *acc = dup_or_null(add);
    return;
  }
  char *s;
  if (asprintf(&s, "%s, %s", *acc, add) < 0) kv_oom();
  free(*acc);
  *acc = s;
}

/* The fold state: acc plus the Ok data list being accumulated. */
typedef struct fold {
  koreo_outcome acc;
  kv *oks; /* list of Ok data, built while acc is Ok */
} fold;

static void fold_step(fold *f, const koreo_outcome *next) {
  koreo_outcome *acc = &f->acc;
  if (next->kind < acc->kind) return; /* acc wins */
  if (next->kind > acc->kind || next->kind == KOREO_SKIP || next->kind == KOREO_DEPSKIP) {
    /* next wins (among Skips / DepSkips the later one wins) */
    koreo_outcome_clear(acc);
    *acc = koreo_outcome_copy(next);
    if (next->kind == KOREO_OK) {
      kv_unref(f->oks);
      f->oks = kv_list_new(4);
      kv_list_push(f->oks, kv_ref(next->value ? next->value : kv_null()));
    }
    return;
  }
  /* same kind: merge */
  switch (next->kind) {
  case KOREO_OK:
    kv_list_push(f->oks, kv_ref(next->value ? next->value : kv_null()));
    join_text(&acc->location, next->location);
    break;
  case KOREO_RETRY:
    if (next->delay > acc->delay) acc->delay = next->delay;
    if (!acc->message) acc->message = dup_or_null(""); /* merged: text, maybe empty */
    join_text(&acc->message, next->message);
    join_text(&acc->location, next->location);
    break;
  case KOREO_PERMFAIL:
    if (!acc->message) acc->message = dup_or_null("");
    join_text(&acc->message, next->message);
    join_text(&acc->location, next->location);
    break;
  default: break;
  }
}

static koreo_outcome fold_finish(fold *f, size_t n) {
  if (n == 0) {
    kv_unref(f->oks);
    koreo_outcome_clear(&f->acc);
    return koreo_outcome_skip(NULL, NULL);
  }
  if (f->acc.kind == KOREO_OK) {
    kv_unref(f->acc.value);
    f->acc.value = f->oks;
    f->oks = NULL;
  }
  kv_unref(f->oks);
  return f->acc;
}

koreo_outcome koreo_outcome_combine(const koreo_outcome *items, size_t n) {
  fold f = {{0}, NULL};
  for (size_t i = 0; i < n; i++)
    fold_step(&f, &items[i]);
  return fold_finish(&f, n);
}

koreo_outcome koreo_outcome_combine_ptrs(const koreo_outcome *const *items, size_t n) {
  fold f = {{0}, NULL};
  size_t used = 0;
  for (size_t i = 0; i < n; i++)
    if (items[i]) {
      fold_step(&f, items[i]);
      used++;
    }
  return fold_finish(&f, used);
}

koreo_outcome koreo_outcome_from_kdef(const kdef_outcome *o) {
  if (o->kind == KDEF_O_OK) return koreo_outcome_ok(NULL, o->location);
  return make((koreo_outcome_kind)o->kind, o->delay, o->message, o->location);
}
