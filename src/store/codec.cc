#include "store/codec.h"

#include <nlohmann/json.hpp>
#include <sstream>

namespace redrive::store {

using nlohmann::json;

std::string EncodeAttributes(const Attributes& attributes) {
  if (attributes.empty()) return "";
  json j = json::object();
  for (const auto& [k, v] : attributes) j[k] = v;
  return j.dump();
}

Attributes DecodeAttributes(const std::string& text) {
  Attributes out;
  if (text.empty()) return out;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

std::string EncodeJournal(const Journal& journal) {
  if (journal.attempts.empty() && journal.omitted == 0) return "";
  json attempts = json::array();
  for (const auto& a : journal.attempts) {
    json e = {{"at", a.at},
              {"consumer", a.consumer},
              {"outcome", a.outcome},
              {"reason", a.reason},
              {"error", a.error}};
    if (a.status != 0) e["status"] = a.status;
    if (a.duration_ms != 0) e["durationMs"] = a.duration_ms;
    if (!a.response.empty()) e["response"] = a.response;
    attempts.push_back(std::move(e));
  }
  return json{{"attempts", attempts}, {"omitted", journal.omitted}}.dump();
}

Journal DecodeJournal(const std::string& text) {
  Journal out;
  if (text.empty()) return out;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return out;
  out.omitted = j.value("omitted", int64_t{0});
  auto it = j.find("attempts");
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& a : *it) {
    if (!a.is_object()) continue;
    Attempt at{a.value("at", TimeMs{0}), a.value("consumer", ""), a.value("outcome", ""),
               a.value("reason", ""), a.value("error", "")};
    at.status = a.value("status", 0);
    at.duration_ms = a.value("durationMs", int64_t{0});
    at.response = a.value("response", "");
    out.attempts.push_back(std::move(at));
  }
  return out;
}

std::string EncodeLineage(const Lineage& l) {
  if (l.redrive_count == 0 && l.original_queue.empty()) return "";
  return json{{"redriveCount", l.redrive_count},
              {"lastRedrivenAt", l.last_redriven_at},
              {"lastRedrivenBy", l.last_redriven_by},
              {"originalQueue", l.original_queue}}
      .dump();
}

Lineage DecodeLineage(const std::string& text) {
  Lineage l;
  if (text.empty()) return l;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return l;
  l.redrive_count = j.value("redriveCount", 0);
  l.last_redriven_at = j.value("lastRedrivenAt", TimeMs{0});
  l.last_redriven_by = j.value("lastRedrivenBy", "");
  l.original_queue = j.value("originalQueue", "");
  return l;
}

std::string JoinScopes(const std::vector<std::string>& scopes) {
  std::string out;
  for (const auto& s : scopes) {
    if (!out.empty()) out += ' ';
    out += s;
  }
  return out;
}

std::vector<std::string> SplitScopes(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string s;
  while (in >> s) out.push_back(s);
  return out;
}

}  // namespace redrive::store
