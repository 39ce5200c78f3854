// The digest and tickets (notifications.h): opening a ticket over the dead letters no open
// ticket lists, its summary and notice, answers (API, CLI, link) and expiry.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "common/text.h"
#include "engine/audit_log.h"
#include "engine/dead_letter_doc.h"
#include "engine/dead_letters.h"
#include "engine/internal/cookie.h"
#include "engine/notifications.h"
#include "engine/tenancy.h"
#include "query/filter.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

constexpr char kOpen[] = "open";
constexpr char kRetrying[] = "retrying";  // answered with retry; its job is moving them
constexpr char kAnswered[] = "answered";
constexpr char kExpired[] = "expired";
constexpr size_t kSummaryRows = 10;  // groups, origins and reasons listed in a summary
constexpr size_t kSamples = 3;
constexpr size_t kSampleBody = 2048;  // bytes of a sample's body shown

std::string Thousands(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

json CountRows(const std::vector<store::CountRow>& rows, const char* key) {
  json out = json::array();
  for (size_t i = 0; i < rows.size() && i < kSummaryRows; ++i) {
    out.push_back({{key, rows[i].key}, {"count", rows[i].count}});
  }
  return out;
}

TicketInfo InfoOf(store::TicketRecord rec) {
  TicketInfo t;
  t.data = json::parse(rec.data_json, nullptr, false);
  if (!t.data.is_object()) t.data = json::object();
  t.record = std::move(rec);
  return t;
}

// The human text of a ticket's notice: what failed, what the groups' diagnoses say, and how to
// answer by when. `link` empty: no link (the server log).
std::string NoticeText(const TicketInfo& t, const std::string& link) {
  const json& s = t.data.value("summary", json::object());
  std::string text = Thousands(t.record.count) + " dead letter(s) of tenant " + t.record.tenant +
                     " are waiting for an answer (ticket " + t.record.id + ").\n";
  if (s.contains("oldest") && s["oldest"].is_string()) {
    text += "Dead-lettered between " + s["oldest"].get<std::string>() + " and " +
            s.value("newest", "") + ".\n";
  }
  text += "\nBy failure group:\n";
  for (const auto& g : s.value("byGroup", json::array())) {
    text += "  " + Thousands(g.value("count", int64_t{0})) + "  " + g.value("origin", "") + "  " +
            g.value("reason", "") + "  " + g.value("signature", "") + "\n";
    if (g.contains("diagnosis") && g["diagnosis"].is_object()) {
      text += "      diagnosis: " + g["diagnosis"].value("kind", "") + " - " +
              g["diagnosis"].value("summary", "") + "\n";
    }
  }
  text += "\nBy origin:\n";
  for (const auto& o : s.value("byOrigin", json::array())) {
    text += "  " + Thousands(o.value("count", int64_t{0})) + "  " + o.value("origin", "") + "\n";
  }
  text += "\nBy reason:\n";
  for (const auto& r : s.value("byReason", json::array())) {
    text += "  " + Thousands(r.value("count", int64_t{0})) + "  " + r.value("reason", "") + "\n";
  }
  text += "\nSamples:\n";
  for (const auto& d : s.value("samples", json::array())) {
    text += "  " + d.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  text += "\nAnswer by " + FormatTime(t.record.expires_at) + ", with retry (each goes back to " +
          "its origin queue) or discard (they are deleted):\n";
  if (!link.empty()) text += "  - open " + link + "\n";
  text += "  - redrive ticket answer " + t.record.id + " retry|discard --tenant " +
          t.record.tenant + "\n";
  text += "  - POST /v1/tenants/" + t.record.tenant + "/tickets/" + t.record.id +
          "/answer {\"action\": \"retry\"}\n";
  text += t.data.value("onExpiry", "remove") == "keep"
              ? "Unanswered by then, the ticket closes and its dead letters are kept.\n"
              : "Unanswered by then, the ticket closes and its dead letters are removed.\n";
  return text;
}

}  // namespace

json TicketDocument(const TicketInfo& t) {
  const auto& r = t.record;
  json j = {{"id", r.id},
            {"state", r.state},
            {"count", r.count},
            {"createdAt", FormatTime(r.created_at)},
            {"updatedAt", FormatTime(r.updated_at)},
            {"expiresAt", FormatTime(r.expires_at)},
            {"closedAt", OptTime(r.closed_at)},
            {"onExpiry", t.data.value("onExpiry", "remove")},
            {"summary", t.data.value("summary", json(nullptr))},
            {"answer", t.data.value("answer", json(nullptr))},
            {"expiry", t.data.value("expiry", json(nullptr))},
            {"notified", t.data.value("notified", json::array())}};
  return j;
}

void Notifications::SetPublicUrl(const std::string& url) {
  std::lock_guard lock(url_mu_);
  public_url_ = url;
}

std::string Notifications::LinkUrl(const std::string& secret) const {
  if (secret.empty()) return "";
  std::string base;
  {
    std::lock_guard lock(url_mu_);
    base = public_url_.empty() ? options_.public_url : public_url_;
  }
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/v1/ticket-links/" + secret;
}

Result<json> Notifications::Summarize(const std::string& tenant, const std::string& ticket) {
  REDRIVE_ASSIGN_OR_RETURN(auto stats, control_.GetDeadLetterStats(tenant, "", ticket));
  json s = {{"total", stats.total},
            {"oldest", OptTime(stats.oldest)},
            {"newest", OptTime(stats.newest)},
            {"byOrigin", CountRows(stats.by_origin, "origin")},
            {"byReason", CountRows(stats.by_reason, "reason")}};
  // The groups, as the groups API shows them to a token without dlq:read-unredacted
  // (signatures redacted), each with its diagnosis.
  REDRIVE_ASSIGN_OR_RETURN(auto groups, dead_letters_.ListFailureGroups(tenant, ""));
  std::map<std::string, const FailureGroup*> by_id;
  for (const auto& g : groups) by_id[g.row.group_id] = &g;
  json by_group = json::array();
  for (size_t i = 0; i < stats.by_group.size() && i < kSummaryRows; ++i) {
    const auto& row = stats.by_group[i];
    json g = {{"group", row.key}, {"count", row.count}};
    if (auto it = by_id.find(row.key); it != by_id.end()) {
      const FailureGroup& group = *it->second;
      g["origin"] = group.row.origin;
      g["reason"] = group.row.reason;
      g["signature"] = group.row.signature;
      g["diagnosis"] = group.diagnosis ? DiagnosisToJson(*group.diagnosis) : json(nullptr);
    }
    by_group.push_back(std::move(g));
  }
  s["byGroup"] = std::move(by_group);
  store::DeadLetterScan scan;
  scan.tenant = tenant;
  scan.ticket = ticket;
  scan.limit = static_cast<int>(kSamples);
  REDRIVE_ASSIGN_OR_RETURN(auto samples, control_.ScanDeadLetters(scan));
  json docs = json::array();
  for (const auto& d : samples) {
    // Never the real values: a sample that cannot be redacted is left out.
    auto redacted = dead_letters_.RedactedDocument(d);
    if (!redacted.ok()) return redacted.status();
    json doc = std::move(redacted).value();
    if (doc.contains("body") && doc["body"].is_string() &&
        doc["body"].get_ref<const std::string&>().size() > kSampleBody) {
      const std::string& body = doc["body"].get_ref<const std::string&>();
      size_t cut = kSampleBody;
      // Never inside a UTF-8 sequence: back up over continuation bytes (10xxxxxx).
      while (cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) --cut;
      doc["body"] = body.substr(0, cut);
      doc["bodyTruncated"] = true;
    }
    doc.erase("attempts");  // the samples say what failed; the attempts are in the API
    docs.push_back(std::move(doc));
  }
  s["samples"] = std::move(docs);
  return s;
}

json Notifications::TicketNotice(const TicketInfo& t, const std::string& link_secret) const {
  std::string link = LinkUrl(link_secret);
  json doc = {{"type", "redrive.ticket"},
              {"ticket", TicketDocument(t)},
              {"answer",
               {{"by", FormatTime(t.record.expires_at)},
                {"actions", {"retry", "discard"}},
                {"api", "/v1/tenants/" + t.record.tenant + "/tickets/" + t.record.id + "/answer"},
                {"cli", "redrive ticket answer " + t.record.id + " retry|discard --tenant " +
                            t.record.tenant}}},
              {"text", NoticeText(t, link)}};
  if (!link.empty()) doc["answer"]["link"] = link;
  return doc;
}

Result<std::optional<TicketInfo>> Notifications::OpenTicket(const std::string& actor,
                                                            const std::string& tenant,
                                                            const NotificationSettings& settings) {
  REDRIVE_ASSIGN_OR_RETURN(auto snapshot, control_.SnapshotDeadLetters(tenant));
  TimeMs now = clock_.Now();
  std::string secret = "rdl_" + HexEncode(random_.Bytes(24));
  store::TicketRecord rec;
  rec.id = "tkt_" + NewUlid(now, random_);
  rec.tenant = tenant;
  rec.state = kOpen;
  rec.created_at = rec.updated_at = now;
  rec.expires_at = now + settings.response_window;
  rec.link_hash = Sha256Hex(secret);
  rec.data_json =
      json{{"createdBy", actor}, {"onExpiry", settings.keep_on_expiry ? "keep" : "remove"}}.dump();
  REDRIVE_ASSIGN_OR_RETURN(int64_t count, control_.OpenTicket(rec, snapshot));
  if (count == 0) return std::optional<TicketInfo>();
  rec.count = count;
  audit_.Write(tenant, actor, "ticket.open", json{{"ticket", rec.id}, {"count", count}});
  TicketInfo t = InfoOf(rec);
  t.link_secret = secret;
  auto summary = Summarize(tenant, rec.id);
  if (summary.ok()) {
    t.data["summary"] = std::move(summary).value();
  } else {
    spdlog::error("ticket {} of {}: no summary: {}", rec.id, tenant, summary.status().ToString());
  }
  json notice = TicketNotice(t, secret);
  std::string subject = "[redrive] " + tenant + ": " + Thousands(count) +
                        " dead letter(s) to answer by " + FormatTime(rec.expires_at);
  json sent = Deliver(tenant, settings, notice, subject);
  t.data["notified"] = json::array({{{"at", FormatTime(clock_.Now())}, {"channels", sent}}});
  t.record.data_json = t.data.dump();
  t.record.updated_at = clock_.Now();
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateTicket(t.record, kOpen));
  (void)saved;  // answered already (a fast link click): its answer stands
  audit_.Write(tenant, actor, "ticket.notify", json{{"ticket", rec.id}, {"channels", sent}});
  return std::optional<TicketInfo>(std::move(t));
}

Result<std::optional<TicketInfo>> Notifications::RunDigest(const Principal& actor,
                                                           const std::string& tenant) {
  REDRIVE_ASSIGN_OR_RETURN(auto settings, GetSettings(tenant));
  return OpenTicket(actor.token_id, tenant, settings);
}

Result<TicketInfo> Notifications::GetTicket(const std::string& tenant, const std::string& id) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetTicket(tenant, id));
  if (!rec) return Status(ErrorCode::kTicketNotFound, "ticket '" + id + "' not found");
  return InfoOf(std::move(*rec));
}

Result<TicketQueryResult> Notifications::QueryTickets(const std::string& tenant,
                                                      const TicketQuery& q) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  if (q.page_size < 1 || q.page_size > 1000) {
    return Status(ErrorCode::kInvalidQuery, "_pageSize must be between 1 and 1000");
  }
  std::unique_ptr<query::Expr> filter;
  if (!q.filter.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(filter, query::ParseFilter(q.filter));
  }
  // The cookie: the created_at and id of the last ticket of the previous page (newest first).
  int64_t after_created = 0, unused = 0;
  std::string after_id;
  if (!q.cookie.empty() && !DecodeCookie(q.cookie, "t", &after_created, &unused, &after_id)) {
    return BadCookie();
  }
  REDRIVE_ASSIGN_OR_RETURN(auto all, control_.ListTickets(tenant));
  TicketQueryResult out;
  for (auto& rec : all) {
    TicketInfo t = InfoOf(rec);
    if (filter && !query::Evaluate(*filter, TicketDocument(t))) continue;
    ++out.total;  // every match, before the cookie too
    bool after_cookie = q.cookie.empty() || rec.created_at < after_created ||
                        (rec.created_at == after_created && rec.id < after_id);
    if (!after_cookie) continue;
    if (out.items.size() < static_cast<size_t>(q.page_size)) {
      out.items.push_back(std::move(t));
    } else if (out.next_cookie.empty()) {
      const auto& last = out.items.back().record;
      out.next_cookie = EncodeCookie("t", last.created_at, 0, last.id);
    }
  }
  return out;
}

Result<TicketInfo> Notifications::Answer(const Principal& actor, const std::string& tenant,
                                         const std::string& id, const std::string& action) {
  if (action != "retry" && action != "discard") {
    return Status(ErrorCode::kInvalidArgument, "'action' must be retry or discard");
  }
  REDRIVE_ASSIGN_OR_RETURN(auto t, GetTicket(tenant, id));
  return AnswerTicket(actor, std::move(t), action, "api");
}

Result<TicketInfo> Notifications::TicketOfLink(const std::string& secret) {
  if (secret.rfind("rdl_", 0) != 0) {
    return Status(ErrorCode::kTicketNotFound, "no ticket has this link");
  }
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.FindTicketByLink(Sha256Hex(secret)));
  if (!rec) return Status(ErrorCode::kTicketNotFound, "no ticket has this link");
  TicketInfo t = InfoOf(std::move(*rec));
  if (t.record.state != kOpen || clock_.Now() >= t.record.expires_at) {
    return Status(ErrorCode::kTicketClosed,
                  "ticket " + t.record.id + " is " +
                      (t.record.state == kOpen ? std::string(kExpired) : t.record.state) +
                      ": this link cannot answer it any more");
  }
  return t;
}

Result<TicketInfo> Notifications::AnswerByLink(const std::string& secret,
                                               const std::string& action) {
  if (action != "retry" && action != "discard") {
    return Status(ErrorCode::kInvalidArgument, "'action' must be retry or discard");
  }
  REDRIVE_ASSIGN_OR_RETURN(auto t, TicketOfLink(secret));
  return AnswerTicket(Tenancy::System(), std::move(t), action, "link");
}

Result<TicketInfo> Notifications::AnswerTicket(const Principal& actor, TicketInfo t,
                                               const std::string& action, const char* via) {
  TimeMs now = clock_.Now();
  const std::string tenant = t.record.tenant;
  if (t.record.state != kOpen || now >= t.record.expires_at) {
    std::string state = t.record.state == kOpen ? kExpired : t.record.state;
    return Status(ErrorCode::kTicketClosed,
                  "ticket " + t.record.id + " is " + state + "; it cannot be answered again");
  }
  // First the state, so that two answers (a double click) cannot both act. A retry keeps
  // its dead letters covered ("retrying") until its job has finished with them.
  store::TicketRecord rec = t.record;
  rec.state = action == "retry" ? kRetrying : kAnswered;
  rec.closed_at = rec.updated_at = now;
  t.data["answer"] = {
      {"action", action}, {"by", actor.token_id}, {"via", via}, {"at", FormatTime(now)}};
  rec.data_json = t.data.dump();
  REDRIVE_ASSIGN_OR_RETURN(bool won, control_.UpdateTicket(rec, kOpen));
  if (!won) {
    return Status(ErrorCode::kTicketClosed,
                  "ticket " + rec.id + " was answered or expired meanwhile");
  }
  audit_.Write(tenant, actor.token_id, "ticket.answer",
               json{{"ticket", rec.id}, {"action", action}, {"via", via}});
  if (action == "retry") {
    JobSpec spec;
    spec.dlq.clear();
    spec.ticket = rec.id;
    auto job = dead_letters_.StartJob(actor, tenant, spec);
    if (!job.ok()) {
      // Nothing moved: the ticket is open again, so that it can be answered once more.
      store::TicketRecord back = t.record;
      back.updated_at = clock_.Now();
      (void)control_.UpdateTicket(back, kRetrying);
      audit_.Write(tenant, actor.token_id, "ticket.reopen",
                   json{{"ticket", rec.id}, {"error", job.status().message()}});
      return job.status();
    }
    t.data["answer"]["job"] = job->id;
    t.data["answer"]["toMove"] = job->to_move;
    rec.data_json = t.data.dump();
    rec.updated_at = clock_.Now();
    REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateTicket(rec, kRetrying));
    (void)saved;  // closed by the scheduler already (an empty job): its record stands
    t.record = rec;
    return t;  // closed (ticket.close) by the scheduler once the job has finished
  }
  DeadLetterTarget target;
  target.ticket = rec.id;
  auto deleted = dead_letters_.DeleteDeadLetters(actor, tenant, target);
  if (!deleted.ok()) {
    t.data["answer"]["error"] = deleted.status().message();
  } else {
    t.data["answer"]["deleted"] = deleted->done;
  }
  rec.data_json = t.data.dump();
  rec.updated_at = clock_.Now();
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateTicket(rec, kAnswered));
  (void)saved;
  audit_.Write(tenant, actor.token_id, "ticket.close",
               json{{"ticket", rec.id}, {"reason", "answered"}, {"answer", t.data["answer"]}});
  t.record = rec;
  return t;
}

Status Notifications::FinishRetry(store::TicketRecord rec) {
  TicketInfo t = InfoOf(rec);
  const std::string job_id = t.data.value("answer", json::object()).value("job", "");
  if (job_id.empty()) return Status::Ok();  // its answer is being written
  auto job = dead_letters_.GetJob(rec.tenant, job_id);
  if (job.ok() && store::IsActive(job->state)) return Status::Ok();
  if (job.ok()) {
    t.data["answer"]["jobState"] = std::string(store::ToString(job->state));
    t.data["answer"]["moved"] = job->moved;
    t.data["answer"]["skipped"] = job->skipped;
  } else if (job.status().code() != ErrorCode::kJobNotFound) {
    return job.status();
  }
  rec.state = kAnswered;
  rec.updated_at = clock_.Now();
  rec.data_json = t.data.dump();
  REDRIVE_ASSIGN_OR_RETURN(bool won, control_.UpdateTicket(rec, kRetrying));
  if (!won) return Status::Ok();
  audit_.Write(rec.tenant, "system", "ticket.close",
               json{{"ticket", rec.id}, {"reason", "answered"}, {"answer", t.data["answer"]}});
  return Status::Ok();
}

Status Notifications::ExpireTicket(store::TicketRecord rec) {
  TicketInfo t = InfoOf(rec);
  TimeMs now = clock_.Now();
  rec.state = kExpired;
  rec.closed_at = rec.updated_at = now;
  bool keep = t.data.value("onExpiry", "remove") == "keep";
  t.data["expiry"] = {{"at", FormatTime(now)}, {"policy", keep ? "keep" : "remove"}};
  rec.data_json = t.data.dump();
  REDRIVE_ASSIGN_OR_RETURN(bool won, control_.UpdateTicket(rec, kOpen));
  if (!won) return Status::Ok();  // answered meanwhile, or another node expired it
  int64_t removed = 0;
  if (!keep) {
    DeadLetterTarget target;
    target.ticket = rec.id;
    REDRIVE_ASSIGN_OR_RETURN(
        auto r, dead_letters_.DeleteDeadLetters(Tenancy::System(), rec.tenant, target));
    removed = r.done;
    t.data["expiry"]["removed"] = removed;
    rec.data_json = t.data.dump();
    REDRIVE_RETURN_IF_ERROR(control_.UpdateTicket(rec, kExpired).status());
  }
  audit_.Write(rec.tenant, "system", "ticket.close",
               json{{"ticket", rec.id}, {"reason", "expired"}, {"expiry", t.data["expiry"]}});
  auto settings = GetSettings(rec.tenant);
  if (settings.ok()) {
    std::string text = "Ticket " + rec.id + " of " + rec.tenant + " (" + Thousands(rec.count) +
                       " dead letter(s)) expired unanswered at " + FormatTime(now) + "; " +
                       (keep ? "its dead letters are kept.\n"
                             : Thousands(removed) + " dead letter(s) were removed.\n");
    t.record = rec;
    Deliver(rec.tenant, *settings,
            json{{"type", "redrive.ticket.expired"}, {"ticket", TicketDocument(t)}, {"text", text}},
            "[redrive] " + rec.tenant + ": ticket " + rec.id + " expired unanswered");
  }
  return Status::Ok();
}

}  // namespace redrive::engine
