/*
 * core/log.c: the processes' log lines (include/koreo/log.h): text or JSON
 * lines on stderr, shared by koreo-agent and koreo-controlplane.
 */
#include "koreo/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "koreo/json.h"
#include "koreo/value.h"

static bool g_json;
static koreo_log_level g_min = KOREO_LOG_INFO;

void koreo_log_setup(bool json, koreo_log_level min) {
  g_json = json;
  g_min = min;
}

void koreo_logv(koreo_log_level lvl, const char *fmt, va_list ap) {
  if (lvl < g_min) return;
  static const char *names[] = {"debug", "info", "warn", "error"};
  if ((int)lvl < 0 || lvl > KOREO_LOG_ERROR) lvl = KOREO_LOG_ERROR;
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char base[32], when[48];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when, sizeof when, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
  const char *text = msg ? msg : "(out of memory)";
  if (g_json) {
    kv *o = kv_map_new(3);
    kv_map_set_str(o, "ts", kv_cstring(when));
    kv_map_set_str(o, "level", kv_cstring(names[lvl]));
    kv_map_set_str(o, "msg", kv_cstring(text));
    char *line = kv_json_write(o, 0, NULL);
    fprintf(stderr, "%s\n", line);
    free(line);
    kv_unref(o);
  } else {
    fprintf(stderr, "%s %-5s %s\n", when, names[lvl], text);
  }
  free(msg);
}
