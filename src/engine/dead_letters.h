// Dead letters: browsing and querying them (ForgeRock common REST queries), failure groups and
// statistics, the actions (delete, purge, restore, reroute), redrive jobs (bulk restore or
// reroute in the background, with a rate and a canary), and the audit of those actions.
//
// Errors: each method documents the ErrorCodes it returns; kStoreFailed and kInternal can come
// from any method that touches the store. Thread-safety: thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/token_bucket.h"
#include "engine/coordination.h"
#include "engine/diagnosis.h"
#include "engine/model.h"
#include "engine/queue_config.h"
#include "engine/queues.h"
#include "store/control_store.h"

namespace redrive::engine {

class AuditLog;
class DeliveryOutcomes;
class Redactor;
class Tenancy;

// Whether `viewer` sees the real values that redaction rules hide: only a tenant token that
// holds dlq:read-unredacted. Operator tokens do not (docs/privacy.md).
bool SeesUnredacted(const Principal& viewer);

inline constexpr int kMaxCanary = 100'000;

// A dead-letter query in the ForgeRock common REST conventions.
struct DeadLetterQuery {
  std::string filter;        // _queryFilter; empty = every dead letter in scope
  std::string fields;        // _fields; empty = every field
  std::string sort_keys;     // _sortKeys; empty = dead-lettering order
  std::string cookie;        // _pagedResultsCookie from the previous page
  int page_size = 100;       // _pageSize, 1..1000
  std::string total_policy;  // _totalPagedResultsPolicy: "", "EXACT" or "NONE"
  // Scope from the route: a dead-letter queue, an origin queue or a failure group.
  std::string dlq, origin, group;
  // The caller sees real values (SeesUnredacted); otherwise each dead letter is redacted by its
  // origin's rules before the filter sees it, and shown redacted.
  bool unredacted = false;
};

// A failure group, with its diagnosis: what the counts of its origin's delivery outcomes say
// went wrong (diagnosis.h); nullopt when they do not tell.
struct FailureGroup {
  store::FailureGroupRow row;
  std::optional<Diagnosis> diagnosis;
};

struct DeadLetterQueryResult {
  std::vector<nlohmann::json> items;  // dead-letter documents, projected by _fields
  std::string next_cookie;            // empty on the last page
  int64_t total = -1;                 // -1 when not counted (see total_policy)
};

// What a dead-letter action applies to: explicit ids, or every dead letter matching a filter
// and/or a failure group, within a dead-letter queue and a time window.
struct DeadLetterTarget {
  std::vector<std::string> ids;
  std::string filter;
  std::string group;
  std::string ticket;  // the dead letters a ticket lists (notifications.h)
  std::string dlq;
  std::optional<TimeMs> since, until;  // dead-lettered at, since inclusive, until exclusive
  // A restore or reroute also moves dead letters stored redacted (they would be delivered
  // with the redacted values); without it, a target holding one is kDeadLetterRedacted.
  bool allow_redacted = false;
};

// An export job (exports.cc): which dead letters it writes to its NDJSON file.
struct ExportSpec {
  std::string filter;  // _queryFilter
  std::string group;
  std::string dlq;
  std::string origin;  // a queue, or a subscription's queue "<topic>:<subscription>"
  std::optional<TimeMs> since, until;  // dead-lettered at
  bool include_exported = false;       // also those an earlier export took
  // Written redacted: the starter lacks dlq:read-unredacted (StartExport decides it). The file
  // of an export that is not may be downloaded only with that scope.
  bool redacted = true;
};

struct ExportInfo {
  std::string id;
  std::string tenant;
  std::string state;  // processing, completed, cancelled, failed
  ExportSpec spec;
  int64_t count = 0;       // lines written
  int64_t bytes = 0;       // of the NDJSON file
  int64_t gzip_bytes = 0;  // of its gzip copy, once completed
  int64_t total = -1;      // dead letters it takes, when known at the start; -1 = not known
  std::string error;       // failed: why
  std::string created_by;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
  TimeMs finished_at = 0;
};

// The file of a completed export, for a download.
struct ExportFile {
  std::string path;
  std::string etag;  // an entity tag (unquoted), different for the plain and the gzip file
  int64_t size = 0;
};

struct SkippedItem {
  std::string id;
  std::string reason;  // not-found, origin-missing, too-large, overflow
  std::string detail;
};

struct ActionResult {
  int64_t matched = 0;
  int64_t done = 0;  // deleted, or moved
  int64_t skipped = 0;
  std::vector<SkippedItem> skipped_items;  // the first 100
};

struct JobSpec {
  // The dead-letter queue the job takes from; with `ticket` set, empty = every one.
  std::string dlq = kDefaultDeadLetterQueue;
  // Only the dead letters this ticket lists (a ticket's `retry` answer). Such a job's scope is
  // the ticket, not the dead-letter queue: it runs beside the queue's own job.
  std::string ticket;
  std::string filter;
  std::string group;
  std::optional<TimeMs> since, until;
  std::string destination;  // empty = each message's origin queue
  double rate = 0;          // messages per second; 0 = as fast as the store goes
  // Move this many first (1 to kMaxCanary), then wait canary_wait and check; none when unset.
  std::optional<int64_t> canary;
  DurationMs canary_wait = 30'000;
  double canary_max_failure = 0.1;  // halt when a larger share of the canary fails again
  bool allow_redacted = false;      // as DeadLetterTarget::allow_redacted
  // The filter sees real values (the caller holds dlq:read-unredacted); StartJob sets it from
  // its actor, DryRunJob takes it as given.
  bool unredacted = false;
};

// A job's state and phase, and their words (store/job_state.h: ToString, FromString).
using store::JobPhase;
using store::JobState;

struct JobInfo {
  std::string id;
  std::string tenant;
  JobState state = JobState::kRunning;
  JobSpec spec;
  JobPhase phase = JobPhase::kBulk;
  int64_t to_move = 0;
  int64_t moved = 0;
  int64_t skipped = 0;
  int64_t failed_again = 0;  // moved by this job and dead-lettered again since
  std::string halt_reason;
  std::string error;
  std::string created_by;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
  TimeMs finished_at = 0;
};

struct DryRunResult {
  int64_t to_move = 0;
  std::map<std::string, int64_t> destinations;  // queue -> how many would go there
  std::vector<std::string> sample;              // the first ids that would move
};

class DeadLetters {
 public:
  DeadLetters(store::ControlStore& control, Clock& clock, Random& random,
              const EngineOptions& options, Queues& queues, Tenancy& tenancy,
              Coordinator& coordinator, AuditLog& audit, DeliveryOutcomes& outcomes,
              Redactor& redactor);
  DeadLetters(const DeadLetters&) = delete;
  DeadLetters& operator=(const DeadLetters&) = delete;

  // The dead letter as stored (real values, unless it was stored redacted): for the engine's
  // own use; whatever shows it to someone uses the overload with a viewer or RedactedDocument.
  // Errors: kDeadLetterNotFound.
  Result<store::DeadLetterRecord> GetDeadLetter(const std::string& tenant, const std::string& id);
  // As `viewer` may see it: redacted by its origin's rules unless SeesUnredacted(viewer).
  Result<store::DeadLetterRecord> GetDeadLetter(const Principal& viewer, const std::string& tenant,
                                                const std::string& id);
  // The document (DeadLetterDocument) of `d` (a record as stored, of any tenant) as a viewer
  // without dlq:read-unredacted sees it: body, attributes, cause, signature and attempts
  // redacted by the rules of d's origin. For notifications' samples, digests and tickets.
  // Errors: the store's (the tenant's hashing key); never the unredacted document instead.
  Result<nlohmann::json> RedactedDocument(const store::DeadLetterRecord& d);

  // ---- the workbench (dead_letters.cc). Browsing never changes a dead letter.
  // Errors: kInvalidQuery (filter, fields, sort keys, cookie, page size: the message points at
  // the position of the error).
  Result<DeadLetterQueryResult> QueryDeadLetters(const std::string& tenant,
                                                 const DeadLetterQuery& query);
  // Groups by failure group, largest first (at most 1000), each with its diagnosis. `dlq`
  // empty = every dead-letter queue. A signature that quotes a value its origin's redaction
  // rules hide shows the marker instead (for every caller). Errors: kQueueNotFound (`dlq` is
  // no dead-letter queue).
  Result<std::vector<FailureGroup>> ListFailureGroups(const std::string& tenant,
                                                      const std::string& dlq);
  // The diagnosis of one group (as ListFailureGroups gives it) now, by the rules of
  // diagnosis.h over the counts of the group's origin (DeliveryOutcomes::Series, from
  // kDiagnosisLookback before its first dead letter, or as far back as they are kept);
  // nullopt when they do not tell. For the digest and tickets.
  Result<std::optional<Diagnosis>> Diagnose(const std::string& tenant,
                                            const store::FailureGroupRow& group);
  Result<store::DeadLetterStats> GetDeadLetterStats(const std::string& tenant,
                                                    const std::string& dlq);
  // Each action is atomic per message and idempotent: a dead letter already gone is skipped
  // with reason not-found. Every action is written to the audit log with `actor`.
  // Errors: kInvalidQuery (filter), kInvalidArgument (empty target), kDeadLetterNotFound (a
  // single id that is not there).
  Result<ActionResult> DeleteDeadLetters(const Principal& actor, const std::string& tenant,
                                         const DeadLetterTarget& target);
  // Errors: kInvalidArgument unless `confirm` equals `dlq`; kQueueNotFound.
  Result<ActionResult> PurgeDeadLetterQueue(const Principal& actor, const std::string& tenant,
                                            const std::string& dlq, const std::string& confirm);
  // Back to each dead letter's origin queue, keeping id, idempotency key, attributes and first
  // publish time; delivery count restarts; lineage recorded. A destination whose limits refuse
  // the message leaves it dead-lettered (skipped: too-large, overflow; recorded on it).
  // A filter is evaluated as `actor` sees the dead letters (SeesUnredacted). Errors (also of
  // RerouteDeadLetters and StartJob): kDeadLetterRedacted when the target holds a dead letter
  // stored redacted and allow_redacted is not set (nothing moved).
  Result<ActionResult> RestoreDeadLetters(const Principal& actor, const std::string& tenant,
                                          const DeadLetterTarget& target);
  // To another standard queue of the tenant; the original queue stays in the lineage.
  // Errors: kQueueNotFound, kDeadLetterQueueReadOnly (destination is a dead-letter queue).
  Result<ActionResult> RerouteDeadLetters(const Principal& actor, const std::string& tenant,
                                          const DeadLetterTarget& target,
                                          const std::string& destination);

  // ---- redrive jobs (redrive_jobs.cc): bulk restore/reroute in the background.
  // Counts what would move and where, moving nothing.
  Result<DryRunResult> DryRunJob(const std::string& tenant, const JobSpec& spec);
  // Errors: kJobActive (a job is already active on this dead-letter queue: running,
  // cancelling or halted), kInvalidArgument, kInvalidQuery, kQueueNotFound.
  Result<JobInfo> StartJob(const Principal& actor, const std::string& tenant, const JobSpec& spec);
  // Errors: kJobNotFound.
  Result<JobInfo> GetJob(const std::string& tenant, const std::string& id);
  Result<std::vector<JobInfo>> ListJobs(const std::string& tenant);
  // Errors: kJobNotFound, kJobStateConflict (not running, halted or cancelling).
  Result<JobInfo> CancelJob(const Principal& actor, const std::string& tenant,
                            const std::string& id);
  // Halted -> running (the canary is not repeated). Errors: kJobNotFound, kJobStateConflict.
  Result<JobInfo> ResumeJob(const Principal& actor, const std::string& tenant,
                            const std::string& id);
  // One pass of the job runner over every active job whose claim this node holds or takes
  // (Coordinator::Claim "job/<id>"); returns messages moved. The background runner calls it;
  // tests call it directly.
  Result<int64_t> RunJobsOnce();

  // The tenant's audit log (its queues, tokens, quotas, dead-letter actions and jobs).
  // Errors: kTenantNotFound, kInvalidQuery.
  Result<AuditQueryResult> QueryAudit(const std::string& tenant, const AuditQuery& query);

  // ---- export jobs (exports.cc): the tenant's dead letters to an NDJSON file, in the
  // background; the file and a gzip copy stay for EngineOptions::export_retention.
  // Errors: kExportActive (one processing export per tenant: the message names it),
  // kInvalidArgument (no export directory; the spec), kInvalidQuery (filter).
  Result<ExportInfo> StartExport(const Principal& actor, const std::string& tenant,
                                 const ExportSpec& spec);
  // Errors: kExportNotFound.
  Result<ExportInfo> GetExport(const std::string& tenant, const std::string& id);
  // The exports of the last export_retention, newest first.
  Result<std::vector<ExportInfo>> ListExports(const std::string& tenant);
  // Stops a processing export: no file is kept, nothing is stamped. Errors: kExportNotFound,
  // kJobStateConflict (not processing).
  Result<ExportInfo> CancelExport(const Principal& actor, const std::string& tenant,
                                  const std::string& id);
  // Errors: kExportNotFound, kExportNotReady (not completed).
  Result<ExportFile> GetExportFile(const std::string& tenant, const std::string& id, bool gzip);
  // For a download by `viewer`: as above, and kForbidden when the export was written
  // unredacted and the viewer does not see unredacted values.
  Result<ExportFile> GetExportFile(const Principal& viewer, const std::string& tenant,
                                   const std::string& id, bool gzip);
  // One pass of the export runner: a step (EngineOptions::export_step dead letters) of every
  // processing export whose claim this node holds or takes ("export/<id>"); returns the dead
  // letters written. The background runner calls it; tests call it directly.
  Result<int64_t> RunExportsOnce();

  // Called when a job starts, is cancelled or resumes, so the runner need not wait for its
  // next tick (Background sets it before it starts; the default does nothing).
  void SetJobWaker(std::function<void()> wake);

  // The sweeper's pass over dead letters past their retention and finished jobs past
  // EngineOptions::job_history. Returns how many dead letters it removed.
  Result<int64_t> SweepOnce();

 private:
  struct Selector;  // a compiled DeadLetterTarget (dead_letters.cc)
  // `redacted`: matches are redacted by their origins' rules before the filter sees them.
  Result<std::shared_ptr<const Selector>> Compile(const std::string& tenant,
                                                  const DeadLetterTarget& target, bool redacted);
  // kDeadLetterRedacted, naming one, when the selection holds a dead letter stored redacted.
  Status RefuseRedacted(const Selector& selector, const store::DeadLetterSnapshot& snapshot);
  // A group's signature with the values its origin's rules hide replaced (one sample of the
  // group tells which it quotes).
  Status ScrubSignature(const std::string& tenant, store::FailureGroupRow* group);
  // The next matches of `snapshot` after `*cursor` (advanced past everything scanned), in seq
  // order, at most `limit`.
  Result<std::vector<store::DeadLetterRecord>> NextMatches(
      const Selector& selector, const store::DeadLetterSnapshot& snapshot, int limit,
      int64_t* cursor, bool* exhausted);
  // What a job of `spec` would move from `snapshot`.
  Result<DryRunResult> DryRun(const Selector& selector, const store::DeadLetterSnapshot& snapshot,
                              const JobSpec& spec);
  Result<ActionResult> MoveDeadLetters(const Principal& actor, const std::string& tenant,
                                       const DeadLetterTarget& target,
                                       const std::string& destination, const char* action);
  // Moves `batch` to `destination` (empty = origins) for `by`; adds to *result.
  // Dead letters stored redacted are skipped (reason redacted) unless `allow_redacted`.
  Status MoveBatch(const std::string& tenant, const std::vector<store::DeadLetterRecord>& batch,
                   const std::string& destination, const std::string& by, bool allow_redacted,
                   ActionResult* result);
  Result<int64_t> StepJob(store::JobRecord& job, TimeMs now);
  // One step of an export (exports.cc); finishes it when its dead letters are all written.
  Result<int64_t> StepExport(store::JobRecord& job, TimeMs now);
  Status FinishExport(store::JobRecord& job, const std::string& base, TimeMs now);
  Result<Selector> ExportSelector(const std::string& tenant, const ExportSpec& spec);
  std::string ExportBase(const std::string& tenant, const std::string& id) const;
  // The file of a completed export. Errors: kExportNotReady.
  Result<ExportFile> FileOf(const ExportInfo& info, bool gzip) const;
  // Deletes exports (records and files) past export_retention.
  Status SweepExports(TimeMs now);
  // Saves a job the runner advanced, if its state is still `expected`; when a cancel came in
  // meanwhile, saves the progress under the cancel's state and returns false.
  Result<bool> SaveJob(store::JobRecord& job, JobState expected);
  void WakeRunner();

  store::ControlStore& control_;
  Clock& clock_;
  Random& random_;
  const EngineOptions& options_;
  Queues& queues_;
  Tenancy& tenancy_;
  Coordinator& coordinator_;
  AuditLog& audit_;
  DeliveryOutcomes& outcomes_;
  Redactor& redactor_;
  std::function<void()> wake_runner_;

  std::mutex jobs_mu_;     // one job-runner pass at a time
  std::mutex exports_mu_;  // one export-runner pass at a time
  // Rate buckets of throttled jobs, by job id. GUARDED_BY(jobs_mu_)
  std::unordered_map<std::string, TokenBucket> job_tokens_;
};

}  // namespace redrive::engine
