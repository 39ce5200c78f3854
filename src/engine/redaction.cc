#include "engine/redaction.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "common/text.h"
#include "engine/internal/config_fields.h"
#include "engine/queues.h"

namespace redrive::engine {
namespace {

using internal::Bad;
using nlohmann::json;

constexpr char kKeyName[] = "redaction";
constexpr size_t kKeyBytes = 32;

// RFC 6901: "" or "/" followed by reference tokens, where "~" is only ever "~0" or "~1". The
// whole document ("") is not a field, so a rule must name one.
bool IsJsonPointer(const std::string& p) {
  if (p.empty() || p[0] != '/') return false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '~' && (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1'))) return false;
  }
  return IsValidUtf8(p);
}

Status ReadNames(const json& v, const std::string& field, bool pointers,
                 std::vector<std::string>* out) {
  if (!v.is_array()) return Bad(field, "must be a list of strings");
  if (v.size() > kMaxRedactionRules) {
    return Bad(field, "must have at most " + std::to_string(kMaxRedactionRules) + " entries");
  }
  std::vector<std::string> names;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (!v[i].is_string()) return Bad(at, "must be a string");
    const std::string& s = v[i].get_ref<const std::string&>();
    if (pointers) {
      if (s.size() > kMaxRedactionPointer) {
        return Bad(at, "must be at most " + std::to_string(kMaxRedactionPointer) + " characters");
      }
      if (!IsJsonPointer(s)) {
        return Bad(at, "must be a JSON pointer (RFC 6901) such as \"/customer/email\"");
      }
    } else if (s.empty()) {
      return Bad(at, "must be an attribute name");
    }
    if (std::find(names.begin(), names.end(), s) == names.end()) names.push_back(s);
  }
  *out = std::move(names);
  return Status::Ok();
}

std::string HashOf(std::string_view key, std::string_view text) {
  return kRedactionHashPrefix + HmacSha256Hex(key, text).substr(0, kRedactionHashDigits);
}

// The marker of one value, and its text (what ScrubText looks for).
std::string MarkerOf(RedactionMode mode, std::string_view key, const std::string& text) {
  return mode == RedactionMode::kMask ? std::string(kRedactionMask) : HashOf(key, text);
}

void Note(Replacements* out, std::string text, std::string marker) {
  if (text.size() < kMinScrubbedLength || IsRedactedValue(text)) return;
  for (const auto& [t, m] : *out) {
    if (t == text) return;
  }
  out->emplace_back(std::move(text), std::move(marker));
}

// Replaces the value `v` (not already a marker) and notes it. A container's scalar leaves are
// noted one by one, so each is scrubbed from text on its own.
void NoteLeaves(const json& v, RedactionMode mode, std::string_view key, Replacements* out) {
  if (v.is_structured()) {
    for (const auto& c : v) NoteLeaves(c, mode, key, out);
    return;
  }
  std::string text = v.is_string() ? v.get<std::string>() : v.dump();
  Note(out, text, MarkerOf(mode, key, text));
}

}  // namespace

bool IsRedactedValue(std::string_view v) {
  if (v == kRedactionMask) return true;
  const std::string_view prefix = kRedactionHashPrefix;
  if (v.size() != prefix.size() + kRedactionHashDigits || v.substr(0, prefix.size()) != prefix) {
    return false;
  }
  return std::all_of(v.begin() + static_cast<std::ptrdiff_t>(prefix.size()), v.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Status ApplyRedactionJson(const json& j, RedactionRules* r) {
  if (j.is_null()) {
    *r = RedactionRules();
    return Status::Ok();
  }
  if (!j.is_object()) return Bad("redaction", "must be an object, or null to remove the rules");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const std::string f = "redaction." + k;
    if (k == "pointers") {
      REDRIVE_RETURN_IF_ERROR(ReadNames(*it, f, true, &r->pointers));
    } else if (k == "attributes") {
      REDRIVE_RETURN_IF_ERROR(ReadNames(*it, f, false, &r->attributes));
    } else if (k == "mode") {
      std::string v = it->is_string() ? it->get<std::string>() : "";
      if (v == "mask") {
        r->mode = RedactionMode::kMask;
      } else if (v == "hash") {
        r->mode = RedactionMode::kHash;
      } else {
        return Bad(f, "must be \"mask\" or \"hash\"");
      }
    } else if (k == "storeRedacted") {
      if (!it->is_boolean()) return Bad(f, "must be true or false");
      r->store_redacted = it->get<bool>();
    } else {
      return internal::Unknown(f);
    }
  }
  if (r->store_redacted && r->empty()) {
    return Bad("redaction.storeRedacted", "needs at least one pointer or attribute to redact");
  }
  return Status::Ok();
}

json RedactionToJson(const RedactionRules& r) {
  return {{"pointers", r.pointers},
          {"attributes", r.attributes},
          {"mode", r.mode == RedactionMode::kMask ? "mask" : "hash"},
          {"storeRedacted", r.store_redacted}};
}

Replacements RedactMessage(const RedactionRules& rules, std::string_view key, std::string* body,
                           store::Attributes* attributes) {
  Replacements out;
  if (!rules.pointers.empty() && !body->empty() && !IsRedactedValue(*body)) {
    json doc = json::parse(*body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      // Pointers cannot reach into it: the whole body goes.
      std::string marker = MarkerOf(rules.mode, key, *body);
      Note(&out, *body, marker);
      *body = std::move(marker);
    } else {
      bool changed = false;
      for (const auto& p : rules.pointers) {
        json::json_pointer ptr(p);  // validated when the rules were read
        json* v = nullptr;
        try {
          if (doc.contains(ptr)) v = &doc.at(ptr);
        } catch (const json::exception&) {
          v = nullptr;  // a token that cannot index the array there: nothing to redact
        }
        if (v == nullptr || (v->is_string() && IsRedactedValue(v->get_ref<const std::string&>()))) {
          continue;
        }
        NoteLeaves(*v, rules.mode, key, &out);
        std::string text = v->is_string() ? v->get<std::string>() : v->dump();
        *v = MarkerOf(rules.mode, key, text);
        changed = true;
      }
      if (changed) *body = doc.dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  for (const auto& name : rules.attributes) {
    auto it = attributes->find(name);
    if (it == attributes->end() || IsRedactedValue(it->second)) continue;
    std::string marker = MarkerOf(rules.mode, key, it->second);
    Note(&out, it->second, marker);
    it->second = std::move(marker);
  }
  // Longest first: a value that contains another is replaced whole.
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return out;
}

void ScrubText(const Replacements& replaced, std::string* text) {
  for (const auto& [value, marker] : replaced) {
    for (size_t at = text->find(value); at != std::string::npos;
         at = text->find(value, at + marker.size())) {
      text->replace(at, value.size(), marker);
    }
  }
}

void ScrubJournal(const Replacements& replaced, store::Journal* journal) {
  if (replaced.empty()) return;
  for (auto& a : journal->attempts) {
    ScrubText(replaced, &a.reason);
    ScrubText(replaced, &a.error);
    ScrubText(replaced, &a.response);
  }
}

void RedactDeadLetter(const RedactionRules& rules, std::string_view key,
                      store::DeadLetterRecord* d) {
  Replacements replaced = RedactMessage(rules, key, &d->body, &d->attributes);
  if (replaced.empty()) return;
  ScrubText(replaced, &d->cause);
  ScrubText(replaced, &d->signature);
  ScrubText(replaced, &d->redrive_error);
  ScrubJournal(replaced, &d->journal);
}

// ------------------------------------------------------------------ Redactor

Redactor::Redactor(store::ControlStore& control, Random& random, Queues& queues,
                   Coordinator& coordinator)
    : control_(control), random_(random), queues_(queues), coordinator_(coordinator) {
  coordinator_.Subscribe(this);
}

Redactor::~Redactor() { coordinator_.Unsubscribe(this); }

void Redactor::OnInvalidate(CacheScope scope, const std::string& key) {
  if (scope != CacheScope::kTenant && scope != CacheScope::kAll) return;
  std::lock_guard<std::mutex> l(mu_);
  if (scope == CacheScope::kAll) {
    keys_.clear();
  } else {
    keys_.erase(key);
  }
}

Result<std::string> Redactor::KeyOf(const std::string& tenant) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = keys_.find(tenant);
    if (it != keys_.end()) return it->second;
  }
  REDRIVE_ASSIGN_OR_RETURN(
      std::string key,
      control_.TenantSecret(tenant, kKeyName, HexEncode(random_.Bytes(kKeyBytes))));
  if (key.empty()) return Status(ErrorCode::kInternal, "the tenant's redaction key is missing");
  std::lock_guard<std::mutex> l(mu_);
  keys_[tenant] = key;
  return key;
}

Status Redactor::RedactDeadLetter(store::DeadLetterRecord* d) {
  auto q = queues_.Lookup(d->tenant, d->origin);
  if (!q.ok()) {
    // The origin is gone (its rules with it), or a topic's no-route dead letter (no rules).
    return q.status().code() == ErrorCode::kQueueNotFound ? Status::Ok() : q.status();
  }
  const RedactionRules& rules = q.value()->config.redaction;
  if (rules.empty()) return Status::Ok();
  std::string key;
  if (rules.mode == RedactionMode::kHash) {
    REDRIVE_ASSIGN_OR_RETURN(key, KeyOf(d->tenant));
  }
  engine::RedactDeadLetter(rules, key, d);
  return Status::Ok();
}

Status Redactor::RedactTopicEvent(const std::string& tenant, const std::string& topic,
                                  std::string* body, store::Attributes* attributes) {
  REDRIVE_ASSIGN_OR_RETURN(auto subs, queues_.SubscriptionsOf(tenant, topic));
  RedactionRules all;
  all.mode = RedactionMode::kHash;
  bool any = false;
  for (const auto& s : *subs) {
    const RedactionRules& r = s->config.redaction;
    if (r.empty()) continue;
    any = true;
    if (r.mode == RedactionMode::kMask) all.mode = RedactionMode::kMask;
    for (const auto& p : r.pointers) {
      if (std::find(all.pointers.begin(), all.pointers.end(), p) == all.pointers.end()) {
        all.pointers.push_back(p);
      }
    }
    for (const auto& a : r.attributes) {
      if (std::find(all.attributes.begin(), all.attributes.end(), a) == all.attributes.end()) {
        all.attributes.push_back(a);
      }
    }
  }
  if (!any) return Status::Ok();
  std::string key;
  if (all.mode == RedactionMode::kHash) {
    REDRIVE_ASSIGN_OR_RETURN(key, KeyOf(tenant));
  }
  RedactMessage(all, key, body, attributes);
  return Status::Ok();
}

RedactionRules Redactor::Effective(const RedactionRules& rules, const std::string& tenant,
                                   std::string* key) {
  RedactionRules effective = rules;
  if (rules.mode != RedactionMode::kHash) return effective;
  auto k = KeyOf(tenant);
  if (k.ok()) {
    *key = std::move(k).value();
  } else {
    spdlog::warn("redaction: the key of tenant {} cannot be read ({}); masking instead", tenant,
                 k.status().ToString());
    effective.mode = RedactionMode::kMask;
  }
  return effective;
}

store::DeadLetterRedaction Redactor::StoreRedaction(const CachedQueue& q) {
  if (!q.config.redaction.store_redacted || q.config.redaction.empty()) return {};
  std::string key;
  RedactionRules rules = Effective(q.config.redaction, q.record.tenant, &key);
  return [rules, key](std::string& body, store::Attributes& attributes, store::Journal& journal) {
    ScrubJournal(RedactMessage(rules, key, &body, &attributes), &journal);
  };
}

bool Redactor::HasRules(const std::string& tenant, const std::string& origin) {
  auto q = queues_.Lookup(tenant, origin);
  return q.ok() && !q.value()->config.redaction.empty();
}

Replacements Redactor::ValuesOf(const CachedQueue& q, const store::MessageRecord& msg) {
  if (q.config.redaction.empty()) return {};
  std::string key;
  RedactionRules effective = Effective(q.config.redaction, q.record.tenant, &key);
  std::string body = msg.body;
  store::Attributes attributes = msg.attributes;
  return RedactMessage(effective, key, &body, &attributes);
}

}  // namespace redrive::engine
