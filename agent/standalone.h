/*
 * agent/standalone.h: koreo-agent's standalone mode (issue 5 item 5): the
 * whole engine against the agent's own cluster with no control plane.
 * Loads definitions from directories, watches every Workflow crdRef kind,
 * runs the Workflow for each trigger object (koreo_run_* answered by the
 * kube client on the caller's libevent loop), writes conditions and
 * state back (spec 6.9-6.11), re-runs on Retry delays and the resync
 * period, backs off on errors, and hot-reloads when the files change.
 * Also the agent's small logger (text or JSON lines on stderr).
 */
#ifndef KOREO_AGENT_STANDALONE_H
#define KOREO_AGENT_STANDALONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* ---- logging ------------------------------------------------------------ */

typedef enum agent_log_level { AGENT_DEBUG, AGENT_INFO, AGENT_WARN, AGENT_ERROR } agent_log_level;

/* Process-wide log settings: `json` true writes one JSON object per line
 * ({"ts","level","msg"}), false "TS LEVEL msg"; lines below `min` are
 * dropped.  Defaults: text, INFO. */
void agent_log_setup(bool json, agent_log_level min);
/* One log line on stderr (printf format; a trailing newline is added). */
void agent_log(agent_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- standalone engine -------------------------------------------------- */

struct kv;
struct kube_config;
struct koreo_workflow_result;

/* What one finished Workflow run did (agent_standalone_opts.on_run): all
 * borrowed, valid during the call. */
typedef struct agent_run_report {
  const char *api_version, *kind, *ns, *name; /* the trigger (ns "" if cluster-scoped) */
  const struct kv *trigger;                   /* the trigger object the run saw */
  const char *workflow;                       /* the Workflow's name */
  const struct koreo_workflow_result *result; /* koreo_run_workflow_result */
  const struct kv *status_patch;              /* what is written onto the trigger (spec 6.11) */
  int64_t started_unix_ms;                    /* when the run started (wall clock, ms) */
} agent_run_report;

typedef struct agent_standalone_opts {
  const char *const *def_paths; /* --definitions DIR... (borrowed, copied) */
  size_t n_def_paths;
  /* Instead of def_paths: an in-memory definition set, a list of
   * documents (borrowed, referenced); no hot reload then.  Used by
   * control-plane mode's autonomous operation (agent/cpmode.c). */
  const struct kv *documents;
  /* Instead of kubeconfig/context: this configuration (borrowed, used
   * during agent_standalone_new only). */
  const struct kube_config *kube_config;
  /* Called after every finished Workflow run, before its status write
   * (may be NULL). */
  void (*on_run)(void *arg, const agent_run_report *r);
  void *on_run_arg;
  const char *kubeconfig; /* NULL: kubectl's order (KUBECONFIG, in-cluster, ~/.kube/config) */
  const char *context;    /* NULL: current context */
  int64_t resync_ms;      /* re-run period after Ok/Skip/DepSkip; 0 -> 20 min (spec 6.11) */
  int reload_interval_ms; /* how often DIR is checked for changes; 0 -> 2000 */
  int run_timeout_ms;     /* deadline per Workflow run; 0 -> 30000 (spec 6.11) */
  int backoff_min_ms;     /* first delay after a failed run/status write; 0 -> 1000 */
  int backoff_max_ms;     /* cap of the doubling backoff; 0 -> 300000 */
  int max_runs;           /* Workflow runs in flight at most (others queue); 0 -> 16 */
} agent_standalone_opts;

typedef struct agent_standalone agent_standalone;

/* Start standalone mode on `base` (borrowed; must outlive the engine):
 * loads the kube configuration (or uses opts->kube_config) and the
 * definitions (or opts->documents; diagnostics are
 * logged; a definition that does not prepare does not stop the others),
 * starts the trigger watches (a kind that is not served yet is retried
 * until its CRD appears) and the reload timer.  Returns NULL with a
 * message in err (errlen bytes) when the kube configuration cannot be
 * loaded or neither definitions paths nor documents are given. */
agent_standalone *agent_standalone_new(struct event_base *base, const agent_standalone_opts *opts,
                                       char *err, size_t errlen);
/* Stop everything (runs in flight are abandoned, nothing more is written). */
void agent_standalone_free(agent_standalone *a);

/* Readiness (/readyz): definitions loaded and every trigger watch has
 * delivered its initial list. */
bool agent_standalone_ready(const agent_standalone *a);

/* The engine's counters in Prometheus text format (/metrics), malloc'ed. */
char *agent_standalone_metrics(const agent_standalone *a);

/* Check the definition files now (as the reload timer does); returns true
 * when they changed and were reloaded. */
bool agent_standalone_check_reload(agent_standalone *a);

/* agent_trigger_fingerprint: the change fingerprint of spec 6.11 that
 * standalone mode uses to ignore status-only changes and Koreo's own
 * annotations: {metadata: {labels, annotations without koreo.dev* and
 * kubectl.kubernetes.io* keys}, spec} as JSON, malloc'd (caller frees).
 * Shared with the control-plane session's trigger watches
 * (agent/session_watch.c). */
char *agent_trigger_fingerprint(const struct kv *obj);

#endif
