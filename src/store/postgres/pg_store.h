// PgStore: redrive's store on PostgreSQL 15, for several nodes sharing one database. It
// implements both ports (MessageStore and ControlStore) in one database, so the moves between
// them (dead-lettering, redrive) are single transactions, as in SQLite.
//
// Every call runs on a pooled connection (PgPool), in one transaction; concurrent calls run in
// parallel on their own connections, and PostgreSQL groups their commits' WAL flushes.
// Transactions run at READ COMMITTED with explicit row locks where a check must see the state
// at commit (quotas, queue lengths: the tenant's or queue's row, FOR UPDATE); leases use
// FOR UPDATE SKIP LOCKED. The schema (pg_schema.cc) is versioned and migrated under an
// advisory lock by the first node to start (docs/design/postgres.md).
//
// Errors: as the ports say, except that kStoreFailed is not sticky: it means the database
// could not be reached (or failed over) during the call, whose outcome may then be unknown;
// the next call connects again.
//
// Thread-safety: thread-safe.
#pragma once

#include <memory>
#include <string>

#include "store/postgres/pg_conn.h"
#include "store/store.h"

namespace redrive::store::postgres {

class PgStore : public Store {
 public:
  // Connects to `conninfo` (a libpq URI, postgres://... or postgresql://..., or key=value
  // words), brings the schema to this version (pg_schema.cc) unless it is newer, which is
  // refused. Errors: kStoreFailed.
  static Result<std::unique_ptr<PgStore>> Open(const std::string& conninfo, int pool_size = 16);
  ~PgStore() override;

  // ---- MessageStore (pg_messages.cc)
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
  // (pg_topic_events.cc)
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

  // ---- ControlStore (pg_dead_letters.cc: dead letters; pg_tenancy.cc: tenants, tokens, queues;
  // pg_control.cc: outcomes, audit, jobs, exports; pg_tickets.cc)
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

  PgPool& pool() { return pool_; }

 private:
  PgStore(const std::string& conninfo, int pool_size) : pool_(conninfo, pool_size) {}
  Status Init();

  PgPool pool_;
};

// The schema version this build writes and understands (pg_schema.cc).
extern const int kPgSchemaVersion;
// Brings the database to kPgSchemaVersion in one transaction under an advisory lock (other
// nodes starting at the same time wait, then find it done). Errors: kStoreFailed, also when the
// database's version is newer than kPgSchemaVersion.
Status MigrateSchema(PgConn& conn);

}  // namespace redrive::store::postgres
