#include "engine/dead_letter_doc.h"

#include "common/text.h"
#include "engine/model.h"
#include "engine/subscription_config.h"

namespace redrive::engine {
using nlohmann::json;

json OptTime(TimeMs t) { return t ? json(FormatTime(t)) : json(nullptr); }

void PutBody(json& j, const std::string& body) {
  if (IsValidUtf8(body)) {
    j["body"] = body;
    j["base64"] = false;
  } else {
    j["body"] = Base64Encode(body);
    j["base64"] = true;
  }
}

json AttributesJson(const store::Attributes& attributes) {
  json j = json::object();
  for (const auto& [k, v] : attributes) j[k] = v;
  return j;
}

json DeadLetterDocument(const store::DeadLetterRecord& d) {
  json j = {{"id", d.id},       {"deadLetterQueue", d.dlq}, {"origin", d.origin},
            {"topic", nullptr}, {"subscription", nullptr},  {"reason", d.reason},
            {"cause", d.cause}, {"group", d.group_id},      {"signature", d.signature}};
  // A topic's message: dead-lettered by a subscription (its queue "<topic>:<subscription>"), or
  // by the topic itself when no subscription took it (reason no-route).
  if (auto [topic, subscription] = SplitSubscriptionQueue(d.origin); !topic.empty()) {
    j["topic"] = topic;
    j["subscription"] = subscription;
  } else if (d.reason == kReasonNoRoute) {
    j["topic"] = d.origin;
  }
  PutBody(j, d.body);
  j["attributes"] = AttributesJson(d.attributes);
  j["idempotencyKey"] = d.idempotency_key.empty() ? json(nullptr) : json(d.idempotency_key);
  j["deliveryCount"] = d.delivery_count;
  j["publishedAt"] = FormatTime(d.published_at);
  j["firstDeliveredAt"] = OptTime(d.first_delivered_at);
  j["lastDeliveredAt"] = OptTime(d.last_delivered_at);
  j["deadLetteredAt"] = FormatTime(d.dead_lettered_at);
  j["expiresAt"] = OptTime(d.retain_until);
  json attempts = json::array();
  for (const auto& a : d.journal.attempts) {
    json e = {{"at", FormatTime(a.at)},
              {"consumer", a.consumer},
              {"outcome", a.outcome},
              {"reason", a.reason},
              {"error", a.error}};
    if (a.status != 0 || a.duration_ms != 0 || !a.response.empty()) {
      // A push delivery's attempt.
      e["status"] = a.status == 0 ? json(nullptr) : json(a.status);
      e["durationMs"] = a.duration_ms;
      e["response"] = a.response;
    }
    attempts.push_back(std::move(e));
  }
  j["attempts"] = std::move(attempts);
  j["attemptsOmitted"] = d.journal.omitted;
  j["redriveError"] = d.redrive_error.empty() ? json(nullptr) : json(d.redrive_error);
  j["exportedAt"] = OptTime(d.exported_at);
  j["redacted"] = d.redacted;
  j["lineage"] = {
      {"redriveCount", d.lineage.redrive_count},
      {"lastRedrivenAt", OptTime(d.lineage.last_redriven_at)},
      {"lastRedrivenBy",
       d.lineage.last_redriven_by.empty() ? json(nullptr) : json(d.lineage.last_redriven_by)},
      {"originalQueue",
       d.lineage.original_queue.empty() ? json(d.origin) : json(d.lineage.original_queue)}};
  return j;
}

json DeadLetterFilterDocument(const store::DeadLetterRecord& d, bool parse_body) {
  json j = DeadLetterDocument(d);
  if (parse_body) {
    json body = json::parse(d.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_discarded()) j["body"] = std::move(body);
  }
  return j;
}

}  // namespace redrive::engine
