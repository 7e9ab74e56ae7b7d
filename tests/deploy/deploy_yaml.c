/*
 * tests/deploy/deploy_yaml.c: the deployment tests' YAML reader (issue 7
 * item 3).  Parses Kubernetes manifests, Helm values and rendered charts
 * with the project's own YAML loader (kv_yaml_parse, libyaml, PyYAML
 * SafeLoader scalar rules) and prints them as JSON, so that the Python test
 * scripts next to it need nothing beyond Python's standard library.
 *
 *   deploy_yaml json FILE...   a JSON array with one entry per document:
 *                              {"file": F, "index": I, "line": L, "doc": D}
 *                              (empty documents are left out)
 *   deploy_yaml value FILE     the first document alone (e.g. values.yaml)
 *
 * "-" reads standard input.  A file that does not parse prints
 * "FILE:LINE:COL: MESSAGE" on stderr and the exit status is 1; usage errors
 * exit 2.
 */
#include "koreo/json.h"
#include "koreo/value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read all of standard input; malloc'd, NUL-terminated; NULL on error. */
static char *read_stdin(size_t *len) {
  kv_strbuf b = {0};
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
    kv_strbuf_put(&b, chunk, n);
  if (ferror(stdin)) {
    kv_strbuf_free(&b);
    return NULL;
  }
  return kv_strbuf_take(&b, len);
}

/* Parse one file into its list of documents; NULL after printing why. */
static kv *load(const char *path) {
  kv_parse_error err = {0};
  size_t len = 0;
  char *text = strcmp(path, "-") == 0 ? read_stdin(&len) : kv_read_file(path, &len, &err);
  if (!text) {
    fprintf(stderr, "%s: cannot read: %s\n", path, err.msg[0] ? err.msg : "read error");
    return NULL;
  }
  kv *docs = kv_yaml_parse(text, len, path, &err);
  free(text);
  if (!docs) fprintf(stderr, "%s:%u:%u: %s\n", path, err.line, err.col, err.msg);
  return docs;
}

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[1], "json") != 0 && strcmp(argv[1], "value") != 0) ||
      (strcmp(argv[1], "value") == 0 && argc != 3)) {
    fprintf(stderr, "usage: deploy_yaml json FILE... | deploy_yaml value FILE\n");
    return 2;
  }
  if (strcmp(argv[1], "value") == 0) {
    kv *docs = load(argv[2]);
    if (!docs) return 1;
    kv *first = kv_len(docs) ? kv_list_at(docs, 0) : NULL;
    char *out = kv_json_write(first ? first : kv_null(), 0, NULL);
    printf("%s\n", out);
    free(out);
    kv_unref(docs);
    return 0;
  }
  int rc = 0;
  kv *all = kv_list_new(16);
  for (int i = 2; i < argc; i++) {
    kv *docs = load(argv[i]);
    if (!docs) {
      rc = 1;
      continue;
    }
    for (size_t d = 0; d < kv_len(docs); d++) {
      kv *doc = kv_list_at(docs, d);
      if (kv_kind_of(doc) == KV_NULL) continue; /* "---" followed by nothing */
      const kv_srcpos *pos = kv_pos(doc);
      kv *entry = kv_map_new(4);
      kv_map_set_str(entry, "file", kv_cstring(argv[i]));
      kv_map_set_str(entry, "index", kv_int((int64_t)d));
      kv_map_set_str(entry, "line", kv_int(pos ? (int64_t)pos->line : 0));
      kv_map_set_str(entry, "doc", kv_ref(doc));
      kv_list_push(all, entry);
    }
    kv_unref(docs);
  }
  if (rc == 0) {
    char *out = kv_json_write(all, 0, NULL);
    printf("%s\n", out);
    free(out);
  }
  kv_unref(all);
  return rc;
}
