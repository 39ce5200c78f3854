// Notifications: settings, channels and alerts (notifications.h). The digest and tickets are in
// tickets.cc.
#include "engine/notifications.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

#include "common/text.h"
#include "engine/audit_log.h"
#include "engine/dead_letters.h"
#include "engine/internal/config_fields.h"
#include "engine/messages.h"
#include "engine/tenancy.h"
#include "engine/topics.h"

namespace redrive::engine {
namespace {

using internal::Bad;
using internal::ReadBool;
using internal::ReadDuration;
using internal::ReadInt;
using internal::ReadString;
using internal::Unknown;
using nlohmann::json;

constexpr DurationMs kQueueAlertInterval = 60'000;
constexpr DurationMs kHour = 3'600'000;
constexpr int kMailAttempts = 4;

// A plausible address: local@domain, no spaces, no angle brackets or line breaks (it goes into
// the SMTP envelope and a header).
bool PlausibleAddress(const std::string& a) {
  size_t at = a.find('@');
  if (a.size() > 254 || at == std::string::npos || at == 0 || at + 1 >= a.size()) return false;
  return a.find_first_of(" \t\r\n<>,;\"") == std::string::npos &&
         a.find('@', at + 1) == std::string::npos;
}

Status ReadChannel(const json& c, size_t i, NotificationSettings* s) {
  const std::string where = "channels[" + std::to_string(i) + "]";
  if (!c.is_object() || !c.contains("type") || !c["type"].is_string()) {
    return Bad(where, "must be an object with a \"type\": webhook, email or log");
  }
  const std::string type = c["type"].get<std::string>();
  if (type == "log") {
    for (auto it = c.begin(); it != c.end(); ++it) {
      if (it.key() != "type") return Unknown(where + "." + it.key());
    }
    s->log = true;
    return Status::Ok();
  }
  if (type == "email") {
    bool any = false;
    for (auto it = c.begin(); it != c.end(); ++it) {
      if (it.key() == "type") continue;
      if (it.key() != "to") return Unknown(where + "." + it.key());
      const json& to = it.value();
      if (!to.is_array() || to.empty() || to.size() > 20) {
        return Bad(where + ".to", "must be a list of 1 to 20 e-mail addresses");
      }
      for (const auto& a : to) {
        if (!a.is_string() || !PlausibleAddress(a.get<std::string>())) {
          return Bad(where + ".to", "holds something that is not an e-mail address: " + a.dump());
        }
        s->email_to.push_back(a.get<std::string>());
      }
      any = true;
    }
    if (!any) return Bad(where + ".to", "is required for an email channel");
    return Status::Ok();
  }
  if (type == "webhook") {
    WebhookChannel w;
    for (auto it = c.begin(); it != c.end(); ++it) {
      const std::string f = where + "." + it.key();
      if (it.key() == "type") continue;
      if (it.key() == "name") {
        REDRIVE_RETURN_IF_ERROR(ReadString(it.value(), f, &w.name));
        REDRIVE_RETURN_IF_ERROR(ValidateName(w.name, "webhook channel"));
      } else if (it.key() == "url") {
        REDRIVE_RETURN_IF_ERROR(ReadString(it.value(), f, &w.url));
      } else if (it.key() == "secret") {
        REDRIVE_RETURN_IF_ERROR(ReadString(it.value(), f, &w.secret));
      } else if (it.key() == "subscription") {
        // Shown by GET, so that its answer can be PUT back; the name decides it.
      } else {
        return Unknown(f);
      }
    }
    if (w.url.rfind("http://", 0) != 0 && w.url.rfind("https://", 0) != 0) {
      return Bad(where + ".url", "must be an http:// or https:// URL");
    }
    for (const auto& other : s->webhooks) {
      if (other.name == w.name) {
        return Bad(where + ".name", "'" + w.name + "' names two webhook channels");
      }
    }
    if (s->webhooks.size() >= 10) return Bad("channels", "has more than 10 webhook channels");
    s->webhooks.push_back(std::move(w));
    return Status::Ok();
  }
  return Bad(where + ".type", "must be webhook, email or log");
}

template <typename Fn>
Status ForFields(const json& obj, const std::string& where, Fn&& fn) {
  if (!obj.is_object()) return Bad(where, "must be an object");
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    REDRIVE_RETURN_IF_ERROR(fn(it.key(), it.value(), where + "." + it.key()));
  }
  return Status::Ok();
}

// The first line of a text, for the server log.
std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

Result<NotificationSettings> NotificationSettingsFromJson(const json& j) {
  if (!j.is_object()) return Status(ErrorCode::kInvalidArgument, "settings must be an object");
  NotificationSettings s;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "channels") {
      if (!v.is_array()) return Bad("channels", "must be a list");
      s.log = false;
      for (size_t i = 0; i < v.size(); ++i) REDRIVE_RETURN_IF_ERROR(ReadChannel(v[i], i, &s));
    } else if (key == "digest") {
      REDRIVE_RETURN_IF_ERROR(
          ForFields(v, "digest",
                    [&](const std::string& k, const json& f, const std::string& where) -> Status {
                      if (k == "enabled") return ReadBool(f, where, &s.digest_enabled);
                      if (k == "schedule") {
                        std::string text;
                        REDRIVE_RETURN_IF_ERROR(ReadString(f, where, &text));
                        auto cron = CronSchedule::Parse(text);
                        if (!cron.ok()) return Bad(where, cron.status().message());
                        if (cron->Next(0) == 0)
                          return Bad(where, "'" + text + "' never matches a date");
                        s.digest_schedule = std::move(cron).value();
                        return Status::Ok();
                      }
                      return Unknown(where);
                    }));
    } else if (key == "tickets") {
      REDRIVE_RETURN_IF_ERROR(
          ForFields(v, "tickets",
                    [&](const std::string& k, const json& f, const std::string& where) -> Status {
                      if (k == "responseWindow") {
                        REDRIVE_RETURN_IF_ERROR(ReadDuration(f, where, &s.response_window));
                        if (s.response_window < 60'000 || s.response_window > 90 * 86'400'000LL) {
                          return Bad(where, "must be between 1m and 90d");
                        }
                        return Status::Ok();
                      }
                      if (k == "onExpiry") {
                        std::string policy;
                        REDRIVE_RETURN_IF_ERROR(ReadString(f, where, &policy));
                        if (policy != "remove" && policy != "keep")
                          return Bad(where, "must be remove or keep");
                        s.keep_on_expiry = policy == "keep";
                        return Status::Ok();
                      }
                      return Unknown(where);
                    }));
    } else if (key == "alerts") {
      REDRIVE_RETURN_IF_ERROR(
          ForFields(v, "alerts",
                    [&](const std::string& k, const json& f, const std::string& where) -> Status {
                      if (k == "deadLetterDepth")
                        return ReadInt(f, where, 0, 1'000'000'000'000, &s.alert_depth);
                      if (k == "deadLetterAge") return ReadDuration(f, where, &s.alert_age);
                      if (k == "events") return ReadBool(f, where, &s.alert_events);
                      if (k == "repeatAfter") {
                        REDRIVE_RETURN_IF_ERROR(ReadDuration(f, where, &s.alert_repeat));
                        if (s.alert_repeat < 60'000) return Bad(where, "must be at least 1m");
                        return Status::Ok();
                      }
                      if (k == "maxPerHour") {
                        int64_t n = 0;
                        REDRIVE_RETURN_IF_ERROR(ReadInt(f, where, 1, 1000, &n));
                        s.alert_max_per_hour = static_cast<int>(n);
                        return Status::Ok();
                      }
                      return Unknown(where);
                    }));
    } else {
      return Unknown(key);
    }
  }
  return s;
}

json NotificationSettingsToJson(const NotificationSettings& s, bool secrets) {
  json channels = json::array();
  if (s.log) channels.push_back({{"type", "log"}});
  for (const auto& w : s.webhooks) {
    json c = {{"type", "webhook"},
              {"name", w.name},
              {"url", w.url},
              {"subscription", std::string(kNotificationTopic) + ":" + w.name}};
    if (secrets && !w.secret.empty()) c["secret"] = w.secret;
    channels.push_back(std::move(c));
  }
  if (!s.email_to.empty()) channels.push_back({{"type", "email"}, {"to", s.email_to}});
  return {{"channels", channels},
          {"digest", {{"enabled", s.digest_enabled}, {"schedule", s.digest_schedule.text()}}},
          {"tickets",
           {{"responseWindow", FormatDuration(s.response_window)},
            {"onExpiry", s.keep_on_expiry ? "keep" : "remove"}}},
          {"alerts",
           {{"deadLetterDepth", s.alert_depth},
            {"deadLetterAge", FormatDuration(s.alert_age)},
            {"events", s.alert_events},
            {"repeatAfter", FormatDuration(s.alert_repeat)},
            {"maxPerHour", s.alert_max_per_hour}}}};
}

Notifications::Notifications(store::ControlStore& control, Clock& clock, Random& random,
                             const EngineOptions& options, Tenancy& tenancy, Topics& topics,
                             Messages& messages, DeadLetters& dead_letters, AuditLog& audit)
    : control_(control),
      clock_(clock),
      random_(random),
      options_(options),
      tenancy_(tenancy),
      topics_(topics),
      messages_(messages),
      dead_letters_(dead_letters),
      audit_(audit) {}

Notifications::~Notifications() { Stop(); }

void Notifications::Start() {
  std::lock_guard lock(mail_mu_);
  if (mailer_.joinable()) return;
  stopping_ = false;
  mailer_ = std::thread([this] { MailerLoop(); });
}

void Notifications::Stop() {
  {
    std::lock_guard lock(mail_mu_);
    stopping_ = true;
  }
  mail_cv_.notify_all();
  if (mailer_.joinable()) mailer_.join();
}

// ------------------------------------------------------------------ settings

Result<std::optional<NotificationSettings>> Notifications::SavedSettings(
    const std::string& tenant) {
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetNotificationSettings(tenant));
  if (!rec) return std::optional<NotificationSettings>();
  auto s = NotificationSettingsFromJson(json::parse(rec->config_json, nullptr, false));
  if (!s.ok()) {
    return Status(ErrorCode::kInternal,
                  "stored notification settings of " + tenant + ": " + s.status().message());
  }
  return std::optional<NotificationSettings>(std::move(s).value());
}

Result<NotificationSettings> Notifications::GetSettings(const std::string& tenant) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto saved, SavedSettings(tenant));
  return saved.value_or(NotificationSettings{});
}

Result<bool> Notifications::HasSettings(const std::string& tenant) {
  REDRIVE_ASSIGN_OR_RETURN(auto saved, SavedSettings(tenant));
  return saved.has_value();
}

Status Notifications::SyncWebhooks(const Principal& actor, const std::string& tenant,
                                   const std::vector<std::string>& previous,
                                   std::vector<WebhookChannel>& webhooks) {
  auto topic = topics_.GetTopic(tenant, kNotificationTopic);
  if (!topic.ok() && topic.status().code() != ErrorCode::kTopicNotFound) return topic.status();
  if (!topic.ok() && webhooks.empty()) return Status::Ok();
  if (!topic.ok()) {
    REDRIVE_ASSIGN_OR_RETURN(topic, topics_.CreateTopic(actor, tenant, kNotificationTopic, {}));
  }
  for (auto& w : webhooks) {
    json push = {{"url", w.url}};
    if (!w.secret.empty()) push["secret"] = w.secret;
    auto existing = topics_.GetSubscription(tenant, kNotificationTopic, w.name);
    if (existing.ok()) {
      QueueConfig config = existing->config;
      REDRIVE_RETURN_IF_ERROR(ApplyQueueConfigJson(json{{"push", push}}, &config));
      REDRIVE_RETURN_IF_ERROR(
          topics_.UpdateSubscription(actor, tenant, kNotificationTopic, w.name, config).status());
    } else if (existing.status().code() == ErrorCode::kSubscriptionNotFound) {
      QueueConfig config;
      REDRIVE_RETURN_IF_ERROR(ApplyQueueConfigJson(json{{"push", push}}, &config));
      REDRIVE_ASSIGN_OR_RETURN(
          auto made, topics_.CreateSubscription(actor, tenant, kNotificationTopic, w.name, config));
      // The secret it was given (or made): shown in this answer only, as a subscription's is.
      if (made.config.push && !made.config.push->secrets.empty()) {
        w.secret = made.config.push->secrets[0].secret;
      }
    } else {
      return existing.status();
    }
  }
  // The channels the settings had and no longer have (never a subscription a user made).
  for (const auto& name : previous) {
    bool wanted = std::any_of(webhooks.begin(), webhooks.end(),
                              [&](const WebhookChannel& w) { return w.name == name; });
    if (wanted) continue;
    Status st = topics_.DeleteSubscription(actor, tenant, kNotificationTopic, name);
    if (!st.ok() && st.code() != ErrorCode::kSubscriptionNotFound) return st;
  }
  return Status::Ok();
}

Result<NotificationSettings> Notifications::SetSettings(const Principal& actor,
                                                        const std::string& tenant,
                                                        const NotificationSettings& settings) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  NotificationSettings s = settings;
  REDRIVE_ASSIGN_OR_RETURN(auto before, control_.GetNotificationSettings(tenant));
  std::vector<std::string> previous;
  if (before) {
    auto old = NotificationSettingsFromJson(json::parse(before->config_json, nullptr, false));
    if (old.ok()) {
      for (const auto& w : old->webhooks) previous.push_back(w.name);
    }
  }
  REDRIVE_RETURN_IF_ERROR(SyncWebhooks(actor, tenant, previous, s.webhooks));
  TimeMs now = clock_.Now();
  NotificationSettings stored = s;
  for (auto& w : stored.webhooks) w.secret.clear();  // kept by the subscriptions only
  store::NotificationSettingsRecord rec;
  rec.tenant = tenant;
  rec.config_json = NotificationSettingsToJson(stored, true).dump();
  rec.last_digest_at = now;  // the first digest is the schedule's next time from now
  rec.updated_at = now;
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.SetNotificationSettings(rec));
  if (!saved) return Status(ErrorCode::kTenantNotFound, "tenant '" + tenant + "' not found");
  json from = before ? json::parse(before->config_json, nullptr, false) : json(nullptr);
  audit_.Write(
      tenant, actor.token_id, "notifications.update",
      json{{"changes", AuditLog::Changes(from, NotificationSettingsToJson(stored, false))}});
  return s;
}

// ------------------------------------------------------------------ channels

json Notifications::Deliver(const std::string& tenant, const NotificationSettings& settings,
                            json doc, const std::string& subject) {
  TimeMs now = clock_.Now();
  doc["id"] = "ntf_" + NewUlid(now, random_);
  doc["tenant"] = tenant;
  doc["sentAt"] = FormatTime(now);
  doc["subject"] = subject;
  json sent = json::object();
  if (settings.log) {
    // The subject only: the text may carry an answer link, which is a capability.
    spdlog::warn("notification [{}] {}: {}", tenant, doc.value("type", ""), subject);
    sent["log"] = true;
  }
  if (!settings.webhooks.empty()) {
    NewMessage m;
    m.body = doc.dump();
    m.attributes["type"] = doc.value("type", "");
    auto r = messages_.Publish(tenant, kNotificationTopic, {std::move(m)});
    if (r.ok()) {
      json names = json::array();
      for (const auto& w : settings.webhooks) names.push_back(w.name);
      sent["webhooks"] = names;
    } else {
      spdlog::error("notification [{}] {}: cannot publish to {}: {}", tenant, doc.value("type", ""),
                    kNotificationTopic, r.status().ToString());
      sent["webhookError"] = r.status().message();
    }
  }
  if (!settings.email_to.empty()) {
    if (options_.smtp.url.empty()) {
      spdlog::warn(
          "notification [{}]: an email channel is set, but the server has no SMTP "
          "server (notifications.smtp_url); not sent by e-mail",
          tenant);
      sent["emailError"] = "no SMTP server configured";
    } else {
      Mail mail;
      mail.tenant = tenant;
      mail.message.to = settings.email_to;
      mail.message.subject = subject;
      mail.message.text = doc.value("text", "");
      mail.message.message_id = "<" + doc["id"].get<std::string>() + "@redrive>";
      {
        std::lock_guard lock(mail_mu_);
        mail_.push_back(std::move(mail));
      }
      mail_cv_.notify_all();
      sent["email"] = settings.email_to;
    }
  }
  return sent;
}

Result<json> Notifications::SendTest(const Principal& actor, const std::string& tenant) {
  REDRIVE_ASSIGN_OR_RETURN(auto settings, GetSettings(tenant));
  json doc = {{"type", "redrive.test"},
              {"text", "This is a test notification from redrive for tenant " + tenant +
                           ".\nIf you read this, the channel works.\n"}};
  NotificationSettings no_mail = settings;
  no_mail.email_to.clear();
  json sent = Deliver(tenant, no_mail, doc, "[redrive] " + tenant + ": test notification");
  if (!settings.email_to.empty()) {
    // Sent now rather than queued, so that the caller learns whether the server takes it.
    if (options_.smtp.url.empty()) {
      return Status(ErrorCode::kNotificationFailed,
                    "an email channel is set, but the server has no SMTP server "
                    "(notifications.smtp_url)");
    }
    push::MailMessage m;
    m.to = settings.email_to;
    m.subject = "[redrive] " + tenant + ": test notification";
    m.text = doc["text"].get<std::string>();
    Status st = push::SendMail(options_.smtp, m, clock_.Now());
    if (!st.ok()) {
      sent["emailError"] = st.message();
      audit_.Write(tenant, actor.token_id, "notifications.test", json{{"sent", sent}});
      return Status(ErrorCode::kNotificationFailed, "email: " + st.message());
    }
    sent["email"] = settings.email_to;
  }
  audit_.Write(tenant, actor.token_id, "notifications.test", json{{"sent", sent}});
  return sent;
}

void Notifications::MailerLoop() {
  std::unique_lock lock(mail_mu_);
  while (!stopping_) {
    if (!pending_.empty()) {
      lock.unlock();
      RaisePending();
      lock.lock();
      continue;
    }
    TimeMs now = clock_.Now();
    auto due = std::find_if(mail_.begin(), mail_.end(),
                            [&](const Mail& m) { return m.not_before <= now; });
    if (due == mail_.end()) {
      mail_cv_.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    Mail mail = std::move(*due);
    mail_.erase(due);
    lock.unlock();
    Status st = push::SendMail(options_.smtp, mail.message, clock_.Now());
    lock.lock();
    if (st.ok()) {
      spdlog::info("notification [{}]: e-mail sent to {} recipient(s)", mail.tenant,
                   mail.message.to.size());
      continue;
    }
    if (++mail.attempts >= kMailAttempts) {
      spdlog::error("notification [{}]: e-mail not sent after {} attempts: {}", mail.tenant,
                    mail.attempts, st.ToString());
      continue;
    }
    DurationMs backoff = 2'000LL << (2 * mail.attempts);  // 8s, 32s, 128s
    spdlog::warn("notification [{}]: e-mail not sent ({}), retrying in {}", mail.tenant,
                 st.ToString(), FormatDuration(backoff));
    mail.not_before = clock_.Now() + backoff;
    mail_.push_back(std::move(mail));
  }
}

// ------------------------------------------------------------------ alerts

void Notifications::OnAudit(const store::AuditRecord& r) {
  if (r.tenant.empty()) return;
  const std::string& a = r.action;
  if (a != "job.halted" && a != "export.failed" && a != "endpoint.disabled" &&
      a != "endpoint.recovered" && a != "endpoint.enabled") {
    return;
  }
  // Raised on a thread of its own: the writer of the entry may hold its own locks.
  std::lock_guard lock(mail_mu_);
  pending_.push_back(r);
  mail_cv_.notify_all();
}

void Notifications::RaisePending() {
  std::vector<store::AuditRecord> pending;
  {
    std::lock_guard lock(mail_mu_);
    pending.assign(pending_.begin(), pending_.end());
    pending_.clear();
  }
  for (const auto& r : pending) {
    auto saved = SavedSettings(r.tenant);
    if (!saved.ok() || !saved->has_value()) continue;  // alerts go to channels a tenant chose
    const NotificationSettings& settings = **saved;
    json d = json::parse(r.detail_json, nullptr, false);
    if (!d.is_object()) d = json::object();
    if (r.action == "job.halted") {
      std::string job = d.value("job", "");
      Alert(r.tenant, settings, "job-halted", "job-halted:" + job,
            "Redrive job " + job + " halted: " + d.value("reason", "") +
                ". Resume or cancel it (redrive job resume|cancel " + job + ").",
            d);
    } else if (r.action == "export.failed") {
      std::string id = d.value("export", "");
      Alert(r.tenant, settings, "export-failed", "export-failed:" + id,
            "Export " + id + " failed: " + d.value("error", ""), d);
    } else if (r.action == "endpoint.disabled") {
      std::string sub = d.value("subscription", "");
      ClearAlert(r.tenant, "endpoint-recovered:" + sub);
      Alert(r.tenant, settings, "endpoint-disabled", "endpoint-disabled:" + sub,
            "The endpoint of " + sub + " was disabled: " + d.value("reason", "") +
                ". Its messages are kept until it is enabled again.",
            d);
    } else if (r.action == "endpoint.enabled") {
      // Enabled by hand: a later disable is news again.
      ClearAlert(r.tenant, "endpoint-disabled:" + d.value("subscription", ""));
    } else if (r.action == "endpoint.recovered") {
      std::string sub = d.value("subscription", "");
      ClearAlert(r.tenant, "endpoint-disabled:" + sub);
      Alert(r.tenant, settings, "endpoint-recovered", "endpoint-recovered:" + sub,
            "The endpoint of " + sub + " takes deliveries again.", d);
    }
  }
}

void Notifications::ClearAlert(const std::string& tenant, const std::string& key) {
  std::lock_guard lock(alerts_mu_);
  auto t = alerts_.find(tenant);
  if (t == alerts_.end()) return;
  t->second.by_key.erase(key);
}

void Notifications::Alert(const std::string& tenant, const NotificationSettings& settings,
                          const std::string& kind, const std::string& key, const std::string& text,
                          json detail) {
  if (kind != "dlq-depth" && kind != "dlq-age" && !settings.alert_events) return;
  TimeMs now = clock_.Now();
  int64_t suppressed = 0;
  {
    std::lock_guard lock(alerts_mu_);
    TenantAlerts& t = alerts_[tenant];
    AlertState& state = t.by_key[key];
    if (state.last_sent > 0 && now - state.last_sent < settings.alert_repeat) return;
    std::erase_if(t.sent, [&](TimeMs at) { return now - at >= kHour; });
    if (static_cast<int>(t.sent.size()) >= settings.alert_max_per_hour) {
      ++t.suppressed;
      return;
    }
    state.last_sent = now;
    t.sent.push_back(now);
    suppressed = std::exchange(t.suppressed, 0);
  }
  json doc = {{"type", "redrive.alert"},
              {"alert", {{"kind", kind}, {"key", key}, {"detail", std::move(detail)}}},
              {"text", text + "\n"}};
  if (suppressed > 0) {
    doc["suppressed"] = suppressed;
    doc["text"] = text + "\n(" + std::to_string(suppressed) +
                  " earlier alert(s) were not sent: more than " +
                  std::to_string(settings.alert_max_per_hour) + " in an hour.)\n";
  }
  Deliver(tenant, settings, std::move(doc), "[redrive] " + tenant + ": " + FirstLine(text));
}

Status Notifications::CheckQueueAlerts(const std::string& tenant,
                                       const NotificationSettings& settings, TimeMs now) {
  if (settings.alert_depth <= 0 && settings.alert_age <= 0) return Status::Ok();
  REDRIVE_ASSIGN_OR_RETURN(auto queues, control_.ListQueues(tenant));
  for (const auto& q : queues) {
    if (q.kind != store::QueueKind::kDeadLetter) continue;
    store::DeadLetterScan scan;
    scan.tenant = tenant;
    scan.dlq = q.name;
    if (settings.alert_depth > 0) {
      const std::string key = "dlq-depth:" + q.name;
      REDRIVE_ASSIGN_OR_RETURN(int64_t depth, control_.CountDeadLetters(scan));
      if (depth > settings.alert_depth) {
        Alert(tenant, settings, "dlq-depth", key,
              "Dead-letter queue " + q.name + " holds " + std::to_string(depth) +
                  " dead letters (the alert is set at " + std::to_string(settings.alert_depth) +
                  ").",
              json{{"deadLetterQueue", q.name},
                   {"depth", depth},
                   {"threshold", settings.alert_depth}});
      } else {
        ClearAlert(tenant, key);
      }
    }
    if (settings.alert_age > 0) {
      const std::string key = "dlq-age:" + q.name;
      scan.limit = 1;
      REDRIVE_ASSIGN_OR_RETURN(auto oldest, control_.ScanDeadLetters(scan));
      DurationMs age = oldest.empty() ? 0 : now - oldest[0].dead_lettered_at;
      if (age > settings.alert_age) {
        Alert(tenant, settings, "dlq-age", key,
              "The oldest dead letter of " + q.name + " is " + FormatDuration(age / 1000 * 1000) +
                  " old (the alert is set at " + FormatDuration(settings.alert_age) + ").",
              json{{"deadLetterQueue", q.name},
                   {"oldestId", oldest[0].id},
                   {"oldest", FormatTime(oldest[0].dead_lettered_at)},
                   {"threshold", FormatDuration(settings.alert_age)}});
      } else {
        ClearAlert(tenant, key);
      }
    }
  }
  return Status::Ok();
}

// ------------------------------------------------------------------ the scheduler

Status Notifications::RunOnce() {
  RaisePending();
  TimeMs now = clock_.Now();
  {
    std::lock_guard lock(alerts_mu_);
    if (last_run_ > 0 && now - last_run_ < options_.notify_interval && now >= last_run_) {
      return Status::Ok();
    }
    last_run_ = now;
  }
  REDRIVE_ASSIGN_OR_RETURN(auto all, control_.ListNotificationSettings());
  bool check_queues = false;
  {
    std::lock_guard lock(alerts_mu_);
    if (now - queue_alerts_checked_at_ >= kQueueAlertInterval || now < queue_alerts_checked_at_) {
      queue_alerts_checked_at_ = now;
      check_queues = true;
    }
  }
  Status first = Status::Ok();
  auto note = [&](const std::string& tenant, const Status& st, const char* what) {
    if (st.ok()) return;
    spdlog::error("notifications [{}]: {}: {}", tenant, what, st.ToString());
    if (first.ok()) first = st;
  };
  for (const auto& rec : all) {
    auto settings = NotificationSettingsFromJson(json::parse(rec.config_json, nullptr, false));
    if (!settings.ok()) {
      note(rec.tenant, settings.status(), "settings");
      continue;
    }
    if (settings->digest_enabled) {
      TimeMs next = settings->digest_schedule.Next(rec.last_digest_at);
      if (next > 0 && next <= now) {
        auto marked = control_.MarkDigest(rec.tenant, rec.last_digest_at, now);
        if (!marked.ok()) {
          note(rec.tenant, marked.status(), "digest");
        } else if (*marked) {
          note(rec.tenant, OpenTicket("system", rec.tenant, *settings).status(), "digest");
        }
      }
    }
    if (check_queues) note(rec.tenant, CheckQueueAlerts(rec.tenant, *settings, now), "alerts");
  }
  auto due = control_.TicketsInState("open", now, 100);
  if (!due.ok()) return due.status();
  for (auto& t : *due) note(t.tenant, ExpireTicket(std::move(t)), "ticket expiry");
  auto retrying = control_.TicketsInState("retrying", std::numeric_limits<TimeMs>::max(), 100);
  if (!retrying.ok()) return retrying.status();
  for (auto& t : *retrying) note(t.tenant, FinishRetry(std::move(t)), "ticket retry");
  if (check_queues) {
    auto old = control_.DeleteClosedTickets(now - options_.ticket_history);
    if (!old.ok()) note("", old.status(), "old tickets");
  }
  return first;
}

}  // namespace redrive::engine
