-- schema/migrations/0001_init.sql: the control plane's tables (issue 6,
-- docs/schema.md).  Applied by `koreo-controlplane migrate` and at start,
-- under pg_advisory_lock(hashtext('koreo-migrations')), in one transaction.
-- Times are timestamptz (UTC); names follow Kubernetes (apiVersion -> api_version).
-- Koreo values and objects are `json`, not `jsonb`: Koreo maps keep their
-- insertion order (spec 10.1.12), which jsonb would lose.

-- Registered clusters: one row per cluster name, whether or not its agent is
-- connected.  `state`: pending (token issued, never connected), online,
-- offline (missed three heartbeats or disconnected; `state_reason` says why).
CREATE TABLE clusters (
  name              text PRIMARY KEY,
  labels            jsonb NOT NULL DEFAULT '{}'::jsonb,
  cert_fingerprint  text,            -- SHA-256 of the agent's certificate (hex)
  cert_not_after    timestamptz,
  state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'online', 'offline')),
  state_reason      text NOT NULL DEFAULT '',
  last_heartbeat    timestamptz,
  agent_version     text NOT NULL DEFAULT '',
  replica           text,            -- control-plane replica holding the session
  lease_until       timestamptz,     -- that replica's lease on the session
  connected_at      timestamptz,
  agent_seq         bigint NOT NULL DEFAULT 0, -- highest agent sequence processed (HelloAck)
  created_at        timestamptz NOT NULL DEFAULT now()
);

-- One-time bootstrap tokens "kbt.<id>.<secret>.<pin>": only SHA-256(secret) kept.
CREATE TABLE bootstrap_tokens (
  id           text PRIMARY KEY,     -- 16 hex digits
  secret_hash  text NOT NULL,        -- hex SHA-256 of the secret
  cluster      text NOT NULL,
  expires_at   timestamptz NOT NULL,
  used_at      timestamptz,
  created_by   text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Every generation of every definition; the current one is the highest
-- generation, and `deleted` marks a generation that removed it.
CREATE TABLE definitions (
  kind          text NOT NULL,       -- Workflow, ValueFunction, ResourceFunction, ...
  namespace     text NOT NULL,
  name          text NOT NULL,
  generation    bigint NOT NULL,
  content_hash  text NOT NULL,       -- "sha256:<hex>" of the canonical JSON source
  source        json,                -- the definition document as applied (json keeps
                                     -- its key order; NULL when deleted)
  deleted       boolean NOT NULL DEFAULT false,
  applied_by    text NOT NULL DEFAULT '',  -- API token id or "cli"
  applied_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, namespace, name, generation)
);
CREATE VIEW current_definitions AS
  SELECT DISTINCT ON (kind, namespace, name) *
    FROM definitions
   ORDER BY kind, namespace, name, generation DESC;

-- The latest object of each trigger per cluster (from TriggerEvent/Snapshot).
CREATE TABLE triggers (
  cluster           text NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
  api_version       text NOT NULL,
  kind              text NOT NULL,
  namespace         text NOT NULL,   -- '' for cluster-scoped
  name              text NOT NULL,
  uid               text NOT NULL DEFAULT '',
  resource_version  text NOT NULL DEFAULT '',
  object            json,            -- as the agent sent it (key order kept)
  deleted           boolean NOT NULL DEFAULT false,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  -- the trigger's previous run, for repeat counting (issue 6 item 5)
  last_run_id         bigint,
  last_run_started_at timestamptz,
  last_run_fingerprint text,
  last_outcome      text,
  PRIMARY KEY (cluster, api_version, kind, namespace, name)
);

-- Durable work queue: at most one row per (trigger, workflow); a new event
-- moves `due_at` earlier instead of adding a row (coalescing).  A replica
-- claims due rows with FOR UPDATE SKIP LOCKED and holds them with a lease.
CREATE TABLE work_queue (
  id             bigserial PRIMARY KEY,
  cluster        text NOT NULL,
  api_version    text NOT NULL,
  kind           text NOT NULL,
  namespace      text NOT NULL,
  name           text NOT NULL,
  workflow       text NOT NULL,      -- "<namespace>/<name>" of the Workflow
  due_at         timestamptz NOT NULL DEFAULT now(),
  reason         text NOT NULL DEFAULT '',  -- event, resync, retry, definition-changed, ...
  attempts       integer NOT NULL DEFAULT 0, -- consecutive failed runs (backoff)
  claimed_by     text,
  claimed_until  timestamptz,
  enqueued_at    timestamptz NOT NULL DEFAULT now(),
  version        bigint NOT NULL DEFAULT 1, -- bumped by every enqueue; a finishing
                                            -- run reschedules only if unchanged
  UNIQUE (cluster, api_version, kind, namespace, name, workflow)
);
CREATE INDEX work_queue_due ON work_queue (due_at);

-- Workflow runs, partitioned by day of started_at (koreo_ensure_partitions).
CREATE TABLE workflow_runs (
  id             bigint NOT NULL,
  started_at     timestamptz NOT NULL,
  finished_at    timestamptz,
  last_seen_at   timestamptz NOT NULL,
  repeat_count   integer NOT NULL DEFAULT 1,
  workflow       text NOT NULL,
  cluster        text NOT NULL,
  api_version    text NOT NULL,
  kind           text NOT NULL,
  namespace      text NOT NULL,
  name           text NOT NULL,
  outcome        text NOT NULL,      -- Ok, Skip, DepSkip, Retry, PermFail
  message        text NOT NULL DEFAULT '',
  location       text NOT NULL DEFAULT '',
  state          json,
  conditions     json,
  fingerprint    text NOT NULL,      -- sha256 of outcome + state + step results
  replica        text NOT NULL DEFAULT '',
  duration_ms    double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE SEQUENCE workflow_runs_id_seq;
CREATE INDEX workflow_runs_started ON workflow_runs (started_at DESC, id DESC);
CREATE INDEX workflow_runs_trigger ON workflow_runs (cluster, kind, namespace, name);

CREATE TABLE step_runs (
  run_id          bigint NOT NULL,
  run_started_at  timestamptz NOT NULL,
  ordinal         integer NOT NULL,  -- position in the Workflow's step list
  label           text NOT NULL,
  outcome         text NOT NULL,
  message         text NOT NULL DEFAULT '',
  location        text NOT NULL DEFAULT '',
  value           json,              -- Ok value
  resource_ids    json,              -- managed resource(s)
  started_at      timestamptz,
  finished_at     timestamptz,
  duration_ms     double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, run_started_at, ordinal)
) PARTITION BY RANGE (run_started_at);

-- Daily partitions of both tables from `from_day` for `days` days (idempotent).
CREATE FUNCTION koreo_ensure_partitions(from_day date, days integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE d date; t text;
BEGIN
  FOR i IN 0 .. days - 1 LOOP
    d := from_day + i;
    FOREACH t IN ARRAY ARRAY['workflow_runs', 'step_runs'] LOOP
      EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                     t || '_' || to_char(d, 'YYYYMMDD'), t, d, d + 1);
    END LOOP;
  END LOOP;
END $$;

-- Drop the daily partitions that end before `before_day`; returns how many.
CREATE FUNCTION koreo_drop_partitions(before_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE r record; n integer := 0;
BEGIN
  FOR r IN SELECT c.relname FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname IN ('workflow_runs', 'step_runs')
              AND to_date(right(c.relname, 8), 'YYYYMMDD') < before_day LOOP
    EXECUTE format('DROP TABLE %I', r.relname);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

-- API bearer tokens "kat.<id>.<secret>": only SHA-256(secret) kept.
CREATE TABLE api_tokens (
  id           text PRIMARY KEY,     -- 16 hex digits
  secret_hash  text NOT NULL,
  role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  clusters     text[],               -- NULL: every cluster; else only these
  description  text NOT NULL DEFAULT '',
  created_by   text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  revoked_at   timestamptz
);

-- Changes made through the API (and the CLI's direct database commands).
CREATE TABLE audit_log (
  id        bigserial PRIMARY KEY,
  at        timestamptz NOT NULL DEFAULT now(),
  actor     text NOT NULL,           -- API token id, or "cli"
  action    text NOT NULL,           -- definition.apply, definition.delete, token.create, ...
  target    text NOT NULL DEFAULT '',
  detail    jsonb
);
