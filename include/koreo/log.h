/*
 * koreo/log.h: the processes' log lines (koreo-agent, koreo-controlplane):
 * one line per message on stderr, either text "TS LEVEL msg" or a JSON
 * object {"ts","level","msg"} (--log-format json), with TS the UTC time as
 * ISO-8601 with milliseconds ("2026-11-22T20:45:48.533Z").  Process-wide
 * settings; the callers' own level enums (agent_log_level, cp_log_level)
 * use the same numbering.
 */
#ifndef KOREO_LOG_H
#define KOREO_LOG_H

#include <stdarg.h>
#include <stdbool.h>

typedef enum koreo_log_level {
  KOREO_LOG_DEBUG = 0,
  KOREO_LOG_INFO = 1,
  KOREO_LOG_WARN = 2,
  KOREO_LOG_ERROR = 3,
} koreo_log_level;

/* JSON lines when `json`, else text; lines below `min` are dropped.
 * Defaults: text, info. */
void koreo_log_setup(bool json, koreo_log_level min);

/* One line (printf format, no trailing newline needed). */
void koreo_logv(koreo_log_level lvl, const char *fmt, va_list ap);

#endif
