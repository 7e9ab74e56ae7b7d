/*
 * core/ftest/report.c: FunctionTest reports rendered into memory (the
 * caller prints them): human-readable text with field-path diffs, JSON
 * lines (one object per case and a summary), and JUnit XML.
 */
#include "koreo/ftest.h"

#include "koreo/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A memory stream; aborts on allocation failure. */
typedef struct mbuf {
  FILE *f;
  char *p;
  size_t n;
} mbuf;

static void mb_open(mbuf *b) {
  b->p = NULL;
  b->n = 0;
  b->f = open_memstream(&b->p, &b->n);
  if (!b->f) kv_oom();
}

static char *mb_close(mbuf *b) {
  fclose(b->f);
  if (!b->p) kv_oom();
  return b->p;
}

/* ---- results ------------------------------------------------------------- */

const char *kftest_status_name(kftest_status s) {
  switch (s) {
  case KFTEST_PASS: return "pass";
  case KFTEST_FAIL: return "fail";
  case KFTEST_SKIP: return "skip";
  case KFTEST_NOT_RUN: return "not-run";
  case KFTEST_ERROR: return "error";
  }
  return "error";
}

static void case_clear(kftest_case_result *c) {
  free(c->label);
  free(c->message);
  free(c->expected_text);
  free(c->outcome_text);
  kv_unref(c->expected);
  kv_unref(c->actual);
  kv_unref(c->differences);
  kv_unref(c->diffs);
  memset(c, 0, sizeof *c);
}

void kftest_result_clear(kftest_result *r) {
  for (size_t i = 0; i < r->n_cases; i++)
    case_clear(&r->cases[i]);
  free(r->cases);
  free(r->test);
  free(r->ns);
  free(r->function_kind);
  free(r->function_name);
  free(r->error);
  memset(r, 0, sizeof *r);
}

void kftest_summarize(const kftest_result *results, size_t n, kftest_summary *s) {
  memset(s, 0, sizeof *s);
  s->tests = n;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < results[i].n_cases; j++) {
      const kftest_case_result *c = &results[i].cases[j];
      if (c->index >= 0) s->cases++;
      switch (c->status) {
      case KFTEST_PASS: s->passed++; break;
      case KFTEST_FAIL: s->failed++; break;
      case KFTEST_SKIP: s->skipped++; break;
      case KFTEST_NOT_RUN: s->not_run++; break;
      case KFTEST_ERROR: s->errors++; break;
      }
    }
}

bool kftest_summary_ok(const kftest_summary *s) {
  return s->failed == 0 && s->not_run == 0 && s->errors == 0;
}

/* ---- text -----------------------------------------------------------------
 */

#define VALUE_MAX 200

/* A value as compact JSON, cut at VALUE_MAX bytes. */
static void put_value(FILE *f, const kv *v) {
  size_t n;
  char *s = kv_json_write(v, 0, &n);
  if (n > VALUE_MAX) {
    /* do not cut a UTF-8 sequence in two */
    size_t cut = VALUE_MAX;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
      cut--;
    fprintf(f, "%.*s... (%zu bytes)", (int)cut, s, n);
  } else {
    fputs(s, f);
  }
  free(s);
}

static const char *status_word(kftest_status s) {
  switch (s) {
  case KFTEST_PASS: return "PASS";
  case KFTEST_FAIL: return "FAIL";
  case KFTEST_SKIP: return "SKIP";
  case KFTEST_NOT_RUN: return "NOT RUN";
  case KFTEST_ERROR: return "ERROR";
  }
  return "ERROR";
}

/* Write `text` with every line after the first indented by `indent`. */
static void put_indented(FILE *f, const char *text, const char *indent) {
  for (const char *p = text; *p; p++) {
    fputc(*p, f);
    if (*p == '\n' && p[1]) fputs(indent, f);
  }
}

static void text_case(FILE *f, const kftest_result *t, const kftest_case_result *c,
                      unsigned flags) {
  const char *pad = "           ";
  fprintf(f, "  %-8s ", status_word(c->status));
  if (c->index >= 0)
    fprintf(f, "#%d %s", c->index + 1, c->label ? c->label : "");
  else
    fputs("(test)", f);
  bool detail = c->status == KFTEST_FAIL || c->status == KFTEST_ERROR;
  if (c->file && (detail || (flags & KFTEST_TEXT_VERBOSE)) &&
      (c->file != t->file || c->line != t->line))
    fprintf(f, "  (%s:%u)", c->file, c->line);
  if (!detail) {
    if (c->message && c->status != KFTEST_PASS) fprintf(f, ": %s", c->message);
    fputc('\n', f);
    if (!(flags & KFTEST_TEXT_VERBOSE) || c->status != KFTEST_PASS) return;
    if (c->outcome_text) fprintf(f, "%soutcome: %s\n", pad, c->outcome_text);
    return;
  }
  fputc('\n', f);
  if (c->message) {
    fputs(pad, f);
    put_indented(f, c->message, pad);
    fputc('\n', f);
  }
  if (c->diffs && kv_len(c->diffs)) {
    for (size_t i = 0; i < kv_len(c->diffs); i++) {
      const kv *d = kv_list_at(c->diffs, i);
      const kv *path = kv_map_get_str(d, "path"), *msg = kv_map_get_str(d, "message");
      const kv *exp = kv_map_get_str(d, "expected"), *act = kv_map_get_str(d, "actual");
      fprintf(f, "%s- %s: %s\n", pad, kv_str(path), kv_str(msg));
      if (exp) {
        fprintf(f, "%s    expected: ", pad);
        put_value(f, exp);
        fputc('\n', f);
      }
      if (act) {
        fprintf(f, "%s    actual:   ", pad);
        put_value(f, act);
        fputc('\n', f);
      }
    }
  } else if (c->status == KFTEST_FAIL) {
    /* no field differences: show what was expected and what happened,
     * unless the message already says it */
    const char *m = c->message ? c->message : "";
    if (c->expected) {
      fprintf(f, "%sexpected: ", pad);
      put_value(f, c->expected);
      fputc('\n', f);
    }
    if (c->outcome_text && !strstr(m, "Actual(") && !strstr(m, c->outcome_text))
      fprintf(f, "%soutcome:  %s\n", pad, c->outcome_text);
  }
}

char *kftest_report_text(const kftest_result *results, size_t n, double elapsed_ms,
                         unsigned flags) {
  mbuf b;
  mb_open(&b);
  FILE *f = b.f;
  for (size_t i = 0; i < n; i++) {
    const kftest_result *t = &results[i];
    fprintf(f, "FunctionTest %s", t->test ? t->test : "");
    if (t->function_kind && t->function_name)
      fprintf(f, " (%s %s)", t->function_kind, t->function_name);
    if (t->file) fprintf(f, "  %s:%u", t->file, t->line);
    fputc('\n', f);
    if (t->n_cases == 0) fputs("  (no test cases)\n", f);
    for (size_t j = 0; j < t->n_cases; j++)
      text_case(f, t, &t->cases[j], flags);
  }
  kftest_summary s;
  kftest_summarize(results, n, &s);
  if (n) fputc('\n', f);
  fprintf(f,
          "%zu test%s, %zu case%s: %zu passed, %zu failed, %zu skipped, %zu "
          "not run, %zu error%s",
          s.tests, s.tests == 1 ? "" : "s", s.cases, s.cases == 1 ? "" : "s", s.passed, s.failed,
          s.skipped, s.not_run, s.errors, s.errors == 1 ? "" : "s");
  if (elapsed_ms >= 0) fprintf(f, " (%.1f ms)", elapsed_ms);
  fputs(kftest_summary_ok(&s) ? "\nOK\n" : "\nFAILED\n", f);
  return mb_close(&b);
}

/* ---- JSON lines -----------------------------------------------------------
 */

static void set_str(kv *m, const char *k, const char *s) {
  kv_map_set_str(m, k, s ? kv_cstring(s) : kv_null());
}

char *kftest_report_json(const kftest_result *results, size_t n, double elapsed_ms) {
  mbuf b;
  mb_open(&b);
  for (size_t i = 0; i < n; i++) {
    const kftest_result *t = &results[i];
    for (size_t j = 0; j < t->n_cases; j++) {
      const kftest_case_result *c = &t->cases[j];
      kv *o = kv_map_new(16);
      set_str(o, "test", t->test);
      set_str(o, "case", c->index >= 0 ? c->label : NULL);
      kv_map_set_str(o, "index", kv_int(c->index));
      kv_map_set_str(o, "passed", kv_bool(c->passed));
      set_str(o, "status", kftest_status_name(c->status));
      set_str(o, "message", c->message);
      if (t->ns && *t->ns) set_str(o, "namespace", t->ns);
      if (t->function_kind && t->function_name) {
        kv *fn = kv_map_new(2);
        set_str(fn, "kind", t->function_kind);
        set_str(fn, "name", t->function_name);
        kv_map_set_str(o, "function", fn);
      }
      if (c->variant) kv_map_set_str(o, "variant", kv_bool(true));
      if (c->file) {
        set_str(o, "file", c->file);
        kv_map_set_str(o, "line", kv_int(c->line));
      }
      if (c->expected_text) set_str(o, "expected", c->expected_text);
      if (c->outcome_text) set_str(o, "outcome", c->outcome_text);
      if (c->diffs && kv_len(c->diffs)) kv_map_set_str(o, "differences", kv_ref(c->diffs));
      char *line = kv_json_write(o, 0, NULL);
      fputs(line, b.f);
      fputc('\n', b.f);
      free(line);
      kv_unref(o);
    }
  }
  kftest_summary s;
  kftest_summarize(results, n, &s);
  kv *sm = kv_map_new(9);
  kv_map_set_str(sm, "tests", kv_int((int64_t)s.tests));
  kv_map_set_str(sm, "cases", kv_int((int64_t)s.cases));
  kv_map_set_str(sm, "passed", kv_int((int64_t)s.passed));
  kv_map_set_str(sm, "failed", kv_int((int64_t)s.failed));
  kv_map_set_str(sm, "skipped", kv_int((int64_t)s.skipped));
  kv_map_set_str(sm, "not_run", kv_int((int64_t)s.not_run));
  kv_map_set_str(sm, "errors", kv_int((int64_t)s.errors));
  kv_map_set_str(sm, "ok", kv_bool(kftest_summary_ok(&s)));
  if (elapsed_ms >= 0) kv_map_set_str(sm, "ms", kv_double(elapsed_ms));
  kv *top = kv_map_new(1);
  kv_map_set_str(top, "summary", sm);
  char *line = kv_json_write(top, 0, NULL);
  fputs(line, b.f);
  fputc('\n', b.f);
  free(line);
  kv_unref(top);
  return mb_close(&b);
}

/* ---- JUnit XML ------------------------------------------------------------
 */

/* XML-escape `s` (attribute-safe).  Characters XML 1.0 forbids (controls
 * other than tab, newline, carriage return) become '?'. */
static void put_xml(FILE *f, const char *s) {
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    switch (*p) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&apos;", f); break;
    case '\n': fputs("&#10;", f); break;
    case '\r': fputs("&#13;", f); break;
    case '\t': fputs("&#9;", f); break;
    default: fputc(*p < 0x20 ? '?' : *p, f);
    }
  }
}

/* Escape element text: like put_xml but newlines stay. */
static void put_xml_text(FILE *f, const char *s) {
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '\n' || *p == '\t')
      fputc(*p, f);
    else if (*p == '&')
      fputs("&amp;", f);
    else if (*p == '<')
      fputs("&lt;", f);
    else if (*p == '>')
      fputs("&gt;", f);
    else
      fputc(*p < 0x20 ? '?' : *p, f);
  }
}

static void junit_details(FILE *f, const kftest_case_result *c) {
  /* the same details the text report shows, as element text */
  kftest_result one = {0};
  kftest_case_result copy = *c;
  copy.file = NULL;
  one.cases = &copy;
  one.n_cases = 1;
  mbuf b;
  mb_open(&b);
  text_case(b.f, &one, &copy, 0);
  char *s = mb_close(&b);
  put_xml_text(f, s);
  free(s);
}

char *kftest_report_junit(const kftest_result *results, size_t n, double elapsed_ms) {
  mbuf b;
  mb_open(&b);
  FILE *f = b.f;
  kftest_summary s;
  kftest_summarize(results, n, &s);
  double secs = elapsed_ms >= 0 ? elapsed_ms / 1000.0 : 0;
  size_t entries = 0;
  for (size_t i = 0; i < n; i++)
    entries += results[i].n_cases;
  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
  fprintf(f,
          "<testsuites name=\"koreoctl test\" tests=\"%zu\" failures=\"%zu\" "
          "errors=\"%zu\" "
          "skipped=\"%zu\" time=\"%.6f\">\n",
          entries, s.failed, s.errors, s.skipped + s.not_run, secs);
  for (size_t i = 0; i < n; i++) {
    const kftest_result *t = &results[i];
    kftest_summary ts;
    kftest_summarize(t, 1, &ts);
    fputs("  <testsuite name=\"", f);
    put_xml(f, t->test);
    fprintf(f,
            "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" "
            "time=\"%.6f\"",
            t->n_cases, ts.failed, ts.errors, ts.skipped + ts.not_run, t->ms / 1000.0);
    if (t->file) {
      fputs(" file=\"", f);
      put_xml(f, t->file);
      fputc('"', f);
    }
    fputs(">\n", f);
    for (size_t j = 0; j < t->n_cases; j++) {
      const kftest_case_result *c = &t->cases[j];
      fputs("    <testcase name=\"", f);
      if (c->index >= 0) {
        put_xml(f, c->label);
      } else {
        fputs("(FunctionTest ", f);
        put_xml(f, t->test);
        fputc(')', f);
      }
      fputs("\" classname=\"", f);
      put_xml(f, t->function_kind ? t->function_kind : "FunctionTest");
      fputc('.', f);
      put_xml(f, t->test);
      fputc('"', f);
      if (c->file) {
        fputs(" file=\"", f);
        put_xml(f, c->file);
        fprintf(f, "\" line=\"%u\"", c->line);
      }
      fprintf(f, " time=\"%.6f\"", c->ms / 1000.0);
      switch (c->status) {
      case KFTEST_PASS: fputs("/>\n", f); break;
      case KFTEST_SKIP:
      case KFTEST_NOT_RUN:
        fputs(">\n      <skipped message=\"", f);
        put_xml(f, c->message);
        fputs("\"/>\n    </testcase>\n", f);
        break;
      case KFTEST_FAIL:
      case KFTEST_ERROR:
        fprintf(f, ">\n      <%s message=\"", c->status == KFTEST_FAIL ? "failure" : "error");
        put_xml(f, c->message);
        fprintf(f, "\" type=\"%s\">",
                c->status == KFTEST_FAIL ? "FunctionTestFailure" : "FunctionTestError");
        junit_details(f, c);
        fprintf(f, "</%s>\n    </testcase>\n", c->status == KFTEST_FAIL ? "failure" : "error");
        break;
      }
    }
    fputs("  </testsuite>\n", f);
  }
  fputs("</testsuites>\n", f);
  return mb_close(&b);
}
