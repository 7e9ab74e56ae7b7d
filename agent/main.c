/*
 * agent/main.c: the `koreo-agent` executable: flag parsing (issue 5 item
 * 3 and 5), the logger set-up, the one libevent loop, signal handling and
 * the health listener (/healthz, /readyz, /metrics over libevent's evhttp).
 * Standalone mode is agent/standalone.c; control-plane mode (--server,
 * --bootstrap-token, ...) is agent/cpmode.c when the build has the session
 * library (KOREO_AGENT_SESSION), else it is refused with a clear message.
 */
#include "standalone.h"
#ifdef KOREO_AGENT_SESSION
#include "cpmode.h"
#endif

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fputs("usage: koreo-agent --standalone --definitions DIR [DIR...] [options]\n"
        "\n"
        "Standalone mode: run Koreo Workflows against this cluster with no control plane.\n"
        "  --definitions DIR...   files or directories with Koreo definitions (repeatable;\n"
        "                         every argument up to the next option); changes are\n"
        "                         picked up without a restart\n"
        "  --kubeconfig FILE      kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)\n"
        "  --context NAME         kubeconfig context (default: current-context)\n"
        "  --resync DURATION      re-run period of settled triggers (default 20m)\n"
        "  --reload-interval DUR  how often definition files are checked (default 2s)\n"
        "  --run-timeout DUR      deadline of one Workflow run (default 30s)\n"
        "  --backoff-max DUR      cap of the error backoff (default 5m)\n"
        "  --max-concurrent-runs N  Workflow runs in flight at most (default 16)\n"
        "  --log-format json|text log line format (default text)\n"
        "  --log-level LEVEL      debug, info, warn or error (default info)\n"
        "  --health-listen ADDR   serve /healthz, /readyz and /metrics on HOST:PORT\n"
        "DURATION: a number with unit ms, s, m or h (a bare number is seconds).\n",
        f);
#ifndef KOREO_AGENT_SESSION
  fputs("\nControl-plane mode (--server, --cluster-name, --bootstrap-token, --state-dir,\n"
        "--ca-file, --no-autonomy) is not available in this build.\n",
        f);
#else
  fputs("\nControl-plane mode: koreo-agent --server HOST:PORT --cluster-name NAME --state-dir DIR\n"
        "  [--bootstrap-token TOKEN] [--ca-file FILE] [--kubeconfig FILE] [--context NAME]\n"
        "  --server H:P[,H:P...]  the control plane; several replicas are tried in turn\n"
        "  --bootstrap-token TOKEN registers (first start; the identity is kept in DIR)\n"
        "  --bootstrap-token-file FILE  the same, read from FILE (or $KOREO_BOOTSTRAP_TOKEN)\n"
        "  --run-timeout DUR      default deadline of an ApplyRequest (default 30s)\n"
        "  --no-autonomy          never reconcile on its own while the control plane is away\n"
        "  --autonomy-after DUR   run the cached definitions after the connection has been down\n"
        "                         this long (default three heartbeat intervals)\n",
        f);
#endif
}

/* "250ms", "30s", "20m", "1h", "45" (seconds) -> milliseconds, -1 if bad. */
static int64_t parse_duration(const char *s) {
  char *end = NULL;
  double v = strtod(s, &end);
  if (end == s || v < 0) return -1;
  double mult = 1000;
  if (strcmp(end, "ms") == 0)
    mult = 1;
  else if (strcmp(end, "s") == 0 || !*end)
    mult = 1000;
  else if (strcmp(end, "m") == 0)
    mult = 60000;
  else if (strcmp(end, "h") == 0)
    mult = 3600000;
  else
    return -1;
  return (int64_t)(v * mult);
}

/* What the health endpoints ask the running mode. */
typedef struct health {
  bool (*ready)(const void *arg);
  char *(*metrics)(const void *arg); /* malloc'd */
  const void *arg;                   /* NULL until the mode runs */
} health;

static bool standalone_ready(const void *a) { return agent_standalone_ready(a); }
static char *standalone_metrics(const void *a) { return agent_standalone_metrics(a); }
#ifdef KOREO_AGENT_SESSION
static bool cp_ready(const void *c) { return agent_cp_ready(c); }
static char *cp_metrics(const void *c) { return agent_cp_metrics(c); }
#endif

static void on_http(struct evhttp_request *req, void *ud) {
  health *h = ud;
  const char *uri = evhttp_request_get_uri(req);
  struct evbuffer *out = evbuffer_new();
  int code = 200;
  const char *reason = "OK";
  const char *ctype = "text/plain; charset=utf-8";
  if (strcmp(uri, "/healthz") == 0 || strcmp(uri, "/livez") == 0) {
    evbuffer_add_printf(out, "ok\n");
  } else if (strcmp(uri, "/readyz") == 0) {
    if (h->arg && h->ready(h->arg)) {
      evbuffer_add_printf(out, "ok\n");
    } else {
      code = 503;
      reason = "Service Unavailable";
      evbuffer_add_printf(out, "not ready: definitions loading, trigger watches not synced, or "
                               "the control plane not connected\n");
    }
  } else if (strcmp(uri, "/metrics") == 0) {
    char *m = h->arg ? h->metrics(h->arg) : NULL;
    evbuffer_add_printf(out, "%s", m ? m : "");
    free(m);
    ctype = "text/plain; version=0.0.4";
  } else {
    code = 404;
    reason = "Not Found";
    evbuffer_add_printf(out, "not found; try /healthz, /readyz or /metrics\n");
  }
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
  evhttp_send_reply(req, code, reason, out);
  evbuffer_free(out);
}

static void on_signal(evutil_socket_t sig, short what, void *ud) {
  (void)what;
  agent_log(AGENT_INFO, "signal %d: shutting down", (int)sig);
  event_base_loopexit(ud, NULL);
}

int main(int argc, char **argv) {
  const char **defs = calloc((size_t)argc + 1, sizeof *defs);
  if (!defs) return 1;
  size_t ndefs = 0;
  bool standalone = false, log_json = false;
  agent_log_level level = AGENT_INFO;
  const char *health_addr = NULL, *cp_flag = NULL;
  agent_standalone_opts o = {0};
#ifdef KOREO_AGENT_SESSION
  agent_cp_opts cpo = {0};
#endif
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i];
    const char *val = NULL;
    char name[64];
    const char *eq = strncmp(f, "--", 2) == 0 ? strchr(f, '=') : NULL;
    if (eq && (size_t)(eq - f) < sizeof name) {
      snprintf(name, sizeof name, "%.*s", (int)(eq - f), f);
      val = eq + 1;
      f = name;
    }
#define NEED_VAL()                                                                                 \
  do {                                                                                             \
    if (!val) {                                                                                    \
      if (i + 1 >= argc) {                                                                         \
        fprintf(stderr, "koreo-agent: %s needs a value\n", f);                                     \
        free(defs);                                                                                \
        return 2;                                                                                  \
      }                                                                                            \
      val = argv[++i];                                                                             \
    }                                                                                              \
  } while (0)
    if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) {
      usage(stdout);
      free(defs);
      return 0;
    } else if (strcmp(f, "--standalone") == 0) {
      standalone = true;
    } else if (strcmp(f, "--definitions") == 0) {
      if (val) defs[ndefs++] = val;
      while (i + 1 < argc && argv[i + 1][0] != '-')
        defs[ndefs++] = argv[++i];
      if (!ndefs) {
        fprintf(stderr, "koreo-agent: --definitions needs at least one DIR\n");
        free(defs);
        return 2;
      }
    } else if (strcmp(f, "--kubeconfig") == 0) {
      NEED_VAL();
      o.kubeconfig = val;
    } else if (strcmp(f, "--context") == 0) {
      NEED_VAL();
      o.context = val;
    } else if (strcmp(f, "--resync") == 0 || strcmp(f, "--reload-interval") == 0 ||
               strcmp(f, "--run-timeout") == 0 || strcmp(f, "--backoff-max") == 0) {
      NEED_VAL();
      int64_t ms = parse_duration(val);
      if (ms <= 0 || ms > INT32_MAX) {
        fprintf(stderr, "koreo-agent: %s: '%s' is not a duration (e.g. 30s, 20m, 1h)\n", f, val);
        free(defs);
        return 2;
      }
      if (strcmp(f, "--resync") == 0)
        o.resync_ms = ms;
      else if (strcmp(f, "--reload-interval") == 0)
        o.reload_interval_ms = (int)ms;
      else if (strcmp(f, "--run-timeout") == 0)
        o.run_timeout_ms = (int)ms;
      else
        o.backoff_max_ms = (int)ms;
    } else if (strcmp(f, "--max-concurrent-runs") == 0) {
      NEED_VAL();
      char *end = NULL;
      long v = strtol(val, &end, 10);
      if (!*val || *end || v < 1 || v > 100000) {
        fprintf(stderr, "koreo-agent: --max-concurrent-runs needs a number from 1 to 100000\n");
        free(defs);
        return 2;
      }
      o.max_runs = (int)v;
    } else if (strcmp(f, "--log-format") == 0) {
      NEED_VAL();
      if (strcmp(val, "json") != 0 && strcmp(val, "text") != 0) {
        fprintf(stderr, "koreo-agent: --log-format must be json or text, not '%s'\n", val);
        free(defs);
        return 2;
      }
      log_json = strcmp(val, "json") == 0;
    } else if (strcmp(f, "--log-level") == 0) {
      NEED_VAL();
      static const char *lv[] = {"debug", "info", "warn", "error"};
      int found = -1;
      for (int k = 0; k < 4; k++)
        if (strcmp(val, lv[k]) == 0) found = k;
      if (found < 0) {
        fprintf(stderr, "koreo-agent: --log-level must be debug, info, warn or error\n");
        free(defs);
        return 2;
      }
      level = (agent_log_level)found;
    } else if (strcmp(f, "--health-listen") == 0) {
      NEED_VAL();
      health_addr = val;
    } else if (strcmp(f, "--server") == 0 || strcmp(f, "--cluster-name") == 0 ||
               strcmp(f, "--bootstrap-token") == 0 || strcmp(f, "--state-dir") == 0 ||
               strcmp(f, "--ca-file") == 0) {
      NEED_VAL();
      cp_flag = f;
#ifdef KOREO_AGENT_SESSION
      if (strcmp(f, "--server") == 0)
        cpo.server = val;
      else if (strcmp(f, "--cluster-name") == 0)
        cpo.cluster = val;
      else if (strcmp(f, "--bootstrap-token") == 0)
        cpo.bootstrap_token = val;
      else if (strcmp(f, "--state-dir") == 0)
        cpo.state_dir = val;
      else
        cpo.ca_file = val;
#endif
    } else if (strcmp(f, "--bootstrap-token-file") == 0) {
      NEED_VAL();
      cp_flag = f;
      /* the token from a file (a mounted Secret), so it is not in argv */
      static char tokbuf[512];
      FILE *tf = fopen(val, "r");
      size_t tn = tf ? fread(tokbuf, 1, sizeof tokbuf - 1, tf) : 0;
      if (tf) fclose(tf);
      while (tn > 0 && (tokbuf[tn - 1] == '\n' || tokbuf[tn - 1] == '\r' || tokbuf[tn - 1] == ' '))
        tn--;
      tokbuf[tn] = 0;
      if (!tf || tn == 0) {
        fprintf(stderr, "koreo-agent: --bootstrap-token-file: cannot read a token from '%s'\n",
                val);
        free(defs);
        return 2;
      }
#ifdef KOREO_AGENT_SESSION
      cpo.bootstrap_token = tokbuf;
#endif
    } else if (strcmp(f, "--no-autonomy") == 0) {
      cp_flag = f;
#ifdef KOREO_AGENT_SESSION
      cpo.no_autonomy = true;
#endif
    } else if (strcmp(f, "--autonomy-after") == 0) {
      NEED_VAL();
      cp_flag = f;
      int64_t ms = parse_duration(val);
      if (ms <= 0 || ms > INT32_MAX) {
        fprintf(stderr, "koreo-agent: %s: '%s' is not a duration (e.g. 30s, 20m, 1h)\n", f, val);
        free(defs);
        return 2;
      }
#ifdef KOREO_AGENT_SESSION
      cpo.autonomy_after_ms = (long)ms;
#endif
    } else {
      fprintf(stderr, "koreo-agent: unknown option '%s'\n", argv[i]);
      usage(stderr);
      free(defs);
      return 2;
    }
#undef NEED_VAL
  }
  bool cp_mode = false;
#ifdef KOREO_AGENT_SESSION
  if (!cpo.bootstrap_token && getenv("KOREO_BOOTSTRAP_TOKEN") && *getenv("KOREO_BOOTSTRAP_TOKEN"))
    cpo.bootstrap_token = getenv("KOREO_BOOTSTRAP_TOKEN");
  cp_mode = !standalone && cpo.server;
  cpo.kubeconfig = o.kubeconfig;
  cpo.context = o.context;
  cpo.apply_timeout_ms = o.run_timeout_ms;
#endif
  if (!standalone && !cp_mode) {
    fprintf(stderr,
            "koreo-agent: %s%scontrol-plane mode is not available in this build (or --server "
            "is missing); run with --standalone --definitions DIR\n",
            cp_flag ? cp_flag : "", cp_flag ? ": " : "");
    free(defs);
    return 2;
  }
  if (standalone && !ndefs) {
    fprintf(stderr, "koreo-agent: --standalone needs --definitions DIR\n");
    free(defs);
    return 2;
  }
  agent_log_setup(log_json, level);
  signal(SIGPIPE, SIG_IGN);
  struct event_base *base = event_base_new();
  if (!base) {
    fprintf(stderr, "koreo-agent: cannot create the event loop\n");
    free(defs);
    return 1;
  }
  o.def_paths = defs;
  o.n_def_paths = ndefs;
  /* the TLS library in use: linked into the executable in Release builds
   * (KOREO_AGENT_STATIC_TLS), so image scanners may not see it */
  agent_log(AGENT_INFO, "koreo-agent 0.1.0 (%s, libevent %s)", OpenSSL_version(OPENSSL_VERSION),
            event_get_version());
  health h = {0};
  struct evhttp *http = NULL;
  int rc = 0;
  if (health_addr) {
    char host[256];
    const char *colon = strrchr(health_addr, ':');
    int port = colon ? atoi(colon + 1) : 0;
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - health_addr) : 0, health_addr);
    if (!colon || port <= 0 || port > 65535) {
      fprintf(stderr, "koreo-agent: --health-listen needs HOST:PORT, not '%s'\n", health_addr);
      rc = 2;
      goto out;
    }
    http = evhttp_new(base);
    if (!http || evhttp_bind_socket(http, *host ? host : "0.0.0.0", (uint16_t)port) != 0) {
      fprintf(stderr, "koreo-agent: --health-listen %s: cannot listen there\n", health_addr);
      rc = 1;
      goto out;
    }
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(http, on_http, &h);
    agent_log(AGENT_INFO, "health endpoints on http://%s/healthz, /readyz, /metrics", health_addr);
  }
  agent_standalone *a = NULL;
#ifdef KOREO_AGENT_SESSION
  agent_cp *c = NULL;
  if (cp_mode) {
    if (!(c = agent_cp_new(base, &cpo, &rc))) goto out;
    h = (health){cp_ready, cp_metrics, c};
  }
#endif
  if (!cp_mode) {
    char err[512];
    a = agent_standalone_new(base, &o, err, sizeof err);
    if (!a) {
      agent_log(AGENT_ERROR, "%s", err);
      rc = 1;
      goto out;
    }
    h = (health){standalone_ready, standalone_metrics, a};
  }
  struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
  struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
  event_add(sigint, NULL);
  event_add(sigterm, NULL);
  event_base_dispatch(base);
  event_free(sigint);
  event_free(sigterm);
  h.arg = NULL;
  agent_standalone_free(a);
#ifdef KOREO_AGENT_SESSION
  agent_cp_free(c);
#endif
out:
  if (http) evhttp_free(http);
  event_base_free(base);
  free(defs);
  return rc;
}
