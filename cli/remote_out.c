/*
 * cli/remote_out.c: output of koreoctl's remote commands: kubectl-like
 * aligned tables, pretty JSON, and YAML (block style).  See cli/remote.h.
 */
#include "remote.h"

#include <stdlib.h>
#include <string.h>

#include "koreo/json.h"

/* ------------------------------------------------------------------ YAML */

static bool reserved_word(const char *s) {
  static const char *words[] = {"true", "false", "yes", "no",   "on",    "off",   "null",
                                "y",    "n",     "~",   ".inf", "-.inf", "+.inf", ".nan"};
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    if (strcasecmp(s, words[i]) == 0) return true;
  return false;
}

static bool looks_numeric(const char *s) {
  char *end;
  strtod(s, &end);
  if (end != s && *end == 0) return true;
  strtoll(s, &end, 0);
  if (end != s && *end == 0) return true;
  /* YAML 1.1 sexagesimal / underscored numbers and dates: quote anything
   * that starts with a digit and has ':' or '_' or is a date */
  return (s[0] >= '0' && s[0] <= '9') && strpbrk(s, ":_") != NULL;
}

/* Plain (unquoted) only for simple words that read back as the same string. */
static bool plain_ok(const char *s, size_t len) {
  if (len == 0 || strlen(s) != len) return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '/' || c == '-' || c >= 0x80 ||
              (c == ' ' && i > 0 && i + 1 < len);
    if (!ok) return false;
  }
  if (s[0] == '-' || s[0] == '.') return false;
  return !reserved_word(s) && !looks_numeric(s);
}

static void yaml_scalar(FILE *f, const kv *v) {
  if (v->kind == KV_STRING && plain_ok(kv_str(v), kv_len(v))) {
    fputs(kv_str(v), f);
    return;
  }
  char *j = kv_json_write(v, 0, NULL);
  fputs(j, f);
  free(j);
}

static bool is_block(const kv *v) {
  return (v->kind == KV_MAP || v->kind == KV_LIST) && kv_len(v) > 0;
}

static void indent(FILE *f, int n) {
  for (int i = 0; i < n; i++)
    fputc(' ', f);
}

static void yaml_node(FILE *f, const kv *v, int ind, bool inline_first);

static void yaml_map(FILE *f, const kv *v, int ind, bool inline_first) {
  for (size_t i = 0; i < kv_len(v); i++) {
    if (i > 0 || !inline_first) indent(f, ind);
    kv *k = kv_map_key_at(v, i), *x = kv_map_val_at(v, i);
    if (k->kind == KV_STRING)
      yaml_scalar(f, k);
    else {
      char *j = kv_json_write(k, 0, NULL);
      kv *ks = kv_cstring(j);
      yaml_scalar(f, ks);
      kv_unref(ks);
      free(j);
    }
    fputc(':', f);
    if (is_block(x)) {
      fputc('\n', f);
      yaml_node(f, x, x->kind == KV_LIST ? ind : ind + 2, false);
    } else {
      fputc(' ', f);
      yaml_node(f, x, ind + 2, true);
    }
  }
}

static void yaml_node(FILE *f, const kv *v, int ind, bool inline_first) {
  if (v->kind == KV_MAP && kv_len(v)) {
    yaml_map(f, v, ind, inline_first);
  } else if (v->kind == KV_LIST && kv_len(v)) {
    for (size_t i = 0; i < kv_len(v); i++) {
      if (i > 0 || !inline_first) indent(f, ind);
      fputs("- ", f);
      yaml_node(f, kv_list_at(v, i), ind + 2, true);
    }
  } else if (v->kind == KV_MAP) {
    fputs("{}\n", f);
  } else if (v->kind == KV_LIST) {
    fputs("[]\n", f);
  } else {
    yaml_scalar(f, v);
    fputc('\n', f);
  }
}

/* remote_print_yaml: see remote.h. */
void remote_print_yaml(FILE *f, const kv *v) { yaml_node(f, v, 0, false); }

/* remote_print_json: see remote.h. */
void remote_print_json(FILE *f, const kv *v) {
  char *j = kv_json_write(v, KV_JSON_PRETTY, NULL);
  fputs(j, f);
  fputc('\n', f);
  free(j);
}

/* ----------------------------------------------------------------- table */

/* remote_cell: see remote.h. */
char *remote_cell(const kv *v) {
  if (!v || v->kind == KV_NULL) return strdup("<none>");
  if (v->kind == KV_STRING) return strdup(kv_len(v) ? kv_str(v) : "");
  return kv_json_write(v, 0, NULL);
}

static size_t width(const char *s) { return kv_utf8_count(s, strlen(s)); }

/* remote_print_table: see remote.h. */
void remote_print_table(FILE *f, const char *const *headers, size_t ncols, const kv *rows) {
  size_t *w = calloc(ncols, sizeof *w);
  if (!w) kv_oom();
  for (size_t c = 0; c < ncols; c++)
    w[c] = width(headers[c]);
  for (size_t r = 0; r < kv_len(rows); r++) {
    kv *row = kv_list_at(rows, r);
    for (size_t c = 0; c < ncols && c < kv_len(row); c++) {
      size_t x = width(kv_str(kv_list_at(row, c)));
      if (x > w[c]) w[c] = x;
    }
  }
  for (size_t c = 0; c < ncols; c++) {
    fputs(headers[c], f);
    if (c + 1 < ncols) indent(f, (int)(w[c] - width(headers[c]) + 3));
  }
  fputc('\n', f);
  for (size_t r = 0; r < kv_len(rows); r++) {
    kv *row = kv_list_at(rows, r);
    for (size_t c = 0; c < ncols && c < kv_len(row); c++) {
      const char *s = kv_str(kv_list_at(row, c));
      fputs(s, f);
      if (c + 1 < ncols) indent(f, (int)(w[c] - width(s) + 3));
    }
    fputc('\n', f);
  }
  free(w);
}
