/*
 * agent/session.h: koreo-agent's control-plane session (issue 5, agent side
 * of docs/agent-protocol.md).  Owns the long-lived connection to the
 * control plane: registration with the bootstrap token when --state-dir
 * holds no identity (agent/tls.h), dialing with the stored certificate,
 * Hello/HelloAck, heartbeats both ways with a dead-peer timeout of three
 * intervals, reconnection with capped, jittered exponential backoff, and
 * at-least-once delivery (include/koreo/frame.h): reliable messages go
 * through a kframe_outbox persisted in the state dir as an append-only
 * journal (outbox.log, agent/outbox_log.h) and are replayed after every
 * reconnect; received reliable messages are deduped by
 * a kframe_inbox whose high-water mark is persisted (inbox.seq) before it is
 * acknowledged.
 *
 * The session does not interpret WatchSet/ApplyRequest/...: it hands every
 * new (non-duplicate) control-plane message to on_message.  Everything runs
 * on the caller's event_base thread.
 */
#ifndef KOREO_AGENT_SESSION_H
#define KOREO_AGENT_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "tls.h"

typedef struct ksession ksession;

typedef struct ksession_opts {
  /* host, port, cluster, state_dir (required), bootstrap_token, ca_file,
   * timeout_ms, agent_version; last_acked_sequence is ignored (the session
   * keeps its own inbox). */
  ktls_agent_opts tls;
  long heartbeat_ms;   /* default interval when HelloAck says 0; 0 = 10000 */
  long backoff_min_ms; /* first reconnect delay; 0 = 250 */
  long backoff_max_ms; /* cap; 0 = 30000 */
  /* Further control-plane replicas, "HOST:PORT" each (borrowed, copied):
   * attempts go to tls.host:tls.port first and move to the next address
   * after every failed attempt or lost connection, round robin. */
  const char *const *alt_servers;
  size_t n_alt_servers;
  /* A new reliable or unsequenced control-plane message other than
   * Heartbeat/HelloAck (borrowed: valid during the call).  Runs after the
   * inbox advanced; the ack goes out after it returns. */
  void (*on_message)(ksession *s, const kframe_envelope *env, void *arg);
  /* Connection state changes: connected=true after HelloAck, false when the
   * connection (or an attempt) ended; msg says why.  May be NULL. */
  void (*on_state)(ksession *s, bool connected, const char *msg, void *arg);
  void *arg;
} ksession_opts;

/* Counters (tests, metrics). */
typedef struct ksession_stats {
  unsigned registrations, connects, disconnects, failures;
  uint64_t heartbeats_sent, heartbeats_received;
  uint64_t delivered, duplicates, replayed;
} ksession_stats;

/* ksession_new: a session that starts dialing at once (registering first
 * when state_dir has no cert.pem and a bootstrap token is given).  The
 * outbox and inbox are loaded from state_dir (created 0700 if missing).
 * Strings in opts are copied.  NULL + err on bad options or an unreadable
 * persisted outbox. */
ksession *ksession_new(struct event_base *base, const ksession_opts *opts, ktls_err *err);

/* ksession_send: queue a reliable message (copied; sequence/ack ignored),
 * persist the outbox, and transmit it now when connected.  Returns its
 * sequence (>= 1) or 0 with err (no body, outbox full, I/O). */
uint64_t ksession_send(ksession *s, const kframe_envelope *env, ktls_err *err);

/* ksession_send_unsequenced: send an unsequenced message (Error) now when
 * connected (sequence 0, never replayed); dropped otherwise.  Returns true
 * when it was written. */
bool ksession_send_unsequenced(ksession *s, const kframe_envelope *env);

bool ksession_connected(const ksession *s);
/* The heartbeat interval in use (HelloAck's, else the default), ms. */
long ksession_heartbeat_ms(const ksession *s);
/* Unacknowledged reliable messages held. */
size_t ksession_pending(const ksession *s);
/* Highest control-plane sequence processed (what the session acks). */
uint64_t ksession_inbox_last(const ksession *s);
const ksession_stats *ksession_get_stats(const ksession *s);
/* ksession_drop: close the current connection as if the peer went away and
 * reconnect after backoff (tests, and the agent on protocol errors). */
void ksession_drop(ksession *s, const char *why);
void ksession_free(ksession *s);

#endif
