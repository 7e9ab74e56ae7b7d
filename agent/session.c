/*
 * agent/session.c: the agent's control-plane session (agent/session.h):
 * register/dial over agent/tls.h, heartbeats, reconnect backoff, and
 * at-least-once delivery with a persisted kframe_outbox / kframe_inbox
 * (docs/agent-protocol.md "Delivery rules").
 */
#include "session.h"

#include "outbox_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

struct ksession {
  struct event_base *base;
  ksession_opts o;
  char *host, *cluster, *state_dir, *token, *ca_file, *agent_version;
  char **srv_host; /* every replica address: [0] = tls.host:tls.port */
  int *srv_port;
  size_t n_srv, cur_srv;
  char inbox_path[4096];
  ktls_client *client; /* current attempt or connection */
  bool registering;    /* client is a registration */
  bool connected;
  kobl *log;         /* the persisted outbox journal (outbox.log) */
  kframe_outbox *ob; /* its outbox */
  kframe_inbox in;
  long hb_ms;          /* interval in use */
  long backoff_ms;     /* next reconnect delay */
  int64_t last_rx_ms;  /* monotonic ms of the last byte-level message */
  struct event *retry; /* reconnect timer */
  struct event *hb;    /* heartbeat timer */
  struct event *reap;  /* deferred free of a dead client */
  ktls_client *dead;
  bufferevent_data_cb tls_read;
  void *tls_arg;
  ksession_stats st;
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_state(ksession *s, bool up, const char *msg) {
  if (s->o.on_state) s->o.on_state(s, up, msg, s->o.arg);
}

/* ---------------------------------------------------------------- persistence */

static bool inbox_save(ksession *s) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", s->inbox_path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return false;
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%" PRIu64 "\n", s->in.last);
  bool ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
  close(fd);
  return ok && rename(tmp, s->inbox_path) == 0;
}

static void inbox_load(ksession *s) {
  FILE *f = fopen(s->inbox_path, "r");
  if (!f) return;
  uint64_t v = 0;
  if (fscanf(f, "%" SCNu64, &v) == 1) s->in.last = v;
  fclose(f);
}

/* ---------------------------------------------------------------- sending */

static void send_frame(ksession *s, const uint8_t *buf, size_t len) {
  struct bufferevent *bev = s->client ? ktls_client_bev(s->client) : NULL;
  if (bev) bufferevent_write(bev, buf, len);
}

static void send_heartbeat(ksession *s) {
  Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__Heartbeat h = KOREO__AGENT__V1__HEARTBEAT__INIT;
  h.sent_unix_ms = wall_ms();
  e.ack = s->in.last;
  e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT;
  e.heartbeat = &h;
  uint8_t *buf;
  size_t len;
  if (kframe_encode(&e, 0, &buf, &len, NULL) != KFRAME_OK) return;
  send_frame(s, buf, len);
  free(buf);
  s->st.heartbeats_sent++;
}

static void flush_outbox(ksession *s) {
  uint8_t *frame;
  size_t len;
  while (s->connected && kframe_outbox_next(s->ob, s->in.last, &frame, &len, NULL)) {
    send_frame(s, frame, len);
    free(frame);
  }
}

/* ---------------------------------------------------------------- lifecycle */

static void start_attempt(ksession *s);

static void schedule_retry(ksession *s) {
  long d = s->backoff_ms;
  /* full jitter in [d/2, d] */
  long j = d / 2 + (long)(random() % (d / 2 + 1));
  struct timeval tv = {j / 1000, (j % 1000) * 1000};
  evtimer_add(s->retry, &tv);
  long max = s->o.backoff_max_ms;
  s->backoff_ms = d * 2 > max ? max : d * 2;
  if (s->n_srv > 1) s->cur_srv = (s->cur_srv + 1) % s->n_srv; /* next replica */
}

static void reap_cb(evutil_socket_t fd, short w, void *arg) {
  (void)fd;
  (void)w;
  ksession *s = arg;
  ktls_client_free(s->dead);
  s->dead = NULL;
}

/* The current client is finished: free it outside its own callbacks, note
 * the disconnect and schedule a reconnect. */
static void lose_client(ksession *s, const char *why) {
  if (!s->client) return;
  bool was = s->connected;
  s->connected = false;
  evtimer_del(s->hb);
  struct bufferevent *bev = ktls_client_bev(s->client);
  if (bev) bufferevent_disable(bev, EV_READ | EV_WRITE);
  if (s->dead) ktls_client_free(s->dead);
  s->dead = s->client;
  s->client = NULL;
  event_active(s->reap, 0, 0);
  if (was)
    s->st.disconnects++;
  else
    s->st.failures++;
  set_state(s, false, why);
  schedule_retry(s);
}

void ksession_drop(ksession *s, const char *why) { lose_client(s, why ? why : "dropped"); }

static void hb_cb(evutil_socket_t fd, short w, void *arg) {
  (void)fd;
  (void)w;
  ksession *s = arg;
  if (!s->connected) return;
  if (mono_ms() - s->last_rx_ms > 3 * s->hb_ms) {
    lose_client(s, "no message from the control plane for three heartbeat intervals");
    return;
  }
  send_heartbeat(s);
}

static void ack_now(ksession *s) { send_heartbeat(s); }

static bool on_envelope(ktls_client *c, kframe_envelope *env, void *arg) {
  ksession *s = arg;
  if (c != s->client) { /* a dropped connection still draining its input */
    kframe_envelope_free(env);
    return true;
  }
  s->last_rx_ms = mono_ms();
  if (env->ack) kobl_ack(s->log, env->ack);
  if (env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT) {
    s->st.heartbeats_received++;
    kframe_envelope_free(env);
    return true;
  }
  kframe_verdict v = kframe_inbox_accept(&s->in, env->sequence);
  if (v == KFRAME_DUPLICATE) {
    s->st.duplicates++;
    kframe_envelope_free(env);
    ack_now(s); /* the peer did not see our ack: repeat it */
    return true;
  }
  s->st.delivered++;
  if (s->o.on_message) s->o.on_message(s, env, s->o.arg);
  kframe_envelope_free(env);
  if (v != KFRAME_UNSEQUENCED) {
    if (!inbox_save(s))
      fprintf(stderr, "koreo-agent: session: saving %s: %s\n", s->inbox_path, strerror(errno));
    ack_now(s);
  }
  return true;
}

/* Event callback installed over the TLS client's: the client does not report
 * a closed established connection, so the session watches for it here. */
static void conn_event(struct bufferevent *bev, short what, void *arg) {
  (void)bev;
  ksession *s = arg;
  if (what & BEV_EVENT_EOF)
    lose_client(s, "connection closed by the control plane");
  else if (what & BEV_EVENT_ERROR)
    lose_client(s, "connection error");
}

/* Read callback installed with conn_event (libevent shares one argument
 * between a bufferevent's callbacks): hands the bytes to the TLS client. */
static void conn_read(struct bufferevent *bev, void *arg) {
  ksession *s = arg;
  s->tls_read(bev, s->tls_arg);
}

static void connect_done(ktls_client *c, int status, const char *msg, void *arg) {
  ksession *s = arg;
  if (c != s->client) return;
  if (s->registering) {
    s->registering = false;
    if (status == 0) {
      s->st.registrations++;
      /* the identity is stored: dial with it right away */
      if (s->dead) ktls_client_free(s->dead);
      s->dead = s->client;
      s->client = NULL;
      event_active(s->reap, 0, 0);
      start_attempt(s);
      return;
    }
    char why[700];
    snprintf(why, sizeof why, "registration failed: %s", msg);
    lose_client(s, why);
    return;
  }
  if (status != 0) {
    lose_client(s, msg);
    return;
  }
  const Koreo__Agent__V1__HelloAck *ack = ktls_client_hello_ack(c);
  s->connected = true;
  s->st.connects++;
  s->backoff_ms = s->o.backoff_min_ms;
  s->hb_ms =
      ack && ack->heartbeat_interval_ms ? (long)ack->heartbeat_interval_ms : s->o.heartbeat_ms;
  s->last_rx_ms = mono_ms();
  kobl_rewind(s->log, ack ? ack->last_acked_sequence : 0);
  s->st.replayed += kframe_outbox_count(s->ob);
  struct bufferevent *bev = ktls_client_bev(c);
  bufferevent_data_cb rd, wr;
  bufferevent_event_cb ev;
  void *cbarg;
  bufferevent_getcb(bev, &rd, &wr, &ev, &cbarg);
  (void)ev;
  (void)wr; /* the TLS client writes without a write callback */
  s->tls_read = rd;
  s->tls_arg = cbarg;
  bufferevent_setcb(bev, conn_read, NULL, conn_event, s);
  ktls_client_set_handler(c, on_envelope, s);
  struct timeval tv = {s->hb_ms / 1000, (s->hb_ms % 1000) * 1000};
  evtimer_add(s->hb, &tv);
  set_state(s, true, msg);
  flush_outbox(s);
  if (s->connected) send_heartbeat(s); /* carries our ack at once */
}

static void start_attempt(ksession *s) {
  ktls_err err = {{0}};
  ktls_agent_opts o = s->o.tls;
  o.host = s->srv_host[s->cur_srv];
  o.port = s->srv_port[s->cur_srv];
  o.cluster = s->cluster;
  o.state_dir = s->state_dir;
  o.bootstrap_token = s->token;
  o.ca_file = s->ca_file;
  o.agent_version = s->agent_version;
  o.last_acked_sequence = s->in.last;
  char path[4200];
  snprintf(path, sizeof path, "%s/cert.pem", s->state_dir);
  bool have_id = access(path, R_OK) == 0;
  if (!have_id && !s->token) {
    set_state(s, false, "no identity in the state dir and no --bootstrap-token to register");
    s->st.failures++;
    schedule_retry(s);
    return;
  }
  s->registering = !have_id;
  s->client = s->registering ? ktls_client_register(s->base, &o, connect_done, s, &err)
                             : ktls_client_connect(s->base, &o, connect_done, s, &err);
  if (!s->client) {
    s->registering = false;
    s->st.failures++;
    set_state(s, false, err.msg);
    schedule_retry(s);
  }
}

static void retry_cb(evutil_socket_t fd, short w, void *arg) {
  (void)fd;
  (void)w;
  start_attempt(arg);
}

static char *dup_or_null(const char *p) { return p ? strdup(p) : NULL; }

ksession *ksession_new(struct event_base *base, const ksession_opts *opts, ktls_err *err) {
  const ktls_agent_opts *t = &opts->tls;
  if (!t->host || !t->cluster || !t->state_dir || t->port <= 0 || t->port > 65535) {
    snprintf(err->msg, sizeof err->msg,
             "session: --server HOST:PORT, --cluster-name and --state-dir are required");
    return NULL;
  }
  if (mkdir(t->state_dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err->msg, sizeof err->msg, "session: creating state dir %s: %s", t->state_dir,
             strerror(errno));
    return NULL;
  }
  ksession *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err->msg, sizeof err->msg, "session: out of memory");
    return NULL;
  }
  s->base = base;
  s->o = *opts;
  if (!s->o.heartbeat_ms) s->o.heartbeat_ms = 10000;
  if (!s->o.backoff_min_ms) s->o.backoff_min_ms = 250;
  if (!s->o.backoff_max_ms) s->o.backoff_max_ms = 30000;
  if (s->o.backoff_max_ms < s->o.backoff_min_ms) s->o.backoff_max_ms = s->o.backoff_min_ms;
  s->backoff_ms = s->o.backoff_min_ms;
  s->hb_ms = s->o.heartbeat_ms;
  s->host = strdup(t->host);
  s->n_srv = 1 + opts->n_alt_servers;
  s->srv_host = calloc(s->n_srv, sizeof *s->srv_host);
  s->srv_port = calloc(s->n_srv, sizeof *s->srv_port);
  if (!s->srv_host || !s->srv_port) abort();
  s->srv_host[0] = strdup(t->host);
  s->srv_port[0] = t->port;
  for (size_t i = 0; i < opts->n_alt_servers; i++) {
    const char *a = opts->alt_servers[i], *colon = strrchr(a, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (!colon || colon == a || port <= 0 || port > 65535) {
      snprintf(err->msg, sizeof err->msg, "session: server address '%s' is not HOST:PORT", a);
      s->n_srv = i + 1;
      ksession_free(s);
      return NULL;
    }
    s->srv_host[i + 1] = strndup(a, (size_t)(colon - a));
    s->srv_port[i + 1] = port;
  }
  s->cluster = strdup(t->cluster);
  s->state_dir = strdup(t->state_dir);
  s->token = dup_or_null(t->bootstrap_token);
  s->ca_file = dup_or_null(t->ca_file);
  s->agent_version = dup_or_null(t->agent_version);
  snprintf(s->inbox_path, sizeof s->inbox_path, "%s/inbox.seq", t->state_dir);
  inbox_load(s);
  char lerr[sizeof err->msg - 16];
  s->log = kobl_open(t->state_dir, 64u << 20, lerr, sizeof lerr);
  s->ob = s->log ? kobl_outbox(s->log) : NULL;
  s->retry = evtimer_new(base, retry_cb, s);
  s->hb = event_new(base, -1, EV_PERSIST, hb_cb, s);
  s->reap = event_new(base, -1, 0, reap_cb, s);
  if (!s->ob || !s->host || !s->cluster || !s->state_dir || !s->retry || !s->hb || !s->reap) {
    snprintf(err->msg, sizeof err->msg, "session: %s",
             s->log ? "out of memory" : lerr); /* lerr names the file */
    ksession_free(s);
    return NULL;
  }
  srandom((unsigned)(wall_ms() ^ getpid()));
  start_attempt(s);
  return s;
}

uint64_t ksession_send(ksession *s, const kframe_envelope *env, ktls_err *err) {
  kframe_error fe = {0};
  uint64_t seq = kobl_push(s->log, env, &fe);
  if (!seq) {
    snprintf(err->msg, sizeof err->msg, "session: queueing %s: %s",
             kframe_body_name(env->body_case), fe.msg);
    return 0;
  }
  if (fe.code) /* queued in memory, not on disk: delivered unless we restart first */
    fprintf(stderr, "koreo-agent: session: %s\n", fe.msg);
  flush_outbox(s);
  return seq;
}

bool ksession_send_unsequenced(ksession *s, const kframe_envelope *env) {
  if (!s->connected) return false;
  kframe_envelope e = *env;
  e.sequence = 0;
  e.ack = s->in.last;
  uint8_t *buf;
  size_t len;
  if (kframe_encode(&e, 0, &buf, &len, NULL) != KFRAME_OK) return false;
  send_frame(s, buf, len);
  free(buf);
  return true;
}

bool ksession_connected(const ksession *s) { return s->connected; }
long ksession_heartbeat_ms(const ksession *s) { return s->hb_ms; }
size_t ksession_pending(const ksession *s) { return kframe_outbox_count(s->ob); }
uint64_t ksession_inbox_last(const ksession *s) { return s->in.last; }
const ksession_stats *ksession_get_stats(const ksession *s) { return &s->st; }

void ksession_free(ksession *s) {
  if (!s) return;
  if (s->client) ktls_client_free(s->client);
  if (s->dead) ktls_client_free(s->dead);
  if (s->retry) event_free(s->retry);
  if (s->hb) event_free(s->hb);
  if (s->reap) event_free(s->reap);
  kobl_close(s->log);
  free(s->host);
  for (size_t i = 0; i < s->n_srv; i++)
    free(s->srv_host[i]);
  free(s->srv_host);
  free(s->srv_port);
  free(s->cluster);
  free(s->state_dir);
  free(s->token);
  free(s->ca_file);
  free(s->agent_version);
  free(s);
}
