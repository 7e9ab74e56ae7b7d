/*
 * tests/fuzz/fuzz_cel.c: libFuzzer target for the CEL engine through its
 * public API only (koreo/cel.h).  The input is an expression; it is
 * compiled in a standard environment (strings and math extensions) and in
 * the Koreo environment, and evaluated against a small fixed set of
 * bindings whenever it compiles.  No crash, leak or undefined behaviour is
 * allowed; failures must come back as a status with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/cel.h"

static kv *g_bindings;
static cel_env *g_envs[2];

static kv *make_bindings(void) {
  kv *b = kv_map_new(0);
  kv_map_set_str(b, "x", kv_int(7));
  kv_map_set_str(b, "y", kv_double(2.5));
  kv_map_set_str(b, "u", kv_uint(3));
  kv_map_set_str(b, "s", kv_cstring("hello w\xc3\xb6rld"));
  kv_map_set_str(b, "flag", kv_bool(true));
  kv_map_set_str(b, "nothing", kv_null());
  kv_map_set_str(b, "raw", kv_bytes("\x00\x01\xff", 3));
  kv *list = kv_list_new(0);
  for (int i = 0; i < 4; i++)
    kv_list_push(list, kv_int(i * 10));
  kv_list_push(list, kv_cstring("four"));
  kv_map_set_str(b, "items", list);
  kv *meta = kv_map_new(0);
  kv_map_set_str(meta, "name", kv_cstring("web"));
  kv_map_set_str(meta, "namespace", kv_cstring("prod"));
  kv *labels = kv_map_new(0);
  kv_map_set_str(labels, "app", kv_cstring("web"));
  kv_map_set_str(meta, "labels", labels);
  kv *spec = kv_map_new(0);
  kv_map_set_str(spec, "replicas", kv_int(3));
  kv *res = kv_map_new(0);
  kv_map_set_str(res, "apiVersion", kv_cstring("apps/v1"));
  kv_map_set_str(res, "kind", kv_cstring("Deployment"));
  kv_map_set_str(res, "metadata", meta);
  kv_map_set_str(res, "spec", spec);
  kv_map_set_str(b, "resource", res);
  kv *inputs = kv_map_new(0);
  kv_map_set_str(inputs, "name", kv_cstring("svc"));
  kv_map_set_str(inputs, "count", kv_int(2));
  kv_map_set_str(b, "inputs", inputs);
  kv_map_set_str(b, "when", kv_timestamp(1700000000, 5));
  kv_map_set_str(b, "span", kv_duration(90, 0));
  return b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  g_bindings = make_bindings();
  g_envs[0] = cel_env_new_standard(CEL_EXT_STRINGS | CEL_EXT_MATH);
  g_envs[1] = cel_env_new_koreo();
  if (!g_envs[0] || !g_envs[1]) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  for (int e = 0; e < 2; e++) {
    cel_status st;
    memset(&st, 0, sizeof st);
    cel_program *p = cel_compile(g_envs[e], (const char *)data, size, &st);
    if (!p) {
      if (!st.msg[0]) {
        fprintf(stderr, "fuzz_cel: compile failed without a message\n");
        abort();
      }
      continue;
    }
    memset(&st, 0, sizeof st);
    kv *v = cel_eval(p, g_bindings, &st);
    if (v) {
      kv_unref(v);
    } else if (!st.msg[0]) {
      fprintf(stderr, "fuzz_cel: evaluation failed without a message\n");
      abort();
    }
    kv *raw = cel_eval_value(p, g_bindings);
    if (!raw) {
      fprintf(stderr, "fuzz_cel: cel_eval_value returned NULL\n");
      abort();
    }
    kv_unref(raw);
    cel_program_free(p);
  }
  return 0;
}
