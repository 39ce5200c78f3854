// Topics, filters and push endpoints: validation and JSON forms (subscription_config.h).
#include "engine/subscription_config.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "engine/internal/config_fields.h"
#include "engine/queue_config.h"
#include "push/signature.h"

namespace redrive::engine {
namespace {

using internal::Bad;
using internal::ReadBool;
using internal::ReadDouble;
using internal::ReadDuration;
using internal::ReadInt;
using internal::ReadString;
using internal::Unknown;
using nlohmann::json;

Status ReadTerm(const json& v, const std::string& field, FilterTerm* term) {
  if (v.is_string()) {
    *term = FilterTerm{FilterTerm::Kind::kEquals, v.get<std::string>()};
    return Status::Ok();
  }
  if (v.is_object() && v.size() == 1) {
    if (v.contains("prefix") && v["prefix"].is_string()) {
      *term = FilterTerm{FilterTerm::Kind::kPrefix, v["prefix"].get<std::string>()};
      return Status::Ok();
    }
    if (v.contains("exists") && v["exists"].is_boolean()) {
      *term = FilterTerm{
          v["exists"].get<bool>() ? FilterTerm::Kind::kExists : FilterTerm::Kind::kAbsent, ""};
      return Status::Ok();
    }
  }
  return Bad(field,
             "must be a string (equal to), {\"prefix\": \"...\"} or {\"exists\": true|false}");
}

}  // namespace

// ------------------------------------------------------------------ topics

Status ApplyTopicConfigJson(const json& j, TopicConfig* c) {
  if (!j.is_object())
    return Status(ErrorCode::kInvalidArgument, "topic attributes must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "noRoute") {
      std::string v = it->is_string() ? it->get<std::string>() : "";
      if (v == "count") {
        c->no_route = NoRouteAction::kCount;
      } else if (v == "dead-letter") {
        c->no_route = NoRouteAction::kDeadLetter;
      } else {
        return Bad(k, "must be \"count\" or \"dead-letter\"");
      }
    } else if (k == "deadLetterQueue") {
      REDRIVE_RETURN_IF_ERROR(ReadString(*it, k, &c->dead_letter_queue));
    } else if (k == "maxMessageSize") {
      REDRIVE_RETURN_IF_ERROR(ReadInt(*it, k, 1, kMaxMessageSizeLimit, &c->max_message_size));
    } else if (k == "eventRetention") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, k, &c->event_retention));
    } else {
      return Unknown(k);
    }
  }
  return Status::Ok();
}

Status ValidateTopicConfig(const TopicConfig& c) {
  if (c.event_retention < 0 || c.event_retention > kMaxEventRetention) {
    return Bad("eventRetention", "must be between 0 (no events) and 30d");
  }
  return ValidateName(c.dead_letter_queue, "deadLetterQueue");
}

json TopicConfigToJson(const TopicConfig& c) {
  return json{{"noRoute", c.no_route == NoRouteAction::kCount ? "count" : "dead-letter"},
              {"deadLetterQueue", c.dead_letter_queue},
              {"maxMessageSize", c.max_message_size},
              {"eventRetention", FormatDuration(c.event_retention)}};
}

std::string SubscriptionQueueName(std::string_view topic, std::string_view subscription) {
  std::string out(topic);
  out += kSubscriptionSeparator;
  out += subscription;
  return out;
}

std::pair<std::string, std::string> SplitSubscriptionQueue(std::string_view queue) {
  auto at = queue.find(kSubscriptionSeparator);
  if (at == std::string_view::npos) return {};
  return {std::string(queue.substr(0, at)), std::string(queue.substr(at + 1))};
}

// ------------------------------------------------------------------ filters

bool SubscriptionFilter::Matches(const store::Attributes& attrs) const {
  for (const auto& [name, terms] : attributes) {
    auto it = attrs.find(name);
    bool any = false;
    for (const auto& t : terms) {
      switch (t.kind) {
        case FilterTerm::Kind::kEquals:
          any = it != attrs.end() && it->second == t.value;
          break;
        case FilterTerm::Kind::kPrefix:
          any = it != attrs.end() && it->second.compare(0, t.value.size(), t.value) == 0;
          break;
        case FilterTerm::Kind::kExists:
          any = it != attrs.end();
          break;
        case FilterTerm::Kind::kAbsent:
          any = it == attrs.end();
          break;
      }
      if (any) break;
    }
    if (!any) return false;
  }
  return true;
}

Status ApplyFilterJson(const json& j, SubscriptionFilter* f) {
  f->attributes.clear();
  if (j.is_null()) return Status::Ok();
  if (!j.is_object()) return Bad("filter", "must be an object of attribute names, or null");
  if (j.size() > kMaxFilterAttributes) {
    return Bad("filter", "names at most " + std::to_string(kMaxFilterAttributes) + " attributes");
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string field = "filter." + it.key();
    if (it.key().empty()) return Bad("filter", "has an empty attribute name");
    std::vector<FilterTerm> terms;
    if (it->is_array()) {
      if (it->empty() || it->size() > kMaxFilterTerms) {
        return Bad(field, "must list 1 to " + std::to_string(kMaxFilterTerms) + " values");
      }
      for (size_t i = 0; i < it->size(); ++i) {
        FilterTerm t;
        REDRIVE_RETURN_IF_ERROR(ReadTerm((*it)[i], field + "[" + std::to_string(i) + "]", &t));
        terms.push_back(std::move(t));
      }
    } else {
      FilterTerm t;
      REDRIVE_RETURN_IF_ERROR(ReadTerm(*it, field, &t));
      terms.push_back(std::move(t));
    }
    f->attributes.emplace_back(it.key(), std::move(terms));
  }
  return Status::Ok();
}

json FilterToJson(const SubscriptionFilter& f) {
  json out = json::object();
  for (const auto& [name, terms] : f.attributes) {
    json list = json::array();
    for (const auto& t : terms) {
      switch (t.kind) {
        case FilterTerm::Kind::kEquals:
          list.push_back(t.value);
          break;
        case FilterTerm::Kind::kPrefix:
          list.push_back({{"prefix", t.value}});
          break;
        case FilterTerm::Kind::kExists:
          list.push_back({{"exists", true}});
          break;
        case FilterTerm::Kind::kAbsent:
          list.push_back({{"exists", false}});
          break;
      }
    }
    out[name] = list.size() == 1 ? list[0] : list;
  }
  return out;
}

// ------------------------------------------------------------------ push endpoints

std::vector<int> DefaultPermanentCodes() { return {400, 401, 403, 404, 405, 410, 413, 422}; }

std::vector<std::string> PushConfig::SigningSecrets(TimeMs now) const {
  std::vector<std::string> out;
  for (const auto& s : secrets) {
    if (s.expires_at == 0 || s.expires_at > now) out.push_back(s.secret);
  }
  return out;
}

Status ApplyPushJson(const json& j, bool stored, PushConfig* p) {
  if (!j.is_object()) return Bad("push", "must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const std::string f = "push." + k;
    if (k == "url") {
      REDRIVE_RETURN_IF_ERROR(ReadString(*it, f, &p->url));
    } else if (k == "headers") {
      if (!it->is_object()) return Bad(f, "must be an object of header names and values");
      p->headers.clear();
      for (auto h = it->begin(); h != it->end(); ++h) {
        if (!h->is_string()) return Bad(f + "." + h.key(), "must be a string");
        p->headers.emplace_back(h.key(), h->get<std::string>());
      }
    } else if (k == "timeout") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, f, &p->timeout));
    } else if (k == "maxInFlight") {
      int64_t n = 0;
      REDRIVE_RETURN_IF_ERROR(ReadInt(*it, f, 1, kMaxInFlightLimit, &n));
      p->max_in_flight = static_cast<int>(n);
    } else if (k == "rateLimit") {
      REDRIVE_RETURN_IF_ERROR(ReadDouble(*it, f, 0, 100'000, &p->rate_limit));
    } else if (k == "caFile") {
      REDRIVE_RETURN_IF_ERROR(ReadString(*it, f, &p->ca_file));
    } else if (k == "secret" && !stored) {
      std::string secret;
      REDRIVE_RETURN_IF_ERROR(ReadString(*it, f, &secret));
      auto parsed = push::ParseSecret(secret);
      if (!parsed.ok()) return Bad(f, parsed.status().message());
      p->secrets = {EndpointSecret{secret, 0}};
    } else if (k == "secrets" && stored) {
      if (!it->is_array()) return Bad(f, "must be an array");
      p->secrets.clear();
      for (const auto& s : *it) {
        if (!s.is_object() || !s.contains("secret") || !s["secret"].is_string()) {
          return Bad(f, "holds an unreadable secret");
        }
        p->secrets.push_back(
            EndpointSecret{s["secret"].get<std::string>(), s.value("expiresAt", int64_t{0})});
      }
    } else if (k == "permanentCodes") {
      if (!it->is_array()) return Bad(f, "must be an array of HTTP status codes");
      p->permanent_codes.clear();
      for (const auto& c : *it) {
        if (!c.is_number_integer() || c.get<int>() < 300 || c.get<int>() > 599) {
          return Bad(f, "must hold status codes from 300 to 599");
        }
        p->permanent_codes.push_back(c.get<int>());
      }
    } else if (k == "circuitFailures") {
      int64_t n = 0;
      REDRIVE_RETURN_IF_ERROR(ReadInt(*it, f, 1, 1'000'000, &n));
      p->circuit_failures = static_cast<int>(n);
    } else if (k == "probeInterval") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, f, &p->probe_interval));
    } else if (k == "disableAfter") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, f, &p->disable_after));
    } else if (k == "autoRedriveOnRecovery") {
      if (it->is_boolean()) {
        p->auto_redrive = it->get<bool>();
        continue;
      }
      if (!it->is_object()) return Bad(f, "must be true, false or {\"rate\": n, \"canary\": n}");
      p->auto_redrive = true;
      for (auto a = it->begin(); a != it->end(); ++a) {
        if (a.key() == "rate") {
          REDRIVE_RETURN_IF_ERROR(ReadDouble(*a, f + ".rate", 0.1, 100'000, &p->auto_redrive_rate));
        } else if (a.key() == "canary") {
          REDRIVE_RETURN_IF_ERROR(
              ReadInt(*a, f + ".canary", 0, 1'000'000, &p->auto_redrive_canary));
        } else if (a.key() == "enabled") {
          REDRIVE_RETURN_IF_ERROR(ReadBool(*a, f + ".enabled", &p->auto_redrive));
        } else {
          return Unknown(f + "." + a.key());
        }
      }
    } else if (k == "disabled" && stored) {
      REDRIVE_RETURN_IF_ERROR(ReadBool(*it, f, &p->disabled));
    } else if (k == "disabledReason" && stored) {
      REDRIVE_RETURN_IF_ERROR(ReadString(*it, f, &p->disabled_reason));
    } else if (k == "disabledAt" && stored) {
      int64_t at = 0;
      REDRIVE_RETURN_IF_ERROR(ReadInt(*it, f, 0, int64_t{1} << 50, &at));
      p->disabled_at = at;
    } else if (!stored && (k == "disabled" || k == "disabledReason" || k == "disabledAt" ||
                           k == "secrets" || k == "secretHints")) {
      // Shown by GET, changed by the enable, disable and rotate-secret routes only; accepted
      // here so that a GET's answer can be sent back as a PATCH.
      continue;
    } else {
      return Unknown(f);
    }
  }
  return Status::Ok();
}

Status ValidatePushConfig(const PushConfig& p) {
  if (p.url.rfind("http://", 0) != 0 && p.url.rfind("https://", 0) != 0) {
    return Bad("push.url", "must be an http:// or https:// URL");
  }
  if (p.url.size() > 2048) return Bad("push.url", "is longer than 2048 characters");
  if (p.headers.size() > kMaxPushHeaders) {
    return Bad("push.headers", "holds at most " + std::to_string(kMaxPushHeaders) + " headers");
  }
  for (const auto& [name, value] : p.headers) {
    if (name.empty() || name.find_first_of(" :\r\n\t") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return Bad("push.headers." + name, "is not a valid header");
    }
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower.rfind("webhook-", 0) == 0 || lower == "content-type" || lower == "content-length" ||
        lower == "host") {
      return Bad("push.headers." + name, "is set by redrive");
    }
  }
  if (p.timeout < 100 || p.timeout > kMaxPushTimeout) {
    return Bad("push.timeout", "must be between 100ms and 5m");
  }
  if (p.probe_interval < 100) return Bad("push.probeInterval", "must be at least 100ms");
  if (p.secrets.empty()) return Bad("push.secret", "is missing");
  return Status::Ok();
}

json PushToJson(const PushConfig& p, bool redact) {
  json headers = json::object();
  for (const auto& [name, value] : p.headers) headers[name] = value;
  json out{{"url", p.url},
           {"headers", headers},
           {"timeout", FormatDuration(p.timeout)},
           {"maxInFlight", p.max_in_flight},
           {"rateLimit", p.rate_limit},
           {"permanentCodes", p.permanent_codes},
           {"circuitFailures", p.circuit_failures},
           {"probeInterval", FormatDuration(p.probe_interval)},
           {"disableAfter", FormatDuration(p.disable_after)},
           {"autoRedriveOnRecovery",
            {{"enabled", p.auto_redrive},
             {"rate", p.auto_redrive_rate},
             {"canary", p.auto_redrive_canary}}},
           {"disabled", p.disabled},
           {"disabledReason", p.disabled_reason},
           {"disabledAt", p.disabled_at}};
  if (!p.ca_file.empty()) out["caFile"] = p.ca_file;
  json secrets = json::array();
  for (const auto& s : p.secrets) {
    if (redact) {
      // "whsec_" and four characters: enough to tell two secrets apart, not to sign.
      secrets.push_back({{"hint", s.secret.substr(0, 10) + "..."}, {"expiresAt", s.expires_at}});
    } else {
      secrets.push_back({{"secret", s.secret}, {"expiresAt", s.expires_at}});
    }
  }
  out[redact ? "secretHints" : "secrets"] = secrets;
  return out;
}

}  // namespace redrive::engine
