/*
 * cli/cmd_run.c: `koreoctl run`, a dry run of a Workflow (spec 6) against
 * an in-memory cluster (kube_memcluster):
 *
 *   koreoctl run --workflow NAME --trigger FILE [--loops N] [-o text|json]
 * [PATH...]
 *
 * Loads the definitions under PATH (default "."), seeds the in-memory
 * cluster with the non-Koreo documents found there (CRDs, Namespaces,
 * manifests) and with the trigger object of FILE (given a uid, and the
 * namespace NS when it is namespaced and has none), then runs N reconcile
 * loops (default 1).  For each loop it prints every step's outcome, the
 * resources the loop created, patched or deleted, and the trigger's
 * resulting `status` (conditions and state), which the host writes back
 * onto the trigger (spec 6.11) so the next loop sees it.  Resources
 * created in one loop exist in the next.  The clock is fixed
 * (2024-01-01T00:00:<loop>Z) so output is reproducible.  The text report
 * shows write bodies without Koreo's last-applied annotation (a copy of
 * the body); -o json shows them whole.
 *
 * Exit status: 0 when the last loop's outcome is not a PermFail, 1 when it
 * is or when something could not be loaded, 2 for usage errors.
 */
#include "commands.h"
#include "koreo/definition.h"
#include "koreo/eval.h"
#include "koreo/json.h"
#include "koreo/kube_ops.h"
#include "koreo/outcome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run_usage(FILE *f) {
  fputs("usage: koreoctl run --workflow NAME --trigger FILE [--loops N] [-o "
        "text|json] "
        "[PATH...]\n"
        "\n"
        "Dry-run Workflow NAME for the trigger object in FILE against an "
        "in-memory\n"
        "cluster seeded with the non-Koreo documents found in PATH (default "
        "\".\").\n"
        "  --loops N            reconcile loops to run (default 1); resources "
        "created\n"
        "                       in one loop exist in the next\n"
        "  -o, --output FORMAT  text (default) or json (one object per loop)\n"
        "  --namespace NS       the namespace of a namespaced trigger that has none\n"
        "                       (default \"default\", as kubectl apply does)\n",
        f);
}

static const char *str_at(const kv *m, const char *a, const char *b) {
  const kv *v = m && m->kind == KV_MAP ? kv_map_get_str(m, a) : NULL;
  if (v && b) v = v->kind == KV_MAP ? kv_map_get_str(v, b) : NULL;
  return v && v->kind == KV_STRING ? kv_str(v) : NULL;
}

/* Read the trigger object: the one document of FILE (YAML or JSON). */
static kv *read_trigger(const char *path) {
  kv_parse_error err = {0};
  size_t len;
  char *text = kv_read_file(path, &len, &err);
  if (!text) {
    fprintf(stderr, "koreoctl run: --trigger %s: %s\n", path, err.msg);
    return NULL;
  }
  kv *docs = kv_yaml_parse(text, len, path, &err);
  free(text);
  if (!docs) {
    fprintf(stderr, "koreoctl run: %s:%u:%u: %s\n", path, err.line, err.col, err.msg);
    return NULL;
  }
  kv *t = NULL;
  size_t n = 0;
  for (size_t i = 0; i < kv_len(docs); i++)
    if (kv_kind_of(kv_list_at(docs, i)) != KV_NULL) {
      if (!t) t = kv_ref(kv_list_at(docs, i));
      n++;
    }
  kv_unref(docs);
  if (n != 1) {
    fprintf(stderr, "koreoctl run: --trigger %s: expected one document, found %zu\n", path, n);
    kv_unref(t);
    return NULL;
  }
  if (t->kind != KV_MAP || !str_at(t, "apiVersion", NULL) || !str_at(t, "kind", NULL) ||
      !str_at(t, "metadata", "name")) {
    fprintf(stderr,
            "koreoctl run: --trigger %s: the trigger needs apiVersion, kind and "
            "metadata.name\n",
            path);
    kv_unref(t);
    return NULL;
  }
  return t;
}

/* Whether objects of (apiVersion, kind) are namespaced: the built-in
 * table, else a CustomResourceDefinition among the loaded documents, else
 * assumed namespaced (as most custom resources are). */
static bool is_namespaced(const char *api_version, const char *kind, const kv *others) {
  const char *plural;
  bool namespaced = true;
  if (kube_builtin_type(api_version, kind, &plural, &namespaced)) return namespaced;
  const char *slash = strchr(api_version, '/');
  size_t glen = slash ? (size_t)(slash - api_version) : 0;
  for (size_t i = 0; others && i < kv_len(others); i++) {
    const kv *o = kv_list_at(others, i);
    const char *k = str_at(o, "kind", NULL);
    if (!k || strcmp(k, "CustomResourceDefinition") != 0) continue;
    const kv *spec = kv_map_get_str(o, "spec");
    const char *group = str_at(spec, "group", NULL), *ckind = str_at(spec, "names", "kind");
    if (!group || !ckind || strcmp(ckind, kind) != 0) continue;
    if (strlen(group) != glen || strncmp(group, api_version, glen) != 0) continue;
    const char *scope = str_at(spec, "scope", NULL);
    return !scope || strcmp(scope, "Cluster") != 0;
  }
  return true;
}

/* A copy of the trigger as an API server would store it: metadata.uid set
 * when it has none (ownerReferences need it) and, for a namespaced kind
 * without a namespace, metadata.namespace = `ns` (as `kubectl apply`
 * does). */
static kv *as_stored(const kv *t, const char *ns, const kv *others) {
  const kv *meta = kv_map_get_str(t, "metadata");
  bool add_uid = !str_at(t, "metadata", "uid");
  bool add_ns = !str_at(t, "metadata", "namespace") &&
                is_namespaced(str_at(t, "apiVersion", NULL), str_at(t, "kind", NULL), others);
  if (!add_uid && !add_ns) return kv_ref((kv *)t);
  kv *m2 = kv_map_new(kv_len(meta) + 2);
  for (size_t i = 0; i < kv_len(meta); i++)
    kv_map_set(m2, kv_ref(kv_map_key_at(meta, i)), kv_ref(kv_map_val_at(meta, i)));
  if (add_ns) kv_map_set_str(m2, "namespace", kv_cstring(ns));
  if (add_uid) kv_map_set_str(m2, "uid", kv_cstring("dry-run-trigger-uid"));
  kv *t2 = kv_map_new(kv_len(t));
  for (size_t i = 0; i < kv_len(t); i++) {
    kv *k = kv_map_key_at(t, i);
    bool is_meta = k->kind == KV_STRING && strcmp(kv_str(k), "metadata") == 0;
    kv_map_set(t2, kv_ref(k), is_meta ? kv_ref(m2) : kv_ref(kv_map_val_at(t, i)));
  }
  kv_unref(m2);
  return t2;
}

static bool str_eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* Whether document `o` is the trigger's own manifest: same apiVersion,
 * kind and name, and no namespace or the same one. */
static bool same_object(const kv *o, const kv *trigger) {
  const char *ons = str_at(o, "metadata", "namespace");
  return str_eq(str_at(o, "apiVersion", NULL), str_at(trigger, "apiVersion", NULL)) &&
         str_eq(str_at(o, "kind", NULL), str_at(trigger, "kind", NULL)) &&
         str_eq(str_at(o, "metadata", "name"), str_at(trigger, "metadata", "name")) &&
         (!ons || str_eq(ons, str_at(trigger, "metadata", "namespace")));
}

/* Print `v` as pretty JSON with every line indented by `indent`. */
static void print_pretty(const kv *v, const char *indent) {
  char *s = kv_json_write(v, KV_JSON_PRETTY, NULL);
  fputs(indent, stdout);
  for (const char *p = s; *p; p++) {
    fputc(*p, stdout);
    if (*p == '\n' && p[1]) fputs(indent, stdout);
  }
  fputc('\n', stdout);
  free(s);
}

/* The outcome's text, Ok data shortened. */
static void print_outcome(const koreo_outcome *o) {
  if (o->kind != KOREO_OK) {
    char *t = koreo_outcome_text(o);
    fputs(t, stdout);
    free(t);
    return;
  }
  size_t n;
  char *s = kv_json_write(o->value ? o->value : kv_null(), 0, &n);
  if (n > 120)
    printf("Ok(data=%.117s...)", s);
  else
    printf("Ok(data=%s)", s);
  free(s);
}

/* A copy of `m` without key `drop`; when `repl_key` is set, that key's
 * value becomes `repl` (taken). */
static kv *map_edit(const kv *m, const char *drop, const char *repl_key, kv *repl) {
  kv *out = kv_map_new(kv_len(m));
  for (size_t i = 0; i < kv_len(m); i++) {
    kv *k = kv_map_key_at(m, i);
    const char *ks = k->kind == KV_STRING ? kv_str(k) : "";
    if (drop && strcmp(ks, drop) == 0) continue;
    bool r = repl_key && strcmp(ks, repl_key) == 0;
    kv_map_set(out, kv_ref(k), r ? kv_ref(repl) : kv_ref(kv_map_val_at(m, i)));
  }
  kv_unref(repl);
  return out;
}

/* A write body as the text report shows it: without Koreo's
 * last-applied annotation (a copy of the body itself; -o json keeps it),
 * and without `annotations` when that was the only one. */
static kv *without_last_applied(const kv *body) {
  const kv *meta = body->kind == KV_MAP ? kv_map_get_str(body, "metadata") : NULL;
  const kv *ann = meta && meta->kind == KV_MAP ? kv_map_get_str(meta, "annotations") : NULL;
  if (!ann || ann->kind != KV_MAP || !kv_map_get_str(ann, KOREO_LAST_APPLIED_ANNOTATION))
    return kv_ref((kv *)body);
  kv *meta2 = kv_len(ann) == 1 ? map_edit(meta, "annotations", NULL, NULL)
                               : map_edit(meta, NULL, "annotations",
                                          map_edit(ann, KOREO_LAST_APPLIED_ANNOTATION, NULL, NULL));
  return map_edit(body, NULL, "metadata", meta2);
}

static void print_writes(const kv *journal) {
  for (size_t i = 0; i < kv_len(journal); i++) {
    const kv *w = kv_list_at(journal, i);
    const char *verb = str_at(w, "verb", NULL), *ns = str_at(w, "namespace", NULL);
    const char *st = str_at(w, "status", NULL);
    printf("  %s %s %s %s%s%s", verb ? verb : "?", str_at(w, "apiVersion", NULL),
           str_at(w, "kind", NULL), ns ? ns : "", ns ? "/" : "", str_at(w, "name", NULL));
    if (st && strcmp(st, "ok") != 0) printf(" (%s)", st);
    fputc('\n', stdout);
    const kv *body = kv_map_get_str(w, "body");
    if (body && body->kind != KV_NULL) {
      kv *shown = without_last_applied(body);
      print_pretty(shown, "      ");
      kv_unref(shown);
    }
  }
}

int cmd_run(int argc, char **argv) {
  const char *wf_name = NULL, *trigger_path = NULL, *format = "text", *default_ns = "default";
  long loops = 1;
  const char **paths = calloc((size_t)argc + 1, sizeof *paths);
  if (!paths) kv_oom();
  size_t npaths = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char **dst = NULL;
    if (strcmp(a, "--workflow") == 0 || strcmp(a, "-w") == 0)
      dst = &wf_name;
    else if (strcmp(a, "--trigger") == 0 || strcmp(a, "-t") == 0)
      dst = &trigger_path;
    else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
      dst = &format;
    else if (strcmp(a, "--namespace") == 0)
      dst = &default_ns;
    if (dst) {
      if (i + 1 >= argc) {
        fprintf(stderr, "koreoctl run: %s needs a value\n", a);
        free(paths);
        return 2;
      }
      *dst = argv[++i];
    } else if (strcmp(a, "--loops") == 0 || strcmp(a, "-n") == 0 ||
               strncmp(a, "--loops=", 8) == 0) {
      const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
      char *end = NULL;
      loops = v ? strtol(v, &end, 10) : 0;
      if (!v || !*v || *end || loops < 1 || loops > 1000) {
        fprintf(stderr, "koreoctl run: --loops needs a number from 1 to 1000\n");
        free(paths);
        return 2;
      }
    } else if (strncmp(a, "--workflow=", 11) == 0) {
      wf_name = a + 11;
    } else if (strncmp(a, "--trigger=", 10) == 0) {
      trigger_path = a + 10;
    } else if (strncmp(a, "--output=", 9) == 0) {
      format = a + 9;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      run_usage(stdout);
      free(paths);
      return 0;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "koreoctl run: unknown option '%s'\n", a);
      run_usage(stderr);
      free(paths);
      return 2;
    } else {
      paths[npaths++] = a;
    }
  }
  bool json = strcmp(format, "json") == 0;
  if (!wf_name || !trigger_path || (!json && strcmp(format, "text") != 0)) {
    fputs(!wf_name        ? "koreoctl run: --workflow is required\n"
          : !trigger_path ? "koreoctl run: --trigger is required\n"
                          : "koreoctl run: unknown output format (use text or json)\n",
          stderr);
    run_usage(stderr);
    free(paths);
    return 2;
  }
  if (npaths == 0) paths[npaths++] = ".";

  kv *trigger0 = read_trigger(trigger_path);
  if (!trigger0) {
    free(paths);
    return 1;
  }
  int rc = 1;
  kdef_registry *reg = kdef_registry_new();
  kdef_diags diags = {0};
  kdef_load_paths(reg, paths, npaths, &diags);
  for (size_t i = 0; i < diags.n; i++) {
    char *s = kdef_diag_format(&diags.items[i]);
    fprintf(stderr, "koreoctl run: %s%s\n", diags.items[i].warning ? "warning: " : "", s);
    free(s);
  }
  kdef_diags_free(&diags);
  kube_memcluster *mc = kube_memcluster_new();
  kdef_definition *wf = kdef_registry_lookup(reg, KDEF_WORKFLOW, wf_name);
  if (!wf) {
    fprintf(stderr, "koreoctl run: Workflow '%s' not found in", wf_name);
    for (size_t i = 0; i < npaths; i++)
      fprintf(stderr, " %s", paths[i]);
    fputc('\n', stderr);
    goto out;
  }
  kdef_ref(wf);

  /* seed the cluster: the documents found in PATH (except the trigger's
   * own manifest, which the stored trigger replaces), then the trigger */
  char err[512];
  const kv *others = kdef_registry_others(reg);
  kv *trigger = as_stored(trigger0, default_ns, others);
  for (size_t i = 0; others && i < kv_len(others); i++) {
    const kv *o = kv_list_at(others, i);
    if (same_object(o, trigger)) continue;
    if (kube_memcluster_put(mc, o, err, sizeof err) != 0)
      fprintf(stderr, "koreoctl run: warning: not seeded: %s\n", err);
  }
  if (kube_memcluster_put(mc, trigger, err, sizeof err) != 0) {
    fprintf(stderr, "koreoctl run: --trigger %s: %s\n", trigger_path, err);
    kv_unref(trigger);
    kdef_unref(wf);
    goto out;
  }
  const char *t_api = str_at(trigger, "apiVersion", NULL), *t_kind = str_at(trigger, "kind", NULL);
  const char *t_ns = str_at(trigger, "metadata", "namespace");
  const char *t_name = str_at(trigger, "metadata", "name");
  kv_unref(kube_memcluster_take_journal(mc)); /* seeding is not part of the report */

  if (!json)
    printf("Workflow %s, trigger %s %s %s%s%s, %ld loop%s\n", wf->name, t_api, t_kind,
           t_ns ? t_ns : "", t_ns ? "/" : "", t_name, loops, loops == 1 ? "" : "s");
  koreo_eval_ctx ctx = {.registry = reg};
  kube_ops ops = kube_memcluster_ops(mc);
  koreo_outcome_kind last = KOREO_OK;
  for (long loop = 1; loop <= loops; loop++) {
    kv *cur = kube_memcluster_get(mc, t_api, t_kind, t_ns, t_name);
    if (!cur) {
      fprintf(stderr, "koreoctl run: loop %ld: the trigger is gone from the cluster\n", loop);
      break;
    }
    kv *parent = koreo_parent_from_trigger(cur);
    kv *oref = koreo_owner_ref_from_trigger(cur);
    koreo_owner owner = {.ns = t_ns, .ref = oref};
    koreo_run *run = koreo_run_workflow(&ctx, wf, parent, &owner, NULL);
    koreo_run_sync(run, &ops);
    const koreo_workflow_result *res = koreo_run_workflow_result(run);
    kv *journal = kube_memcluster_take_journal(mc);
    char now[64];
    snprintf(now, sizeof now, "2024-01-01T00:%02ld:%02ld.000000+00:00", (loop / 60) % 60,
             loop % 60);
    kv *patch = koreo_status_patch(cur, res, now);
    if (kube_memcluster_merge_patch(mc, t_api, t_kind, t_ns, t_name, patch, err, sizeof err) != 0)
      fprintf(stderr, "koreoctl run: loop %ld: writing the trigger status: %s\n", loop, err);
    kv *after = kube_memcluster_get(mc, t_api, t_kind, t_ns, t_name);
    const kv *status = after ? kv_map_get_str(after, "status") : NULL;
    last = res->outcome.kind;
    if (json) {
      kv *o = kv_map_new(6);
      kv_map_set_str(o, "loop", kv_int(loop));
      kv_map_set_str(o, "outcome", koreo_outcome_to_kv(&res->outcome));
      kv *steps = kv_list_new(res->n_steps);
      for (size_t i = 0; i < res->n_steps; i++) {
        kv *s = kv_map_new(3);
        kv_map_set_str(s, "label", kv_cstring(res->steps[i].label));
        kv_map_set_str(s, "outcome", koreo_outcome_to_kv(&res->steps[i].outcome));
        if (res->steps[i].resource_ids)
          kv_map_set_str(s, "resourceIds", kv_ref((kv *)res->steps[i].resource_ids));
        kv_list_push(steps, s);
      }
      kv_map_set_str(o, "steps", steps);
      kv_map_set_str(o, "writes", kv_ref(journal));
      kv_map_set_str(o, "status", status ? kv_ref((kv *)status) : kv_null());
      char *line = kv_json_write(o, 0, NULL);
      puts(line);
      free(line);
      kv_unref(o);
    } else {
      printf("\n=== loop %ld: ", loop);
      print_outcome(&res->outcome);
      fputc('\n', stdout);
      size_t w = 0;
      for (size_t i = 0; i < res->n_steps; i++) {
        size_t l = strlen(res->steps[i].label);
        if (l > w) w = l;
      }
      for (size_t i = 0; i < res->n_steps; i++) {
        printf("  step %-*s  ", (int)w, res->steps[i].label);
        print_outcome(&res->steps[i].outcome);
        fputc('\n', stdout);
      }
      if (kv_len(journal)) {
        printf("writes (%zu):\n", kv_len(journal));
        print_writes(journal);
      } else {
        puts("writes: none");
      }
      puts("trigger status:");
      if (status)
        print_pretty(status, "  ");
      else
        puts("  (none)");
    }
    kv_unref(after);
    kv_unref(patch);
    kv_unref(journal);
    koreo_run_free(run);
    kv_unref(oref);
    kv_unref(parent);
    kv_unref(cur);
  }
  rc = last == KOREO_PERMFAIL ? 1 : 0;
  kv_unref(trigger);
  kdef_unref(wf);
out:
  kube_memcluster_free(mc);
  kdef_registry_free(reg);
  kv_unref(trigger0);
  free(paths);
  return rc;
}
