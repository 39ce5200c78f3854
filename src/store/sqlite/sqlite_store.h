// SqliteStore: the embedded default store, one SQLite file in WAL mode. It implements both
// ports (MessageStore and ControlStore) in one database, so the moves between them (dead-
// lettering, redrive) are single transactions.
//
// Writes go to one writer thread that groups every write request waiting at that moment into
// one transaction and one fsync (group commit); each request runs in its own savepoint so one
// failing request does not undo the others. Reads use a pool of read-only connections and never
// wait for the writer. A failed commit is sticky: every later write answers kStoreFailed.
//
// Thread-safety: thread-safe. Threads: two, the writer and the checkpointer (WAL checkpoints
// off the commit path), both joined by the destructor.
#pragma once

#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "store/sqlite/sqlite_db.h"
#include "store/store.h"

namespace redrive::store::sqlite {

class SqliteStore : public Store {
 public:
  // Opens (creating if needed) the database at `path`. Errors: kStoreFailed.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore() override;

  // ---- MessageStore (sqlite_messages.cc)
  Result<PublishResult> Publish(const PublishRequest& request) override;
  Result<std::vector<PublishResult>> PublishMany(
      const std::vector<PublishRequest>& requests,
      const std::vector<TopicEventWrite>& events) override;
  Result<std::vector<MessageRecord>> Lease(const LeaseRequest& request) override;
  Result<std::optional<MessageRecord>> GetMessage(int64_t queue_id, int64_t seq) override;
  Result<std::vector<bool>> Ack(int64_t queue_id, const std::vector<Receipt>& receipts) override;
  Result<bool> ExtendLease(int64_t queue_id, const Receipt& receipt, TimeMs now,
                           TimeMs until) override;
  Result<std::vector<bool>> SettleFailures(int64_t queue_id,
                                           const std::vector<FailureAction>& actions) override;
  // (sqlite_topic_events.cc)
  Result<std::vector<TopicEventRow>> ListTopicEvents(const TopicEventQuery& query) override;
  Result<std::optional<TopicEventRow>> GetTopicEvent(const std::string& tenant, int64_t topic_id,
                                                     const std::string& id) override;
  Result<RedeliverResult> Redeliver(const RedeliverRequest& request) override;
  Result<int64_t> DeleteExpiredTopicEvents(TimeMs now, int limit) override;
  Result<std::vector<MessageRecord>> ExpiredLeases(TimeMs now, int limit) override;
  Result<std::vector<MessageRecord>> ExpiredMessages(TimeMs now, int limit) override;
  Result<std::vector<MessageRecord>> DeleteRetained(TimeMs now, int limit) override;
  Result<int64_t> DeleteExpiredIdempotencyKeys(TimeMs now, int limit) override;
  Result<QueueDepth> GetDepth(int64_t queue_id, TimeMs now) override;
  Result<std::vector<QueueDepthRow>> AllDepths(TimeMs now) override;

  // ---- ControlStore (sqlite_control.cc; tenancy in sqlite_tenancy.cc)
  Status CreateTenant(const TenantRecord& tenant) override;
  Result<std::optional<TenantRecord>> GetTenant(const std::string& name) override;
  Result<std::vector<TenantRecord>> ListTenants() override;
  Result<bool> SetTenantQuotas(const std::string& tenant, const std::string& quotas_json) override;
  Result<TenantUsage> GetTenantUsage(const std::string& tenant) override;
  Result<DeleteTenantOutcome> DeleteTenant(const std::string& tenant, bool only_if_empty) override;
  Result<std::string> TenantSecret(const std::string& tenant, const std::string& name,
                                   const std::string& candidate) override;

  Status CreateToken(const TokenRecord& token) override;
  Result<std::optional<TokenRecord>> FindTokenByHash(const std::string& secret_hash) override;
  Result<std::vector<TokenRecord>> ListTokens(const std::string& tenant) override;
  Result<bool> RevokeToken(const std::string& tenant, const std::string& id, TimeMs at) override;
  Result<bool> RotateToken(const std::string& tenant, const std::string& id,
                           const TokenRecord& replacement, TimeMs old_expires_at,
                           TimeMs now) override;
  Result<RevokeOutcome> RevokeOperatorToken(const std::string& id, TimeMs at) override;
  Status TouchTokens(const std::vector<std::pair<std::string, TimeMs>>& last_used) override;

  Result<int64_t> CreateQueue(const QueueRecord& queue) override;
  Result<int64_t> CreateQueueWithinQuota(const QueueRecord& queue,
                                         int64_t max_standard_queues) override;
  Result<bool> UpdateQueue(const QueueRecord& queue) override;
  Result<std::optional<QueueRecord>> GetQueue(const std::string& tenant,
                                              const std::string& name) override;
  Result<std::optional<QueueRecord>> GetQueueById(int64_t id) override;
  Result<std::vector<QueueRecord>> ListQueues(const std::string& tenant) override;
  Result<bool> DeleteQueue(int64_t queue_id) override;

  Result<std::optional<DeadLetterRecord>> GetDeadLetter(const std::string& tenant,
                                                        const std::string& id) override;
  Result<std::vector<DeadLetterRecord>> ScanDeadLetters(const DeadLetterScan& scan) override;
  Result<int64_t> CountDeadLetters(const DeadLetterScan& scan) override;
  Result<DeadLetterSnapshot> SnapshotDeadLetters(const std::string& tenant) override;
  Result<std::vector<FailureGroupRow>> ListFailureGroups(const std::string& tenant,
                                                         const std::string& dlq) override;
  Result<DeadLetterStats> GetDeadLetterStats(const std::string& tenant, const std::string& dlq,
                                             const std::string& ticket) override;
  Result<std::vector<bool>> DeleteDeadLetters(const std::string& tenant,
                                              const std::vector<int64_t>& seqs) override;
  Result<int64_t> PurgeDeadLetters(const std::string& tenant, const std::string& dlq) override;
  Result<std::vector<RedriveOutcome>> Redrive(const std::string& tenant,
                                              const std::vector<RedriveItem>& items,
                                              TimeMs now) override;
  Result<int64_t> DeleteRetainedDeadLetters(TimeMs now, int limit) override;
  Status AddDeliveryOutcomes(const std::vector<DeliveryOutcomeRow>& rows) override;
  Result<std::vector<DeliveryOutcomeRow>> ListDeliveryOutcomes(const std::string& tenant,
                                                               const std::string& origin,
                                                               TimeMs since, TimeMs until) override;
  Result<int64_t> DeleteDeliveryOutcomes(TimeMs before, int limit) override;

  Status AppendAudit(const AuditRecord& record) override;
  Result<std::vector<AuditRecord>> ListAudit(const std::string& tenant, int64_t after_seq,
                                             int limit) override;

  Status CreateJob(const JobRecord& job) override;
  Result<bool> UpdateJob(const JobRecord& job, JobState expected_state) override;
  Result<std::optional<JobRecord>> GetJob(const std::string& tenant,
                                          const std::string& id) override;
  Result<std::vector<JobRecord>> ListJobs(const std::string& tenant) override;
  Result<int64_t> DeleteFinishedJobs(TimeMs before) override;

  Status CreateExport(const JobRecord& export_job) override;
  Result<bool> UpdateExport(const JobRecord& export_job, JobState expected_state) override;
  Result<std::optional<JobRecord>> GetExport(const std::string& tenant,
                                             const std::string& id) override;
  Result<std::vector<JobRecord>> ListExports(const std::string& tenant) override;
  Result<std::vector<JobRecord>> DeleteFinishedExports(TimeMs before) override;
  Result<int64_t> OpenTicket(const TicketRecord& ticket,
                             const DeadLetterSnapshot& snapshot) override;
  Result<bool> UpdateTicket(const TicketRecord& ticket, const std::string& expected_state) override;
  Result<std::optional<TicketRecord>> GetTicket(const std::string& tenant,
                                                const std::string& id) override;
  Result<std::optional<TicketRecord>> FindTicketByLink(const std::string& link_hash) override;
  Result<std::vector<TicketRecord>> ListTickets(const std::string& tenant) override;
  Result<std::vector<TicketRecord>> TicketsInState(const std::string& state, TimeMs before,
                                                   int limit) override;
  Result<int64_t> DeleteClosedTickets(TimeMs before) override;
  Result<bool> SetNotificationSettings(const NotificationSettingsRecord& settings) override;
  Result<std::optional<NotificationSettingsRecord>> GetNotificationSettings(
      const std::string& tenant) override;
  Result<std::vector<NotificationSettingsRecord>> ListNotificationSettings() override;
  Result<bool> MarkDigest(const std::string& tenant, TimeMs previous, TimeMs at) override;
  Result<int64_t> MarkExported(const std::string& tenant, const std::vector<int64_t>& seqs,
                               TimeMs at) override;

 private:
  struct WriteJob {
    std::function<Status(Db&)> fn;
    std::promise<Status> done;
  };

  explicit SqliteStore(std::string path) : path_(std::move(path)) {}
  Status Init();
  // The tenant's usage as this transaction sees it (sqlite_tenancy.cc).
  static Status ReadUsage(Db& db, const std::string& tenant, TenantUsage* usage);
  // Counts messages inserted into a queue in its usage counters (removals count themselves:
  // see kSchema). Every statement that inserts into `messages` must be followed by one.
  static Status AddQueueUsage(Db& db, int64_t queue_id, int64_t messages, int64_t bytes);
  void WriterLoop();
  // WAL checkpoints (docs/design/storage.md, "Checkpoints"). OnWalCommit is the writer
  // connection's WAL hook: after each commit, with the WAL's size in pages, it wakes the
  // checkpointer once the WAL has grown by kBackgroundCheckpointPages, and checkpoints in the
  // writer itself only past kForegroundCheckpointPages. CheckpointLoop copies the WAL into the
  // database on its own connection, so the writer goes on committing meanwhile.
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int pages);
  void CheckpointLoop();
  // Runs `fn` inside the next group-commit transaction; returns once it is durable.
  Status Write(std::function<Status(Db&)> fn);
  // One PublishRequest inside the caller's write transaction (sqlite_messages.cc).
  Status PublishIn(Db& db, const PublishRequest& request, PublishResult& result);
  // Records `events` after their requests' `results` (sqlite_topic_events.cc).
  static Status RecordTopicEvents(Db& db, const std::vector<TopicEventWrite>& events,
                                  const std::vector<PublishResult>& results);
  // Runs `fn` on a pooled read connection.
  Status Read(const std::function<Status(Db&)>& fn);

  const std::string path_;
  std::unique_ptr<Db> writer_db_;  // used by the writer thread only
  // The writer thread's group and its results, reused from group to group (writer thread
  // only). Members rather than locals of WriterLoop, so that they are reachable from the
  // store: LeakSanitizer's leak checks while fuzzing once missed them on the writer's stack.
  std::vector<std::unique_ptr<WriteJob>> batch_;
  std::vector<Status> results_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<WriteJob>> pending_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                           // GUARDED_BY(mu_)
  Status background_error_;                         // GUARDED_BY(mu_), sticky
  std::thread writer_;

  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;     // GUARDED_BY(checkpoint_mu_)
  bool checkpoint_stopping_ = false;   // GUARDED_BY(checkpoint_mu_)
  int pages_at_last_request_ = 0;      // writer thread only
  std::unique_ptr<Db> checkpoint_db_;  // used by the checkpointer thread only
  std::thread checkpointer_;

  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Db>> readers_;  // GUARDED_BY(pool_mu_): idle read connections
};

}  // namespace redrive::store::sqlite
