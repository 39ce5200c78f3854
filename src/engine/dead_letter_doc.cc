#include "engine/dead_letter_doc.h"

#include <charconv>

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
  j["ticket"] = d.ticket.empty() ? json(nullptr) : json(d.ticket);
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

namespace {

// A JSON string as json::dump(-1, ' ', false, replace) writes it. ASCII is escaped here; a
// string with any other byte is left to nlohmann, so that its UTF-8 checks and replacements
// stay the library's own.
void AppendString(std::string& out, std::string_view s) {
  const size_t start = out.size();
  out += '"';
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') continue;
    if (c >= 0x80) {
      out.resize(start);
      out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
      return;
    }
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void AppendInt(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

void AppendTime(std::string& out, TimeMs t) { AppendString(out, FormatTime(t)); }

void AppendOptTime(std::string& out, TimeMs t) {
  if (t) {
    AppendTime(out, t);
  } else {
    out += "null";
  }
}

void AppendOptString(std::string& out, const std::string& s) {
  if (s.empty()) {
    out += "null";
  } else {
    AppendString(out, s);
  }
}

}  // namespace

// Keys in the order of the document's std::map, as dump() writes them.
void AppendExportLine(std::string& out, const store::DeadLetterRecord& d, int format_version,
                      std::string_view exported_at) {
  out += "{\"attempts\":[";
  bool first = true;
  for (const auto& a : d.journal.attempts) {
    if (!first) out += ',';
    first = false;
    const bool push = a.status != 0 || a.duration_ms != 0 || !a.response.empty();
    out += "{\"at\":";
    AppendTime(out, a.at);
    out += ",\"consumer\":";
    AppendString(out, a.consumer);
    if (push) {
      out += ",\"durationMs\":";
      AppendInt(out, a.duration_ms);
    }
    out += ",\"error\":";
    AppendString(out, a.error);
    out += ",\"outcome\":";
    AppendString(out, a.outcome);
    out += ",\"reason\":";
    AppendString(out, a.reason);
    if (push) {
      out += ",\"response\":";
      AppendString(out, a.response);
      out += ",\"status\":";
      if (a.status == 0) {
        out += "null";
      } else {
        AppendInt(out, a.status);
      }
    }
    out += '}';
  }
  out += "],\"attemptsOmitted\":";
  AppendInt(out, d.journal.omitted);
  out += ",\"attributes\":{";
  first = true;
  for (const auto& [k, v] : d.attributes) {
    if (!first) out += ',';
    first = false;
    AppendString(out, k);
    out += ':';
    AppendString(out, v);
  }
  const bool text = IsValidUtf8(d.body);
  out += "},\"base64\":";
  out += text ? "false" : "true";
  out += ",\"body\":";
  AppendString(out, text ? d.body : Base64Encode(d.body));
  out += ",\"cause\":";
  AppendString(out, d.cause);
  out += ",\"deadLetterQueue\":";
  AppendString(out, d.dlq);
  out += ",\"deadLetteredAt\":";
  AppendTime(out, d.dead_lettered_at);
  out += ",\"deliveryCount\":";
  AppendInt(out, d.delivery_count);
  out += ",\"expiresAt\":";
  AppendOptTime(out, d.retain_until);
  out += ",\"exportedAt\":";
  AppendString(out, exported_at);
  out += ",\"firstDeliveredAt\":";
  AppendOptTime(out, d.first_delivered_at);
  out += ",\"formatVersion\":";
  AppendInt(out, format_version);
  out += ",\"group\":";
  AppendString(out, d.group_id);
  out += ",\"id\":";
  AppendString(out, d.id);
  out += ",\"idempotencyKey\":";
  AppendOptString(out, d.idempotency_key);
  out += ",\"lastDeliveredAt\":";
  AppendOptTime(out, d.last_delivered_at);
  out += ",\"lineage\":{\"lastRedrivenAt\":";
  AppendOptTime(out, d.lineage.last_redriven_at);
  out += ",\"lastRedrivenBy\":";
  AppendOptString(out, d.lineage.last_redriven_by);
  out += ",\"originalQueue\":";
  AppendString(out, d.lineage.original_queue.empty() ? d.origin : d.lineage.original_queue);
  out += ",\"redriveCount\":";
  AppendInt(out, d.lineage.redrive_count);
  out += "},\"origin\":";
  AppendString(out, d.origin);
  out += ",\"publishedAt\":";
  AppendTime(out, d.published_at);
  out += ",\"reason\":";
  AppendString(out, d.reason);
  out += ",\"redacted\":";
  out += d.redacted ? "true" : "false";
  out += ",\"redriveError\":";
  AppendOptString(out, d.redrive_error);
  out += ",\"signature\":";
  AppendString(out, d.signature);
  // As DeadLetterDocument: a subscription's queue names its topic, a no-route one is the topic.
  auto [topic, subscription] = SplitSubscriptionQueue(d.origin);
  out += ",\"subscription\":";
  if (!topic.empty()) {
    AppendString(out, subscription);
  } else {
    out += "null";
  }
  out += ",\"ticket\":";
  AppendOptString(out, d.ticket);
  out += ",\"topic\":";
  if (!topic.empty()) {
    AppendString(out, topic);
  } else if (d.reason == kReasonNoRoute) {
    AppendString(out, d.origin);
  } else {
    out += "null";
  }
  out += '}';
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
