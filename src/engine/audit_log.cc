#include "engine/audit_log.h"

#include <spdlog/spdlog.h>

#include "common/text.h"
#include "engine/internal/cookie.h"
#include "query/filter.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

void Diff(const json& before, const json& after, const std::string& path, json* out) {
  if (before.is_object() && after.is_object()) {
    for (auto it = before.begin(); it != before.end(); ++it) {
      auto other = after.find(it.key());
      Diff(*it, other == after.end() ? json(nullptr) : *other, path + "/" + it.key(), out);
    }
    for (auto it = after.begin(); it != after.end(); ++it) {
      if (!before.contains(it.key())) Diff(json(nullptr), *it, path + "/" + it.key(), out);
    }
    return;
  }
  if (before != after) (*out)[path.empty() ? "/" : path] = {{"from", before}, {"to", after}};
}

}  // namespace

AuditLog::AuditLog(store::ControlStore& control, Clock& clock) : control_(control), clock_(clock) {}

void AuditLog::Write(const std::string& tenant, const std::string& actor, const std::string& action,
                     json detail) {
  store::AuditRecord r{0, tenant, clock_.Now(), actor, action, detail.dump()};
  Status st = control_.AppendAudit(r);
  if (!st.ok()) spdlog::error("audit {} {}: {}", tenant, action, st.ToString());
  if (observer_) observer_(r);
}

json AuditLog::Changes(const json& before, const json& after) {
  json out = json::object();
  Diff(before, after, "", &out);
  return out;
}

Result<AuditQueryResult> AuditLog::Read(const std::string& tenant, const AuditQuery& q) {
  if (q.page_size < 1 || q.page_size > 1000) {
    return Status(ErrorCode::kInvalidQuery, "_pageSize must be between 1 and 1000");
  }
  std::unique_ptr<query::Expr> filter;
  if (!q.filter.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(filter, query::ParseFilter(q.filter));
  }
  int64_t after = 0, unused = 0;
  if (!q.cookie.empty() && !DecodeCookie(q.cookie, "a", &after, &unused)) return BadCookie();
  AuditQueryResult result;
  int64_t last_returned = after;
  for (;;) {
    REDRIVE_ASSIGN_OR_RETURN(auto rows, control_.ListAudit(tenant, after, 500));
    if (rows.empty()) break;
    for (const auto& r : rows) {
      after = r.seq;
      json doc = {{"id", std::to_string(r.seq)},
                  {"at", FormatTime(r.at)},
                  {"actor", r.actor},
                  {"action", r.action},
                  {"detail", json::parse(r.detail_json, nullptr, false)}};
      if (filter && !query::Evaluate(*filter, doc)) continue;
      if (static_cast<int>(result.items.size()) == q.page_size) {
        result.next_cookie = EncodeCookie("a", last_returned, 0);
        return result;
      }
      result.items.push_back(std::move(doc));
      last_returned = r.seq;
    }
  }
  return result;
}

}  // namespace redrive::engine
