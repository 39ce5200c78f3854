// Notifications: how a tenant is told about its dead letters, and how it answers.
//   - Settings, per tenant: the channels (a webhook sent through the push machinery, e-mail over
//     SMTP, the server log), the digest's cron schedule, the tickets' response window and what
//     happens when one expires, and the alert thresholds.
//   - The digest (tickets.cc): on its schedule, every dead letter that no open ticket lists is
//     given to a new ticket, and a summary of it is sent: counts by failure group (with each
//     group's diagnosis), origin and reason, the oldest and newest, three samples, and how and
//     by when to answer.
//   - Tickets (tickets.cc): answered through the API, the CLI or a single-use link with `retry`
//     (a redrive job over exactly its dead letters, back to their origins) or `discard` (they
//     are deleted); one not answered in time expires, and its dead letters are removed unless
//     the settings keep them. Every step is audited.
//   - Alerts (notifications.cc): a dead-letter queue deeper or older than a threshold, an
//     endpoint disabled or recovered, a redrive job halted, an export failed; deduplicated by
//     what they are about and rate-limited per tenant.
//
// The webhook channel is a push subscription "<name>" of the tenant's topic
// "redrive-notifications", made and kept in step with the settings: notifications are published
// to the topic, so they are signed, retried, circuit-broken and dead-lettered like any push
// delivery. E-mails go from a sender thread of this node, retried a few times in memory.
//
// Errors: each method documents the ErrorCodes it returns; kStoreFailed and kInternal can come
// from any method that touches the store. Thread-safety: thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/cron.h"
#include "engine/model.h"
#include "push/mailer.h"
#include "store/control_store.h"

namespace redrive::engine {

class AuditLog;
class DeadLetters;
class Messages;
class Tenancy;
class Topics;

inline constexpr char kNotificationTopic[] = "redrive-notifications";
inline constexpr char kDefaultDigestSchedule[] = "0 9 * * 1";  // Mondays, 09:00 UTC

struct WebhookChannel {
  std::string name = "webhook";  // the subscription of kNotificationTopic
  std::string url;
  std::string secret;  // whsec_...; empty = the subscription's own (made when it is created)
};

struct NotificationSettings {
  bool log = true;  // the server log
  std::vector<WebhookChannel> webhooks;
  std::vector<std::string> email_to;
  bool digest_enabled = true;
  CronSchedule digest_schedule = CronSchedule::Parse(kDefaultDigestSchedule).value();
  DurationMs response_window = 5 * 86'400'000LL;
  bool keep_on_expiry = false;  // an expired ticket's dead letters: removed (false) or kept
  // Alerts. 0 = that alert is off.
  int64_t alert_depth = 0;              // a dead-letter queue holds more than this
  DurationMs alert_age = 0;             // its oldest dead letter is older than this
  bool alert_events = true;             // endpoint disabled/recovered, job halted, export failed
  DurationMs alert_repeat = 3'600'000;  // the same alert again at most this often
  int alert_max_per_hour = 20;          // per tenant; more are counted and reported later
};

// The settings' JSON form (docs/api.md, "Notifications"). Errors: kUnknownField,
// kInvalidArgument, kInvalidDuration, naming the field.
Result<NotificationSettings> NotificationSettingsFromJson(const nlohmann::json& j);
// `secrets`: show webhook secrets (the store's form) or not (hints only).
nlohmann::json NotificationSettingsToJson(const NotificationSettings& s, bool secrets);

struct TicketInfo {
  store::TicketRecord record;
  nlohmann::json data;  // summary, answer, notifications sent
  // The answer link's secret: only when the ticket was just opened (it is stored hashed).
  std::string link_secret;
};

// A ticket's document in the REST API, and what _queryFilter addresses: id, state (open;
// retrying while the redrive job of a retry answer runs; answered; expired), createdAt, expiresAt,
// closedAt, count, onExpiry, summary, answer, expiry, notified.
nlohmann::json TicketDocument(const TicketInfo& ticket);

struct TicketQuery {
  std::string filter;  // _queryFilter over the ticket documents
  std::string cookie;  // _pagedResultsCookie
  int page_size = 50;  // 1..1000
};

struct TicketQueryResult {
  std::vector<TicketInfo> items;
  std::string next_cookie;
  int64_t total = 0;  // tickets matching the filter
};

class Notifications {
 public:
  Notifications(store::ControlStore& control, Clock& clock, Random& random,
                const EngineOptions& options, Tenancy& tenancy, Topics& topics, Messages& messages,
                DeadLetters& dead_letters, AuditLog& audit);
  ~Notifications();  // Stop()
  Notifications(const Notifications&) = delete;
  Notifications& operator=(const Notifications&) = delete;

  // The e-mail sender thread.
  void Start();
  void Stop();

  // ---- settings. Errors: kTenantNotFound; Set: as NotificationSettingsFromJson, and those of
  // Topics::CreateSubscription for a webhook channel (kQuotaExceeded, kInvalidArgument for its
  // url).
  Result<NotificationSettings> GetSettings(const std::string& tenant);
  // Whether the tenant has saved settings (only then do digests and alerts run for it).
  Result<bool> HasSettings(const std::string& tenant);
  Result<NotificationSettings> SetSettings(const Principal& actor, const std::string& tenant,
                                           const NotificationSettings& settings);
  // Sends a test notification to every channel now and says how each did (webhooks: queued).
  // Errors: kNotificationFailed when a channel refused it (an e-mail the server refused).
  Result<nlohmann::json> SendTest(const Principal& actor, const std::string& tenant);

  // ---- digest and tickets (tickets.cc)
  // Runs the tenant's digest now: opens a ticket over every dead letter no open ticket lists
  // and sends its summary. nullopt when there was none. Errors: kTenantNotFound.
  Result<std::optional<TicketInfo>> RunDigest(const Principal& actor, const std::string& tenant);
  // Errors: kTicketNotFound.
  Result<TicketInfo> GetTicket(const std::string& tenant, const std::string& id);
  // Newest first. Errors: kInvalidQuery.
  Result<TicketQueryResult> QueryTickets(const std::string& tenant, const TicketQuery& query);
  // `action`: "retry" or "discard". Errors: kTicketNotFound, kTicketClosed (answered or
  // expired), kInvalidArgument (the action), and those of DeadLetters::StartJob.
  Result<TicketInfo> Answer(const Principal& actor, const std::string& tenant,
                            const std::string& id, const std::string& action);
  // The ticket a link's secret opens, if it is still open and not expired. Errors:
  // kTicketNotFound (no such link), kTicketClosed.
  Result<TicketInfo> TicketOfLink(const std::string& secret);
  Result<TicketInfo> AnswerByLink(const std::string& secret, const std::string& action);
  // The answer link of a ticket, as sent (public_url + path); empty when it has none.
  std::string LinkUrl(const std::string& secret) const;
  // The server's address as its users reach it, for links (EngineOptions::public_url until
  // set; `serve` sets it once it knows its port).
  void SetPublicUrl(const std::string& url);

  // One pass of the scheduler: due digests, expired tickets, dead-letter queue alerts, old
  // tickets. The sweeper calls it under its claim; tests call it with an injected clock.
  Status RunOnce();

  // Told of every audit entry (AuditLog's observer): raises the event alerts.
  void OnAudit(const store::AuditRecord& record);

 private:
  struct Mail {
    std::string tenant;
    push::MailMessage message;
    int attempts = 0;
    TimeMs not_before = 0;
  };
  struct AlertState {
    TimeMs last_sent = 0;
    bool active = false;
  };
  struct TenantAlerts {
    std::map<std::string, AlertState> by_key;
    std::vector<TimeMs> sent;  // within the last hour
    int64_t suppressed = 0;
  };

  // The tenant's saved settings; nullopt when it saved none.
  Result<std::optional<NotificationSettings>> SavedSettings(const std::string& tenant);
  // Sends `doc` (with "type" and "text") to the tenant's channels; returns where it went.
  nlohmann::json Deliver(const std::string& tenant, const NotificationSettings& settings,
                         nlohmann::json doc, const std::string& subject);
  // Makes the webhook subscriptions match the settings: creates or updates each of
  // `webhooks` (setting the secret of one it creates) and deletes those of `previous` (the
  // names the settings had) no longer there.
  Status SyncWebhooks(const Principal& actor, const std::string& tenant,
                      const std::vector<std::string>& previous,
                      std::vector<WebhookChannel>& webhooks);
  // Raises an alert unless the same key was sent within alert_repeat or the tenant is over its
  // rate; `active` false clears a condition alert (it may then fire again).
  void Alert(const std::string& tenant, const NotificationSettings& settings,
             const std::string& kind, const std::string& key, const std::string& text,
             nlohmann::json detail);
  Status CheckQueueAlerts(const std::string& tenant, const NotificationSettings& settings,
                          TimeMs now);
  void ClearAlert(const std::string& tenant, const std::string& key);
  // Raises the alerts of the audit entries OnAudit queued.
  void RaisePending();
  // Sends queued e-mails (retrying a few times) and raises queued alerts.
  void MailerLoop();

  // tickets.cc
  Result<std::optional<TicketInfo>> OpenTicket(const std::string& actor, const std::string& tenant,
                                               const NotificationSettings& settings);
  Result<nlohmann::json> Summarize(const std::string& tenant, const std::string& ticket);
  // `via`: "api" or "link", for the audit and the ticket's answer.
  Result<TicketInfo> AnswerTicket(const Principal& actor, TicketInfo ticket,
                                  const std::string& action, const char* via);
  Status ExpireTicket(store::TicketRecord record);
  // A "retrying" ticket whose job has finished becomes "answered" (and is audited closed).
  Status FinishRetry(store::TicketRecord record);
  nlohmann::json TicketNotice(const TicketInfo& t, const std::string& link_secret) const;

  store::ControlStore& control_;
  Clock& clock_;
  Random& random_;
  const EngineOptions& options_;
  Tenancy& tenancy_;
  Topics& topics_;
  Messages& messages_;
  DeadLetters& dead_letters_;
  AuditLog& audit_;

  mutable std::mutex url_mu_;
  std::string public_url_;  // GUARDED_BY(url_mu_)

  std::mutex alerts_mu_;
  std::map<std::string, TenantAlerts> alerts_;  // by tenant. GUARDED_BY(alerts_mu_)
  TimeMs queue_alerts_checked_at_ = 0;          // GUARDED_BY(alerts_mu_)
  TimeMs last_run_ = 0;                         // GUARDED_BY(alerts_mu_)

  std::mutex mail_mu_;
  std::condition_variable mail_cv_;
  std::deque<Mail> mail_;                   // GUARDED_BY(mail_mu_)
  std::deque<store::AuditRecord> pending_;  // audit entries to alert on. GUARDED_BY(mail_mu_)
  bool stopping_ = false;                   // GUARDED_BY(mail_mu_)
  std::thread mailer_;
};

}  // namespace redrive::engine
