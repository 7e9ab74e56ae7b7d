/*
 * core/defs/loader.c: the loader (issue 3 item 1): reading definition
 * files and directories (recursive, sorted, by extension), every YAML
 * document of each, staging the Koreo definitions in the registry and
 * keeping the other documents, then preparing everything in dependency
 * order.  This is the only code in core/ that reads files.
 *
 * A YAML syntax error loses only the document it is in: the stream is then
 * re-read document by document (split at `---` lines, line numbers kept).
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "defs/defs_impl.h"

typedef struct kd_entry kd_entry;
kd_entry *kd_registry_stage(kdef_registry *r, kv *doc, kdef_diags *diags, const kv **replaced);
void kd_registry_prepare_pending(kdef_registry *r, kdef_changes *changes);

static bool has_suffix(const char *s, const char *suf) {
  size_t n = strlen(s), m = strlen(suf);
  return n >= m && strcmp(s + n - m, suf) == 0;
}

static bool definition_file(const char *name) {
  static const char *const exts[] = {".koreo", ".k", ".k.yaml", ".k.yml", ".yaml", ".yml", NULL};
  for (const char *const *e = exts; *e; e++)
    if (has_suffix(name, *e)) return true;
  return false;
}

static void stage_doc(kdef_registry *r, kv *doc, kdef_diags *diags) {
  if (doc->kind == KV_NULL) return; /* empty document */
  const kv *replaced = NULL;
  kd_registry_stage(r, doc, diags, &replaced);
  if (replaced) {
    const kv_srcpos *pos = kv_pos(doc), *old = kv_pos(replaced);
    const kv *md = kv_map_get_str(doc, "metadata");
    const kv *nm = md && md->kind == KV_MAP ? kv_map_get_str(md, "name") : NULL;
    kd_diag_add(diags, pos ? pos->file : NULL, pos ? pos->line : 0, pos ? pos->col : 0,
                kdef_kind_from_name(kv_str(kv_map_get_str(doc, "kind"))),
                nm && nm->kind == KV_STRING ? kv_str(nm) : NULL, "metadata.name", false,
                "duplicate definition: replaces the one at %s:%u:%u (kind, namespace "
                "and name "
                "must be unique)",
                old && old->file ? old->file : "?", old ? old->line : 0, old ? old->col : 0);
    kv_unref((kv *)replaced);
  }
}

/* Is line `p` (len bytes up to the newline) a document separator? */
static bool separator(const char *p, size_t len) {
  if (len < 3 || strncmp(p, "---", 3) != 0) return false;
  return len == 3 || p[3] == ' ' || p[3] == '\t' || p[3] == '\r';
}

static void load_stream(kdef_registry *r, const char *text, size_t len, const char *file,
                        kdef_diags *diags) {
  kv_parse_error err;
  kv *docs = kv_yaml_parse(text, len, file, &err);
  if (docs) {
    for (size_t i = 0; i < kv_len(docs); i++)
      stage_doc(r, kv_list_at(docs, i), diags);
    kv_unref(docs);
    return;
  }
  /* re-read document by document; a chunk starting at line L is parsed
   * after L-1 newlines so positions stay right */
  size_t start = 0;
  uint32_t line = 1, start_line = 1;
  for (size_t i = 0; i <= len; i++) {
    bool eol = i == len || text[i] == '\n';
    if (!eol) continue;
    size_t ls = i; /* find the line start */
    while (ls > 0 && text[ls - 1] != '\n')
      ls--;
    bool sep = i < len && separator(text + ls, i - ls);
    if (sep || i == len) {
      size_t end = sep ? ls : len;
      if (end > start) {
        size_t pad = start_line - 1;
        char *buf = malloc(pad + (end - start) + 1);
        if (!buf) kv_oom();
        memset(buf, '\n', pad);
        memcpy(buf + pad, text + start, end - start);
        buf[pad + end - start] = 0;
        kv_parse_error e2;
        kv *d = kv_yaml_parse(buf, pad + end - start, file, &e2);
        if (d) {
          for (size_t k = 0; k < kv_len(d); k++)
            stage_doc(r, kv_list_at(d, k), diags);
          kv_unref(d);
        } else {
          kd_diag_add(diags, file, e2.line, e2.col, KDEF_KIND_NONE, NULL, NULL, false,
                      "YAML syntax error: %s", e2.msg);
        }
        free(buf);
      }
      start = i < len ? i + 1 : len;
      start_line = line + 1;
    }
    line++;
  }
}

static void load_file(kdef_registry *r, const char *path, kdef_diags *diags) {
  kv_parse_error err;
  size_t len = 0;
  char *text = kv_read_file(path, &len, &err);
  if (!text) {
    kd_diag_add(diags, path, 0, 0, KDEF_KIND_NONE, NULL, NULL, false, "cannot read file: %s",
                err.msg);
    return;
  }
  load_stream(r, text, len, kv_intern_file(path), diags);
  free(text);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_dir(kdef_registry *r, const char *path, kdef_diags *diags, int depth) {
  DIR *dir = opendir(path);
  if (!dir) {
    kd_diag_add(diags, path, 0, 0, KDEF_KIND_NONE, NULL, NULL, false, "cannot read directory: %s",
                strerror(errno));
    return;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(dir))) {
    if (de->d_name[0] == '.') continue; /* ., .., hidden files */
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **p = realloc(names, cap * sizeof *p);
      if (!p) kv_oom();
      names = p;
    }
    names[n++] = kd_printf("%s/%s", path, de->d_name);
  }
  closedir(dir);
  qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (stat(names[i], &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        if (depth < 32) load_dir(r, names[i], diags, depth + 1);
      } else if (S_ISREG(st.st_mode) && definition_file(names[i]))
        load_file(r, names[i], diags);
    }
    free(names[i]);
  }
  free(names);
}

static void diag_failures(kdef_registry *r, kdef_changes *ch, kdef_diags *diags) {
  for (size_t i = 0; i < ch->n; i++) {
    const kdef_change *c = &ch->items[i];
    kdef_definition *d = kdef_registry_get(r, c->kind, c->ns, c->name);
    if (d && !kdef_outcome_is_ok(&d->status)) kd_diag_outcome(diags, d, &d->status, false);
  }
}

/* kdef_load_paths: see definition.h. */
size_t kdef_load_paths(kdef_registry *r, const char *const *paths, size_t n, kdef_diags *diags) {
  size_t before = diags ? kdef_diags_errors(diags) : 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (stat(paths[i], &st) != 0) {
      kd_diag_add(diags, paths[i], 0, 0, KDEF_KIND_NONE, NULL, NULL, false, "cannot read: %s",
                  strerror(errno));
      continue;
    }
    /* trailing slashes off, so file names in messages look the same */
    char *p = kd_strdup(paths[i]);
    size_t l = strlen(p);
    while (l > 1 && p[l - 1] == '/')
      p[--l] = 0;
    if (S_ISDIR(st.st_mode))
      load_dir(r, p, diags, 0);
    else
      load_file(r, p, diags);
    free(p);
  }
  kdef_changes ch = {0};
  kd_registry_prepare_pending(r, &ch);
  diag_failures(r, &ch, diags);
  kdef_changes_free(&ch);
  return diags ? kdef_diags_errors(diags) - before : 0;
}

/* kdef_load_text: see definition.h. */
size_t kdef_load_text(kdef_registry *r, const char *text, size_t len, const char *file,
                      kdef_diags *diags) {
  size_t before = diags ? kdef_diags_errors(diags) : 0;
  load_stream(r, text, len, file ? kv_intern_file(file) : NULL, diags);
  kdef_changes ch = {0};
  kd_registry_prepare_pending(r, &ch);
  diag_failures(r, &ch, diags);
  kdef_changes_free(&ch);
  return diags ? kdef_diags_errors(diags) - before : 0;
}
