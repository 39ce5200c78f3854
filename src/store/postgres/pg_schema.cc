// PgStore's schema and its migrations (docs/design/postgres.md, "Schema").
#include <string>

#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {

const int kPgSchemaVersion = 1;

namespace {

// Version 1. Times are milliseconds since the epoch (bigint), as in SQLite; bodies are bytea;
// attributes, journals and lineage are the JSON texts of store/codec.h.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE tenants(
  name text PRIMARY KEY,
  created_at bigint NOT NULL,
  quotas text NOT NULL DEFAULT '',
  deleting boolean NOT NULL DEFAULT false);
CREATE TABLE tokens(
  id text PRIMARY KEY,
  tenant text NOT NULL,
  label text NOT NULL,
  secret_hash text NOT NULL UNIQUE,
  scopes text NOT NULL,
  created_at bigint NOT NULL,
  revoked_at bigint NOT NULL DEFAULT 0,
  expires_at bigint NOT NULL DEFAULT 0,
  last_used_at bigint NOT NULL DEFAULT 0,
  replaced_by text NOT NULL DEFAULT '');
CREATE INDEX tokens_tenant ON tokens(tenant);
-- A sequence never gives an id twice, so no queue reuses the id of one whose messages are
-- still being deleted.
CREATE TABLE queues(
  id bigserial PRIMARY KEY,
  tenant text NOT NULL,
  name text NOT NULL,
  kind integer NOT NULL,
  config text NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  UNIQUE(tenant, name));
CREATE TABLE messages(
  seq bigserial PRIMARY KEY,
  id text NOT NULL,
  queue_id bigint NOT NULL,
  state smallint NOT NULL,            -- 0 ready (or delayed), 1 leased
  visible_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  retain_until bigint NOT NULL,
  delivery_count integer NOT NULL,
  lease_token text NOT NULL,
  consumer text NOT NULL,
  first_delivered_at bigint NOT NULL,
  last_delivered_at bigint NOT NULL,
  published_at bigint NOT NULL,
  enqueued_at bigint NOT NULL,
  idem_key text NOT NULL,
  attributes text NOT NULL,
  journal text NOT NULL,
  body bytea NOT NULL,
  lineage text NOT NULL DEFAULT '',
  body_size bigint GENERATED ALWAYS AS (octet_length(body)) STORED);
-- Partial indexes: the lease scan walks a queue's unleased messages in the order they became
-- visible, then by seq (publish order), and stops at the first not yet visible; the sweeper
-- walks leases by their end.
CREATE INDEX messages_ready ON messages(queue_id, visible_at, seq) WHERE state = 0;
CREATE INDEX messages_leased ON messages(visible_at) WHERE state = 1;
CREATE INDEX messages_leased_queue ON messages(queue_id) WHERE state = 1;
CREATE INDEX messages_expiry ON messages(expires_at) WHERE expires_at > 0;
CREATE INDEX messages_retention ON messages(retain_until) WHERE retain_until > 0;
CREATE INDEX messages_id ON messages(id);
CREATE TABLE idempotency(
  queue_id bigint NOT NULL,
  key text NOT NULL,
  message_id text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY(queue_id, key));
CREATE INDEX idempotency_expiry ON idempotency(expires_at);
-- seq comes from a sequence and is never given twice; xid is the inserting transaction's id
-- (xid8, as a bigint), which SnapshotDeadLetters' snapshot (pg_current_snapshot) tests with
-- pg_visible_in_snapshot: a dead letter whose transaction commits after the snapshot was
-- taken is not in it, even with a lower seq than its max_seq.
CREATE TABLE dead_letters(
  seq bigserial PRIMARY KEY,
  xid bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
  tenant text NOT NULL,
  id text NOT NULL,
  dlq text NOT NULL,
  origin text NOT NULL,
  reason text NOT NULL,
  cause text NOT NULL,
  body bytea NOT NULL,
  attributes text NOT NULL,
  idem_key text NOT NULL,
  published_at bigint NOT NULL,
  dead_lettered_at bigint NOT NULL,
  retain_until bigint NOT NULL,
  delivery_count integer NOT NULL,
  first_delivered_at bigint NOT NULL,
  last_delivered_at bigint NOT NULL,
  journal text NOT NULL,
  group_id text NOT NULL DEFAULT '',
  signature text NOT NULL DEFAULT '',
  redrive_error text NOT NULL DEFAULT '',
  lineage text NOT NULL DEFAULT '',
  body_size bigint GENERATED ALWAYS AS (octet_length(body)) STORED,
  exported_at bigint NOT NULL DEFAULT 0,
  ticket text NOT NULL DEFAULT '',
  redacted boolean NOT NULL DEFAULT false);
CREATE UNIQUE INDEX dead_letters_id ON dead_letters(tenant, id);
CREATE INDEX dead_letters_tenant_time ON dead_letters(tenant, seq, dead_lettered_at);
CREATE INDEX dead_letters_by_origin ON dead_letters(tenant, origin, seq);
CREATE INDEX dead_letters_by_reason ON dead_letters(tenant, reason, seq);
CREATE INDEX dead_letters_by_group ON dead_letters(tenant, group_id, seq);
CREATE INDEX dead_letters_by_time ON dead_letters(tenant, dead_lettered_at);
CREATE INDEX dead_letters_dlq ON dead_letters(tenant, dlq, seq);
CREATE INDEX dead_letters_retention ON dead_letters(retain_until) WHERE retain_until > 0;
CREATE INDEX dead_letters_by_ticket ON dead_letters(tenant, ticket, seq) WHERE ticket <> '';
CREATE TABLE audit(
  seq bigserial PRIMARY KEY,
  tenant text NOT NULL,
  at bigint NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  detail text NOT NULL);
CREATE INDEX audit_tenant ON audit(tenant, seq);
CREATE TABLE jobs(
  id text PRIMARY KEY,
  tenant text NOT NULL,
  scope text NOT NULL,
  state text NOT NULL,
  spec text NOT NULL,
  progress text NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  finished_at bigint NOT NULL);
CREATE UNIQUE INDEX jobs_active_scope ON jobs(tenant, scope)
  WHERE state IN ('running', 'cancelling', 'halted');
CREATE INDEX jobs_tenant ON jobs(tenant, created_at);
CREATE TABLE exports(
  id text PRIMARY KEY,
  tenant text NOT NULL,
  scope text NOT NULL,
  state text NOT NULL,
  spec text NOT NULL,
  progress text NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  finished_at bigint NOT NULL);
CREATE UNIQUE INDEX exports_active ON exports(tenant) WHERE state = 'running';
CREATE INDEX exports_tenant ON exports(tenant, created_at);
CREATE TABLE tickets(
  id text PRIMARY KEY,
  tenant text NOT NULL,
  state text NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  closed_at bigint NOT NULL,
  count bigint NOT NULL,
  link_hash text NOT NULL,
  data text NOT NULL);
CREATE INDEX tickets_tenant ON tickets(tenant, created_at);
CREATE INDEX tickets_due ON tickets(state, expires_at) WHERE state IN ('open', 'retrying');
CREATE INDEX tickets_link ON tickets(link_hash) WHERE link_hash <> '';
CREATE TABLE notification_settings(
  tenant text PRIMARY KEY,
  config text NOT NULL,
  last_digest_at bigint NOT NULL,
  updated_at bigint NOT NULL);
CREATE TABLE topic_events(
  seq bigserial PRIMARY KEY,
  tenant text NOT NULL,
  topic_id bigint NOT NULL,
  id text NOT NULL,
  published_at bigint NOT NULL,
  retain_until bigint NOT NULL,
  idem_key text NOT NULL,
  attributes text NOT NULL,
  body bytea NOT NULL);
CREATE INDEX topic_events_by_topic ON topic_events(tenant, topic_id, seq);
CREATE INDEX topic_events_id ON topic_events(tenant, id);
CREATE INDEX topic_events_retention ON topic_events(retain_until);
CREATE TABLE topic_deliveries(
  event_seq bigint NOT NULL REFERENCES topic_events(seq) ON DELETE CASCADE,
  subscription text NOT NULL,
  copy_id text NOT NULL,
  msg_seq bigint NOT NULL,
  delivered_at bigint NOT NULL DEFAULT 0,
  redeliveries integer NOT NULL DEFAULT 0,
  PRIMARY KEY(event_seq, subscription));
CREATE INDEX topic_deliveries_copy ON topic_deliveries(copy_id);
CREATE TABLE delivery_outcomes(
  tenant text NOT NULL,
  origin text NOT NULL,
  minute bigint NOT NULL,
  succeeded bigint NOT NULL DEFAULT 0,
  failed bigint NOT NULL DEFAULT 0,
  failed_tls bigint NOT NULL DEFAULT 0,
  PRIMARY KEY(tenant, origin, minute));
CREATE INDEX delivery_outcomes_minute ON delivery_outcomes(minute);
CREATE TABLE tenant_secrets(
  tenant text NOT NULL,
  name text NOT NULL,
  secret text NOT NULL,
  PRIMARY KEY(tenant, name));
-- Claims on singleton work (PgCoordinator): one row per name, held until `until` by the
-- database's clock.
CREATE TABLE claims(
  name text PRIMARY KEY,
  holder text NOT NULL,
  until timestamptz NOT NULL);

-- Tenant usage (quotas), in the transaction of every change: a message counts for its queue
-- (deleting a queue drops its messages from the usage at once), a dead letter for its tenant.
-- Statement-level triggers with transition tables add one row per statement, however many
-- rows it touched, so no path that inserts or deletes can forget. The counts are sharded: each
-- backend adds to the row of its shard (its pid modulo 16), so that publishes and acks of one
-- queue on many connections do not queue behind one counter row until their commits (one
-- counter row measured 0.32x of the SKIP LOCKED queue end to end; docs/design/postgres.md). A
-- reader sums the shards; a check that must be exact locks the tenant's or queue's row first,
-- which every writer that adds to it takes too. A message that changes queue in place (UPDATE
-- of queue_id) moves its counts itself.
CREATE TABLE queue_usage(
  queue_id bigint NOT NULL,
  shard integer NOT NULL,
  msg_count bigint NOT NULL,
  msg_bytes bigint NOT NULL,
  PRIMARY KEY(queue_id, shard));
CREATE TABLE tenant_usage(
  tenant text NOT NULL,
  shard integer NOT NULL,
  dl_count bigint NOT NULL,
  dl_bytes bigint NOT NULL,
  PRIMARY KEY(tenant, shard));
-- One function per table for both triggers: an insert adds, a delete subtracts (TG_OP).
CREATE FUNCTION redrive_messages_usage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  sign integer := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
  INSERT INTO queue_usage AS u(queue_id, shard, msg_count, msg_bytes)
    SELECT queue_id, pg_backend_pid() % 16, sign * count(*), sign * sum(body_size)
    FROM changed GROUP BY queue_id ORDER BY queue_id
    ON CONFLICT (queue_id, shard) DO UPDATE SET msg_count = u.msg_count + EXCLUDED.msg_count,
      msg_bytes = u.msg_bytes + EXCLUDED.msg_bytes;
  RETURN NULL;
END $$;
CREATE TRIGGER usage_messages_in AFTER INSERT ON messages REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION redrive_messages_usage();
CREATE TRIGGER usage_messages_out AFTER DELETE ON messages REFERENCING OLD TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION redrive_messages_usage();
CREATE FUNCTION redrive_dead_letters_usage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  sign integer := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
  INSERT INTO tenant_usage AS u(tenant, shard, dl_count, dl_bytes)
    SELECT tenant, pg_backend_pid() % 16, sign * count(*), sign * sum(body_size)
    FROM changed GROUP BY tenant ORDER BY tenant
    ON CONFLICT (tenant, shard) DO UPDATE SET dl_count = u.dl_count + EXCLUDED.dl_count,
      dl_bytes = u.dl_bytes + EXCLUDED.dl_bytes;
  RETURN NULL;
END $$;
CREATE TRIGGER usage_dead_letters_in AFTER INSERT ON dead_letters REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION redrive_dead_letters_usage();
CREATE TRIGGER usage_dead_letters_out AFTER DELETE ON dead_letters
  REFERENCING OLD TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION redrive_dead_letters_usage();
)sql";

// Any integer; the same on every node: pg_advisory_xact_lock's key for migrations.
constexpr int64_t kMigrationLock = 0x7265647269766531;  // "redrive1"

Status Failed(const std::string& step, const Status& st) {
  return Status(ErrorCode::kStoreFailed, "schema " + step + ": " + st.message());
}

}  // namespace

Status MigrateSchema(PgConn& conn) {
  // One transaction under a transaction-scoped advisory lock: the first node applies the
  // migrations, the others wait on the lock and then find the version current. A crash half
  // way leaves the database as it was (PostgreSQL's DDL is transactional).
  Status st = conn.Script("BEGIN");
  if (!st.ok()) return Failed("begin", st);
  auto run = [&]() -> Status {
    auto locked = conn.Exec("SELECT pg_advisory_xact_lock($1)", Params().Int(kMigrationLock));
    if (!locked.ok()) return Failed("lock", locked.status());
    st = conn.Script(
        "CREATE TABLE IF NOT EXISTS redrive_schema(version integer NOT NULL);"
        "INSERT INTO redrive_schema(version) SELECT 0 WHERE NOT EXISTS "
        "(SELECT 1 FROM redrive_schema);");
    if (!st.ok()) return Failed("version table", st);
    auto v = conn.Exec("SELECT version FROM redrive_schema");
    if (!v.ok()) return Failed("version", v.status());
    const int64_t version = v->Int(0, 0);
    if (version > kPgSchemaVersion) {
      return Status(ErrorCode::kStoreFailed,
                    "database schema version " + std::to_string(version) +
                        " is newer than this redrive understands (" +
                        std::to_string(kPgSchemaVersion) +
                        "): upgrade redrive on this node, or point it at another database");
    }
    if (version < 1) {
      st = conn.Script(kSchemaV1);
      if (!st.ok()) return Failed("v1", st);
    }
    // Later versions: `if (version < 2) { ... }`, each a step of this one transaction.
    auto set = conn.Exec("UPDATE redrive_schema SET version = $1", Params().Int(kPgSchemaVersion));
    if (!set.ok()) return Failed("version", set.status());
    return Status::Ok();
  };
  st = run();
  if (st.ok()) st = conn.Script("COMMIT");
  if (!st.ok()) {
    (void)conn.Script("ROLLBACK");
    return st.code() == ErrorCode::kStoreFailed ? st : Failed("commit", st);
  }
  return Status::Ok();
}

}  // namespace redrive::store::postgres
