/*
 * cli/koreoctl.c: `koreoctl`, the command-line tool.  This file owns the
 * command dispatch and the `eval` command:
 *
 *   koreoctl eval EXPR [--bindings JSON|@FILE] [--cel] [--pretty]
 *
 * EXPR is a Koreo value spec: a string starting with `=` is a Koreo
 * Expression (`=inputs.a + 1`), anything else is a literal value encoded
 * as upstream Koreo encodes it (spec 2.1).  With --cel, EXPR is plain CEL
 * evaluated in the standard environment (all extension libraries).
 * Bindings map variable names to values: inline JSON, or @FILE with a
 * .json, .yaml or .yml file.  Prints the result as JSON; on error prints
 * where and why and exits 1 (usage errors exit 2).
 */
#include "commands.h"
#include "koreo/cel.h"
#include "koreo/expr.h"
#include "koreo/json.h"
#include "remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fputs("usage: koreoctl <command> [options]\n"
        "\n"
        "commands:\n"
        "  eval EXPR [--bindings JSON|@FILE] [--cel] [--pretty]\n"
        "      Evaluate a Koreo Expression (\"=inputs.a + 1\") or, with --cel, a plain\n"
        "      CEL expression, and print the result as JSON.\n"
        "  test [PATH...] [-o text|json|junit] [--run REGEX] [-v]\n"
        "      Run the FunctionTests found in PATH (default \".\").\n"
        "  validate [PATH...] [-o text|json] [-q]\n"
        "      Load, prepare and check the definitions in PATH (default \".\"); every\n"
        "      problem with FILE:LINE:COL.\n"
        "  run --workflow NAME --trigger FILE [--loops N] [-o text|json] [PATH...]\n"
        "      Dry-run a Workflow against an in-memory cluster.\n"
        "\n"
        "remote commands (against koreo-controlplane; --server URL --token T --ca-file F,\n"
        "or KOREO_SERVER/KOREO_TOKEN/KOREO_CA_FILE, or ~/.config/koreo/config.yaml):\n"
        "  apply -f PATH...         Validate and store definitions (one batch).\n"
        "  get definitions|clusters|triggers\n"
        "  delete definition KIND/NAME [-n NS]\n"
        "  executions list [--workflow --cluster --trigger --outcome --since --until --limit]\n"
        "  executions show ID\n"
        "  tokens bootstrap --cluster NAME [--ttl 1h]\n"
        "  tokens create --role viewer|operator|admin [--clusters a,b] [--ttl D]\n"
        "  tokens revoke ID           Revoke an API token (its id, or the token itself).\n"
        "      Output: -o table|json|yaml.  'koreoctl get --help' shows the details.\n"
        "  help                     Show this help.\n",
        f);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Read --bindings: inline JSON or @FILE (.json / .yaml / .yml). */
static kv *load_bindings(const char *arg) {
  kv_parse_error perr = {0};
  if (arg[0] != '@') {
    kv *v = kv_json_parse(arg, strlen(arg), &perr);
    if (!v) {
      fprintf(stderr, "koreoctl eval: --bindings: line %u, column %u: %s\n", perr.line, perr.col,
              perr.msg);
      return NULL;
    }
    return v;
  }
  const char *path = arg + 1;
  size_t len;
  char *text = kv_read_file(path, &len, &perr);
  if (!text) {
    fprintf(stderr, "koreoctl eval: --bindings: %s: %s\n", path, perr.msg);
    return NULL;
  }
  kv *v = NULL;
  if (ends_with(path, ".yaml") || ends_with(path, ".yml")) {
    kv *docs = kv_yaml_parse(text, len, path, &perr);
    if (docs) {
      if (kv_len(docs) != 1)
        fprintf(stderr, "koreoctl eval: --bindings: %s: expected one YAML document, found %zu\n",
                path, kv_len(docs));
      else
        v = kv_ref(kv_list_at(docs, 0));
      kv_unref(docs);
    }
  } else {
    v = kv_json_parse(text, len, &perr);
  }
  free(text);
  if (!v && perr.msg[0])
    fprintf(stderr, "koreoctl eval: --bindings: %s:%u:%u: %s\n", path, perr.line, perr.col,
            perr.msg);
  return v;
}

/* Show the source line with a caret under column `col` (1-based). */
static void show_caret(const char *src, uint32_t line, uint32_t col) {
  if (!src || !line) return;
  const char *p = src;
  for (uint32_t l = 1; l < line && p; l++) {
    p = strchr(p, '\n');
    if (p) p++;
  }
  if (!p) return;
  const char *e = strchr(p, '\n');
  int n = e ? (int)(e - p) : (int)strlen(p);
  fprintf(stderr, "  | %.*s\n  | ", n, p);
  /* col counts code points: advance over the line's bytes */
  uint32_t c = 1;
  for (const char *q = p; q < p + n && c < col; q++) {
    if (((unsigned char)*q & 0xC0) == 0x80) continue;
    fputc(*q == '\t' ? '\t' : ' ', stderr);
    c++;
  }
  fputs("^\n", stderr);
}

static int print_result(const kv *v, bool pretty) {
  char *out = kv_json_write(v, pretty ? KV_JSON_PRETTY : 0, NULL);
  puts(out);
  free(out);
  return 0;
}

int cmd_eval(int argc, char **argv) {
  const char *expr = NULL, *bindings_arg = NULL;
  bool plain_cel = false, pretty = false;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--bindings") == 0 || strcmp(argv[i], "-b") == 0) {
      if (i + 1 >= argc) {
        fputs("koreoctl eval: --bindings needs a value\n", stderr);
        return 2;
      }
      bindings_arg = argv[++i];
    } else if (strncmp(argv[i], "--bindings=", 11) == 0) {
      bindings_arg = argv[i] + 11;
    } else if (strcmp(argv[i], "--cel") == 0) {
      plain_cel = true;
    } else if (strcmp(argv[i], "--pretty") == 0) {
      pretty = true;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (!expr) {
      expr = argv[i];
    } else {
      fprintf(stderr, "koreoctl eval: unexpected argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (!expr) {
    fputs("koreoctl eval: missing the expression\n", stderr);
    usage(stderr);
    return 2;
  }
  kv *bindings = NULL;
  if (bindings_arg) {
    bindings = load_bindings(bindings_arg);
    if (!bindings) return 1;
    if (bindings->kind != KV_MAP) {
      fprintf(stderr, "koreoctl eval: --bindings must be an object of variable names, got %s\n",
              kv_kind_name(bindings->kind));
      kv_unref(bindings);
      return 1;
    }
  }
  int rc = 1;
  if (plain_cel) {
    cel_env *env = cel_env_new_standard(CEL_EXT_STRINGS | CEL_EXT_MATH | CEL_EXT_ENCODERS |
                                        CEL_EXT_BINDINGS | CEL_EXT_COMPREHENSIONS2);
    cel_status st;
    cel_program *p = cel_compile(env, expr, strlen(expr), &st);
    if (!p) {
      fprintf(stderr, "koreoctl eval: error at line %u, column %u: %s\n", st.line, st.col, st.msg);
      show_caret(expr, st.line, st.col);
    } else {
      kv *v = cel_eval(p, bindings, &st);
      if (!v) {
        fprintf(stderr, "koreoctl eval: evaluation failed at line %u, column %u: %s\n", st.line,
                st.col, st.msg);
        show_caret(expr, st.line, st.col);
      } else {
        rc = print_result(v, pretty);
        kv_unref(v);
      }
      cel_program_free(p);
    }
    cel_env_free(env);
  } else {
    cel_env *env = cel_env_new_koreo();
    kv *spec = kv_cstring(expr);
    koreo_error err;
    koreo_expr *e = koreo_expr_prepare(env, spec, KOREO_SHAPE_EXPRESSION, "expression", &err);
    if (!e) {
      fprintf(stderr, "koreoctl eval: %s\n", err.message);
    } else {
      kv *v = koreo_expr_eval(e, bindings, &err);
      if (!v) {
        fprintf(stderr, "koreoctl eval: %s\n", err.message);
        show_caret(koreo_expr_source(e), err.line, err.col);
      } else {
        rc = print_result(v, pretty);
        kv_unref(v);
      }
      koreo_expr_free(e);
    }
    if (!e) show_caret(expr[0] == '=' ? expr + strspn(expr, "=") : NULL, err.line, err.col);
    kv_unref(spec);
    cel_env_free(env);
  }
  kv_unref(bindings);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "eval") == 0) return cmd_eval(argc - 2, argv + 2);
  if (strcmp(cmd, "validate") == 0) return cmd_validate(argc - 2, argv + 2);
  if (strcmp(cmd, "test") == 0) return cmd_test(argc - 2, argv + 2);
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
  if (strcmp(cmd, "apply") == 0 || strcmp(cmd, "get") == 0 || strcmp(cmd, "delete") == 0 ||
      strcmp(cmd, "executions") == 0 || strcmp(cmd, "tokens") == 0)
    return cmd_remote(cmd, argc - 2, argv + 2);
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "koreoctl: unknown command '%s'\n", cmd);
  usage(stderr);
  return 2;
}
