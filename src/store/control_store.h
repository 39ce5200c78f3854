// ControlStore: the control port. Tenants and tokens, quotas and usage, queues, dead letters
// (scans, counts, failure groups, statistics, delete, purge, the move back into queues), redrive
// jobs and the audit log. Everything but the hot message path, which is the message port
// (message_store.h).
//
// Contract, for every implementation (the conformance suite, control_store_test.cc, checks it):
// - Every method is atomic: it applies completely or not at all, except those documented as
//   running in bounded transactions (DeleteQueue, PurgeDeadLetters, DeleteTenant), whose every
//   step is atomic and which a second call finishes. A method that writes returns only after
//   its effects are durable (fsync'd); implementations may group concurrent writes into one
//   transaction and one fsync.
// - Redrive moves dead letters into queues (the message port's rows) atomically, as
//   dead-lettering moves them out: never lost, never in two places.
// - Errors: kStoreFailed once a commit or fsync has failed (sticky until restart);
//   kAlreadyExists, kQuotaExceeded, kInternal as documented per method. "Not found" is
//   reported as std::nullopt or false, never as an error, so the engine chooses the error code.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "store/job_state.h"
#include "store/records.h"

namespace redrive::store {

struct TenantRecord {
  std::string name;
  TimeMs created_at = 0;
  std::string quotas_json;  // operators' quota overrides, engine-encoded; "" = none
  bool deleting = false;    // a deletion began and has not finished (see DeleteTenant)
};

// What a tenant stores now. Kept current by the store on every write that adds or removes a
// message or a dead letter (through either port), so reading it costs no scan of the messages.
struct TenantUsage {
  int64_t queues = 0;    // standard queues (dead-letter queues are not counted)
  int64_t messages = 0;  // messages in its queues (ready, delayed, leased) plus its dead letters
  int64_t bytes = 0;     // body bytes of those
};

struct TokenRecord {
  std::string id;      // public identifier, e.g. "tok_01J..."
  std::string tenant;  // empty for a server-wide operator token
  std::string label;
  std::string secret_hash;  // SHA-256 hex of the whole token string
  std::vector<std::string> scopes;
  TimeMs created_at = 0;
  TimeMs revoked_at = 0;    // 0 = not revoked
  TimeMs expires_at = 0;    // refused from this time on; 0 = never
  TimeMs last_used_at = 0;  // as last recorded by TouchTokens; 0 = never
  std::string replaced_by;  // id of the token a rotation issued in its place
};

enum class RevokeOutcome {
  kRevoked,
  kNotActive,   // no such token, or already revoked
  kLastActive,  // the last active operator token: left as it is
};

enum class DeleteTenantOutcome { kDeleted, kNotFound, kNotEmpty };

// kTopic: a topic (engine/topics.h); it holds no messages, its config is a TopicConfig.
enum class QueueKind { kStandard = 0, kDeadLetter = 1, kTopic = 2 };

struct QueueRecord {
  int64_t id = 0;  // assigned by the store
  std::string tenant;
  std::string name;
  QueueKind kind = QueueKind::kStandard;
  std::string config_json;  // engine-encoded QueueConfig; opaque to the store
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
};

struct DeadLetterRecord {
  int64_t seq = 0;
  std::string id;  // the original message id
  std::string tenant;
  std::string dlq;
  std::string origin;  // origin queue name
  std::string reason;
  std::string cause;
  std::string body;
  Attributes attributes;
  std::string idempotency_key;
  TimeMs published_at = 0;
  TimeMs dead_lettered_at = 0;
  TimeMs retain_until = 0;
  int32_t delivery_count = 0;
  TimeMs first_delivered_at = 0;
  TimeMs last_delivered_at = 0;
  Journal journal;
  std::string group_id;
  std::string signature;
  std::string redrive_error;  // why the last restore/reroute refused it, if one did
  Lineage lineage;
  TimeMs exported_at = 0;  // when an export job that took it completed; 0 = never exported
  std::string ticket;      // the ticket that listed it last (OpenTicket); "" = none
  // Dead-lettered with DeathInfo::redact (storeRedacted): body, attributes and journal are the
  // redacted ones; the real values were never stored here.
  bool redacted = false;
};

// A tenant's dead letters as they stood when it was taken: exactly those whose dead-lettering
// had committed by then (and still exist), whatever order transactions commit in and whatever
// seq they were given. Made by SnapshotDeadLetters; handed back unchanged in DeadLetterScan
// to bound a scan or a count. The engine keeps it between calls (a job's progress, a query's
// cookie), so both fields are plain data; a snapshot is only meaningful to the backend that
// made it.
struct DeadLetterSnapshot {
  int64_t max_seq = 0;  // no dead letter with a larger seq is in it; 0 = the tenant had none
  // The backend's own test for "committed before", for backends where a lower seq can commit
  // later (PostgreSQL: the transaction snapshot, pg_current_snapshot()); "" where seq order is
  // commit order and seqs are never given twice (SQLite: one writer, and dead_letter_seq).
  std::string visible;
};

// Narrows a scan of a tenant's dead letters by indexed columns; empty/0 = any.
struct DeadLetterScan {
  std::string tenant;
  std::string dlq;
  std::string origin;
  std::string reason;
  std::string group_id;
  TimeMs since = 0;  // dead_lettered_at >= since
  TimeMs until = 0;  // dead_lettered_at < until (0 = no bound)
  int64_t after_seq = 0;
  // Only dead letters in this snapshot; max_seq = 0: no bound (every dead letter there now).
  DeadLetterSnapshot snapshot;
  int limit = 500;
  std::string redriven_by;     // lineage.last_redriven_by equals this ("job:<id>")
  bool unexported = false;     // only those never exported (exported_at = 0)
  bool redacted_only = false;  // only those stored redacted (DeadLetterRecord::redacted)
  std::string ticket;          // only those a ticket listed (OpenTicket)
};

struct FailureGroupRow {
  std::string group_id;
  std::string signature;
  std::string origin;
  std::string reason;
  int64_t count = 0;
  TimeMs first_seen = 0;
  TimeMs last_seen = 0;
  std::vector<std::string> sample_ids;
};

// The outcomes of the deliveries from one origin queue in one minute: how many succeeded
// (acks) and failed (nacks, ended leases, push failures), and how many of those failures had a
// TLS or certificate error as their cause. What counts as which is the engine's rule; the store
// keeps the numbers (DeliveryOutcomes in engine/delivery_outcomes.h).
struct DeliveryOutcomeRow {
  std::string tenant;
  std::string origin;  // the queue name (a subscription's queue: "<topic>:<subscription>")
  TimeMs minute = 0;   // the start of the minute, in ms since the epoch
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t failed_tls = 0;  // of `failed`
};

struct CountRow {
  std::string key;
  int64_t count = 0;
};

struct DeadLetterStats {
  int64_t total = 0;
  TimeMs oldest = 0;  // the earliest and latest dead_lettered_at; 0 when there are none
  TimeMs newest = 0;
  std::vector<CountRow> by_origin;
  std::vector<CountRow> by_reason;
  std::vector<CountRow> by_group;
  std::vector<CountRow> by_hour;  // key: hour start in ms since the epoch, as a decimal string
};

// One dead letter to move back into a queue (restore or reroute).
struct RedriveItem {
  int64_t dead_letter_seq = 0;
  int64_t dest_queue_id = 0;
  std::string dest_name;
  int64_t max_length = 0;  // destination limits, checked in the same transaction
  int64_t max_message_size = 0;
  TimeMs visible_at = 0;
  TimeMs expires_at = 0;
  TimeMs retain_until = 0;
  Lineage lineage;
};

enum class RedriveOutcome {
  kMoved,     // now a fresh message in the destination (delivery count 0)
  kGone,      // no longer a dead letter (moved or deleted meanwhile)
  kTooLarge,  // the destination's maxMessageSize refuses it; left dead-lettered
  kFull,      // the destination is at maxLength; left dead-lettered
};

struct AuditRecord {
  int64_t seq = 0;
  std::string tenant;
  TimeMs at = 0;
  std::string actor;   // token id
  std::string action;  // "dead-letter.delete", "job.start", ...
  std::string detail_json;
};

struct JobRecord {
  std::string id;
  std::string tenant;
  std::string scope;  // at most one active job (IsActive) per (tenant, scope)
  JobState state = JobState::kRunning;
  std::string spec_json;
  std::string progress_json;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
  TimeMs finished_at = 0;
};

// A ticket (engine/tickets.h): a list of dead letters that a tenant is asked to answer (retry
// or discard) before expires_at. The dead letters name it (DeadLetterRecord::ticket); what it
// says and how it was answered is the engine's, in data_json.
struct TicketRecord {
  std::string id;
  std::string tenant;
  // "open" and "retrying" cover its dead letters (OpenTicket gives them to no other ticket);
  // any other state does not.
  std::string state;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
  TimeMs expires_at = 0;
  TimeMs closed_at = 0;   // when it left "open"; 0 while open
  int64_t count = 0;      // dead letters it listed when it opened
  std::string link_hash;  // SHA-256 hex of its answer link's secret; "" = none
  std::string data_json;
};

// A tenant's notification settings (engine-encoded) and when its digest last ran.
struct NotificationSettingsRecord {
  std::string tenant;
  std::string config_json;
  TimeMs last_digest_at = 0;
  TimeMs updated_at = 0;
};

class ControlStore {
 public:
  virtual ~ControlStore() = default;

  // --- tenants
  // Errors: kAlreadyExists.
  virtual Status CreateTenant(const TenantRecord& tenant) = 0;
  virtual Result<std::optional<TenantRecord>> GetTenant(const std::string& name) = 0;
  virtual Result<std::vector<TenantRecord>> ListTenants() = 0;
  // Replaces the tenant's quota overrides. False when the tenant is absent or being deleted.
  virtual Result<bool> SetTenantQuotas(const std::string& tenant,
                                       const std::string& quotas_json) = 0;
  // Errors: none beyond the store's own; an unknown tenant has zero usage.
  virtual Result<TenantUsage> GetTenantUsage(const std::string& tenant) = 0;
  // Deletes the tenant and everything it owns: tokens, queues, messages, dead letters, jobs,
  // audit entries, delivery outcome counts, quotas. With `only_if_empty`, refuses (kNotEmpty,
  // nothing changed) while it has any queue. The tenant is marked `deleting` and loses its tokens
  // in the first transaction; the rest goes in bounded transactions, and the tenant row last, so a
  // deletion cut short by a crash leaves a `deleting` tenant that calling this again finishes.
  virtual Result<DeleteTenantOutcome> DeleteTenant(const std::string& tenant,
                                                   bool only_if_empty) = 0;
  // The tenant's secret called `name`, storing `candidate` when it has none yet: whoever calls
  // first (any node) decides it, and every later call returns that one. Deleted with the
  // tenant. The engine's use: the key of redaction's hashes (engine/redaction.h).
  virtual Result<std::string> TenantSecret(const std::string& tenant, const std::string& name,
                                           const std::string& candidate) = 0;

  // --- tokens
  virtual Status CreateToken(const TokenRecord& token) = 0;
  virtual Result<std::optional<TokenRecord>> FindTokenByHash(const std::string& secret_hash) = 0;
  // Tokens of `tenant` ("" = operator tokens), revoked ones included.
  virtual Result<std::vector<TokenRecord>> ListTokens(const std::string& tenant) = 0;
  // False when no active token with that id exists in that tenant.
  virtual Result<bool> RevokeToken(const std::string& tenant, const std::string& id, TimeMs at) = 0;
  // In one transaction, if the token `id` of `tenant` is neither revoked nor expired at `now`:
  // stores `replacement`, and sets the old token's replaced_by and its expires_at to
  // `old_expires_at` (or keeps its own, when sooner). False (nothing written) otherwise.
  virtual Result<bool> RotateToken(const std::string& tenant, const std::string& id,
                                   const TokenRecord& replacement, TimeMs old_expires_at,
                                   TimeMs now) = 0;
  // Revokes an operator token unless no other operator token would stay active (neither
  // revoked nor expired at `at`), checked in the same transaction.
  virtual Result<RevokeOutcome> RevokeOperatorToken(const std::string& id, TimeMs at) = 0;
  // Records when tokens were last used; a time never moves backwards. Unknown ids are ignored.
  virtual Status TouchTokens(const std::vector<std::pair<std::string, TimeMs>>& last_used) = 0;

  // --- queues
  // Assigns and returns the id. Errors: kAlreadyExists.
  virtual Result<int64_t> CreateQueue(const QueueRecord& queue) = 0;
  // CreateQueue, refusing a standard queue when the tenant already has `max_standard_queues`
  // (0 = no limit), checked in the same transaction. A standard queue never reuses the id of
  // a queue whose messages are still being deleted. Errors: kAlreadyExists, kQuotaExceeded.
  virtual Result<int64_t> CreateQueueWithinQuota(const QueueRecord& queue,
                                                 int64_t max_standard_queues) = 0;
  // Replaces config_json and updated_at. False when absent.
  virtual Result<bool> UpdateQueue(const QueueRecord& queue) = 0;
  virtual Result<std::optional<QueueRecord>> GetQueue(const std::string& tenant,
                                                      const std::string& name) = 0;
  virtual Result<std::optional<QueueRecord>> GetQueueById(int64_t id) = 0;
  virtual Result<std::vector<QueueRecord>> ListQueues(const std::string& tenant) = 0;
  // Deletes the queue at once and then its messages in bounded transactions (not its dead
  // letters). False when absent.
  virtual Result<bool> DeleteQueue(int64_t queue_id) = 0;

  // --- dead letters
  virtual Result<std::optional<DeadLetterRecord>> GetDeadLetter(const std::string& tenant,
                                                                const std::string& id) = 0;
  // In seq order from after_seq, at most limit rows. Errors: kInvalidArgument for a snapshot
  // this backend did not make.
  virtual Result<std::vector<DeadLetterRecord>> ScanDeadLetters(const DeadLetterScan& scan) = 0;
  // How many rows the scan matches (after_seq and limit ignored).
  virtual Result<int64_t> CountDeadLetters(const DeadLetterScan& scan) = 0;
  // The tenant's dead letters now, as a snapshot (see DeadLetterSnapshot). Scanning inside
  // one snapshot in seq order with a cursor (after_seq = the last seq read) therefore meets
  // every dead letter of it exactly once, however long the scan takes and whatever commits
  // meanwhile: the set is fixed when the snapshot is taken and can only shrink (deletes and
  // moves); a dead letter committed later is never in it, even with a lower seq than its
  // max_seq, so a scan of it always ends. Redrive jobs, bulk actions and query pages are
  // bounded this way (docs/design/store-ports.md, "Snapshots of the dead letters").
  virtual Result<DeadLetterSnapshot> SnapshotDeadLetters(const std::string& tenant) = 0;
  // Groups by failure group, largest first. `dlq` empty = all dead-letter queues.
  virtual Result<std::vector<FailureGroupRow>> ListFailureGroups(const std::string& tenant,
                                                                 const std::string& dlq) = 0;
  // `dlq` empty = all dead-letter queues; `ticket` set = only the dead letters it lists.
  virtual Result<DeadLetterStats> GetDeadLetterStats(const std::string& tenant,
                                                     const std::string& dlq,
                                                     const std::string& ticket) = 0;
  // Deletes the dead letters with these seqs (of this tenant); one bool per seq.
  virtual Result<std::vector<bool>> DeleteDeadLetters(const std::string& tenant,
                                                      const std::vector<int64_t>& seqs) = 0;
  // Deletes every dead letter of a dead-letter queue, in bounded transactions; returns how many.
  virtual Result<int64_t> PurgeDeadLetters(const std::string& tenant, const std::string& dlq) = 0;
  // Moves dead letters into queues, all in one transaction, each atomically (never lost, never
  // in two places). Refusals (kTooLarge, kFull) record `redrive_error` on the dead letter.
  virtual Result<std::vector<RedriveOutcome>> Redrive(const std::string& tenant,
                                                      const std::vector<RedriveItem>& items,
                                                      TimeMs now) = 0;
  // The sweeper's: deletes dead letters past their retention, oldest first; returns how many.
  virtual Result<int64_t> DeleteRetainedDeadLetters(TimeMs now, int limit) = 0;

  // --- delivery outcomes (counts per origin and minute, behind failure-group diagnosis)
  // Adds each row's three counts to those stored for its (tenant, origin, minute), making the
  // row when there is none; all rows in one transaction. Rows may repeat a key (their counts
  // add up). Several nodes each add their own counts, so nothing is ever overwritten.
  virtual Status AddDeliveryOutcomes(const std::vector<DeliveryOutcomeRow>& rows) = 0;
  // The counts of one origin with since <= minute < until, in minute order, one row per minute
  // (minutes with nothing counted have no row).
  virtual Result<std::vector<DeliveryOutcomeRow>> ListDeliveryOutcomes(const std::string& tenant,
                                                                       const std::string& origin,
                                                                       TimeMs since,
                                                                       TimeMs until) = 0;
  // The sweeper's: deletes counts of minutes before `before` (every tenant), at most `limit`
  // rows, oldest first; returns how many.
  virtual Result<int64_t> DeleteDeliveryOutcomes(TimeMs before, int limit) = 0;

  // --- audit
  virtual Status AppendAudit(const AuditRecord& record) = 0;
  // Oldest first, after `after_seq`.
  virtual Result<std::vector<AuditRecord>> ListAudit(const std::string& tenant, int64_t after_seq,
                                                     int limit) = 0;

  // --- redrive jobs
  // Errors: kAlreadyExists when the tenant has an active (IsActive: running, cancelling,
  // halted) job with the same scope; the engine answers kJobActive.
  virtual Status CreateJob(const JobRecord& job) = 0;
  // Writes state, progress and times only if the stored state is still `expected_state`
  // (compare-and-set, so a cancel and the job runner cannot overwrite each other).
  // False when the state had changed.
  virtual Result<bool> UpdateJob(const JobRecord& job, JobState expected_state) = 0;
  virtual Result<std::optional<JobRecord>> GetJob(const std::string& tenant,
                                                  const std::string& id) = 0;
  // Newest first; `tenant` empty = every tenant.
  virtual Result<std::vector<JobRecord>> ListJobs(const std::string& tenant) = 0;
  // Deletes finished jobs whose finished_at is before `before`; returns how many.
  virtual Result<int64_t> DeleteFinishedJobs(TimeMs before) = 0;

  // --- export jobs: records of the jobs' shape (scope unused), in a table of their own. A
  // running export is active; a tenant has at most one (kAlreadyExists otherwise).
  virtual Status CreateExport(const JobRecord& export_job) = 0;
  // Compare-and-set on the state, as UpdateJob.
  virtual Result<bool> UpdateExport(const JobRecord& export_job, JobState expected_state) = 0;
  virtual Result<std::optional<JobRecord>> GetExport(const std::string& tenant,
                                                     const std::string& id) = 0;
  // Newest first; `tenant` empty = every tenant.
  virtual Result<std::vector<JobRecord>> ListExports(const std::string& tenant) = 0;
  // Deletes the exports created before `before` that are finished; returns them (their files
  // are the engine's to delete).
  virtual Result<std::vector<JobRecord>> DeleteFinishedExports(TimeMs before) = 0;
  // Sets exported_at to `at` on the tenant's dead letters with these seqs that still exist, in
  // one transaction; returns how many.
  virtual Result<int64_t> MarkExported(const std::string& tenant, const std::vector<int64_t>& seqs,
                                       TimeMs at) = 0;

  // --- tickets and notification settings (engine/tickets.h)
  // In one transaction: every dead letter of `ticket.tenant` in `snapshot` that no covering
  // ticket (state open or retrying) lists is given to `ticket` (DeadLetterRecord::ticket), and the
  // ticket is stored with `count` set to how many. When there is none, nothing is written and 0 is
  // returned. Errors: kAlreadyExists (the id).
  virtual Result<int64_t> OpenTicket(const TicketRecord& ticket,
                                     const DeadLetterSnapshot& snapshot) = 0;
  // Writes state, times and data only if the stored state is still `expected_state`. False
  // when it had changed (or the ticket is gone).
  virtual Result<bool> UpdateTicket(const TicketRecord& ticket,
                                    const std::string& expected_state) = 0;
  virtual Result<std::optional<TicketRecord>> GetTicket(const std::string& tenant,
                                                        const std::string& id) = 0;
  virtual Result<std::optional<TicketRecord>> FindTicketByLink(const std::string& link_hash) = 0;
  // Newest first.
  virtual Result<std::vector<TicketRecord>> ListTickets(const std::string& tenant) = 0;
  // Tickets (every tenant) in `state` with expires_at <= before, at most `limit`, soonest
  // first.
  virtual Result<std::vector<TicketRecord>> TicketsInState(const std::string& state, TimeMs before,
                                                           int limit) = 0;
  // Deletes tickets closed before `before`; returns how many.
  virtual Result<int64_t> DeleteClosedTickets(TimeMs before) = 0;
  // Replaces the tenant's settings (keeping last_digest_at). False when the tenant is absent.
  virtual Result<bool> SetNotificationSettings(const NotificationSettingsRecord& settings) = 0;
  virtual Result<std::optional<NotificationSettingsRecord>> GetNotificationSettings(
      const std::string& tenant) = 0;
  virtual Result<std::vector<NotificationSettingsRecord>> ListNotificationSettings() = 0;
  // Sets last_digest_at to `at` if it is still `previous` (so that one node runs a digest).
  virtual Result<bool> MarkDigest(const std::string& tenant, TimeMs previous, TimeMs at) = 0;
};

}  // namespace redrive::store
