// Engine, tenancy: tenants with their quotas and deletion; tokens (expiry, rotation with an
// overlap, operator tokens, last use); the request-rate buckets; and the audit of every
// administrative change. Part of Engine (see engine.h for the contracts).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "common/text.h"
#include "engine/engine.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

// Rate and burst are kept well inside what a double counts exactly.
constexpr int64_t kMaxRequestRate = 1'000'000'000;

const Principal& SystemActor() {
  static const Principal kSystem{"system", "", {}};
  return kSystem;
}

Status TenantNotFound(const std::string& name) {
  return Status(ErrorCode::kTenantNotFound, "tenant '" + name + "' not found");
}

Status TokenNotFound(const std::string& id, bool operator_token) {
  return Status(ErrorCode::kTokenNotFound,
                "no active token '" + id + "' " +
                    (operator_token ? "among the operator tokens" : "in this tenant"));
}

struct QuotaField {
  const char* name;
  std::optional<int64_t> QuotaOverrides::*override;
  int64_t TenantQuotas::*quota;
};

constexpr QuotaField kQuotaFields[] = {
    {"maxQueues", &QuotaOverrides::max_queues, &TenantQuotas::max_queues},
    {"maxMessages", &QuotaOverrides::max_messages, &TenantQuotas::max_messages},
    {"maxBytes", &QuotaOverrides::max_bytes, &TenantQuotas::max_bytes},
    {"requestRate", &QuotaOverrides::request_rate, &TenantQuotas::request_rate},
    {"requestBurst", &QuotaOverrides::request_burst, &TenantQuotas::request_burst},
};

Status CheckQuotaValue(const char* name, int64_t v) {
  std::string_view n(name);
  int64_t max = (n == "requestRate" || n == "requestBurst") ? kMaxRequestRate : INT64_MAX;
  if (v < 0 || v > max) {
    return Status(ErrorCode::kInvalidArgument, "quota '" + std::string(name) +
                                                   "' must be an integer from 0 (unlimited) to " +
                                                   std::to_string(max));
  }
  return Status::Ok();
}

Status ValidateOverrides(const QuotaOverrides& o) {
  for (const auto& f : kQuotaFields) {
    if (const auto& v = o.*f.override) REDRIVE_RETURN_IF_ERROR(CheckQuotaValue(f.name, *v));
  }
  return Status::Ok();
}

TenantQuotas Effective(const TenantQuotas& defaults, const QuotaOverrides& o) {
  TenantQuotas q = defaults;
  for (const auto& f : kQuotaFields) {
    if (const auto& v = o.*f.override) q.*f.quota = *v;
  }
  return q;
}

Result<QuotaOverrides> ParseStoredOverrides(const std::string& tenant, const std::string& text) {
  QuotaOverrides o;
  if (text.empty()) return o;
  json j = json::parse(text, nullptr, false);
  Status st = j.is_object() ? ApplyQuotaOverridesJson(j, &o)
                            : Status(ErrorCode::kInvalidJson, "not an object");
  if (!st.ok()) {
    return Status(ErrorCode::kInternal,
                  "stored quotas of tenant " + tenant + " are unreadable: " + st.message());
  }
  return o;
}

json TokenDetail(const NewToken& t) {
  return {{"token", t.info.id},
          {"label", t.info.label},
          {"scopes", t.info.scopes},
          {"expiresAt", t.info.expires_at ? json(FormatTime(t.info.expires_at)) : json(nullptr)}};
}

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

// ------------------------------------------------------------------ quota JSON

json TenantQuotasToJson(const TenantQuotas& q) {
  json j = json::object();
  for (const auto& f : kQuotaFields) j[f.name] = q.*f.quota;
  return j;
}

json QuotaOverridesToJson(const QuotaOverrides& o) {
  json j = json::object();
  for (const auto& f : kQuotaFields) {
    if (const auto& v = o.*f.override) j[f.name] = *v;
  }
  return j;
}

Status ApplyQuotaOverridesJson(const json& j, QuotaOverrides* o) {
  if (!j.is_object()) return Status(ErrorCode::kInvalidArgument, "'quotas' must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const QuotaField* field = nullptr;
    for (const auto& f : kQuotaFields) {
      if (it.key() == f.name) field = &f;
    }
    if (!field) {
      return Status(ErrorCode::kUnknownField,
                    "unknown quota '" + it.key() +
                        "' (known: maxQueues, maxMessages, maxBytes, requestRate, requestBurst)");
    }
    if (it->is_null()) {
      (o->*field->override).reset();
      continue;
    }
    if (!it->is_number_integer()) {
      return Status(ErrorCode::kInvalidArgument,
                    "quota '" + it.key() + "' must be an integer (0 = unlimited) or null");
    }
    int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > uint64_t{INT64_MAX}
                    ? -1
                    : it->get<int64_t>();
    REDRIVE_RETURN_IF_ERROR(CheckQuotaValue(field->name, v));
    o->*field->override = v;
  }
  return Status::Ok();
}

json Engine::Changes(const json& before, const json& after) {
  json out = json::object();
  Diff(before, after, "", &out);
  return out;
}

// ------------------------------------------------------------------ tokens

NewToken Engine::MintToken(const std::string& tenant, const std::string& label,
                           const std::vector<std::string>& scopes, TimeMs expires_at) {
  TimeMs now = clock_.Now();
  NewToken t;
  t.info.id = "tok_" + NewUlid(now, random_);
  t.info.tenant = tenant;
  t.info.label = label;
  t.info.scopes = scopes;
  t.info.created_at = now;
  t.info.expires_at = expires_at;
  t.info.state = "active";
  t.secret = "rdt_" + HexEncode(random_.Bytes(24));
  return t;
}

namespace {
store::TokenRecord RecordOf(const NewToken& t) {
  store::TokenRecord r;
  r.id = t.info.id;
  r.tenant = t.info.tenant;
  r.label = t.info.label;
  r.secret_hash = Sha256Hex(t.secret);
  r.scopes = t.info.scopes;
  r.created_at = t.info.created_at;
  r.expires_at = t.info.expires_at;
  return r;
}
}  // namespace

Result<TimeMs> Engine::ExpiryOf(std::optional<DurationMs> expires_in) {
  if (!expires_in) return TimeMs{0};
  if (*expires_in < 1000 || *expires_in > kMaxTokenLifetime) {
    return Status(ErrorCode::kInvalidArgument,
                  "'expiresIn' must be between 1s and " + FormatDuration(kMaxTokenLifetime));
  }
  return clock_.Now() + *expires_in;
}

TokenInfo Engine::TokenInfoOf(const store::TokenRecord& r, TimeMs now) {
  TokenInfo t{r.id,         r.tenant,     r.label,        r.scopes,      r.created_at,
              r.revoked_at, r.expires_at, r.last_used_at, r.replaced_by, ""};
  if (r.revoked_at != 0) {
    t.state = "revoked";
  } else if (r.expires_at != 0 && r.expires_at <= now) {
    t.state = "expired";
  } else {
    t.state = "active";
  }
  return t;
}

namespace {
// Tokens in store order, with the last uses this node has not written yet.
std::vector<TokenInfo> WithPendingUse(std::vector<TokenInfo> tokens,
                                      const std::unordered_map<std::string, TimeMs>& pending) {
  for (auto& t : tokens) {
    auto it = pending.find(t.id);
    if (it != pending.end()) t.last_used_at = std::max(t.last_used_at, it->second);
  }
  return tokens;
}
}  // namespace

Result<std::vector<TokenInfo>> Engine::ListOperatorTokens() {
  REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListTokens(""));
  TimeMs now = clock_.Now();
  std::vector<TokenInfo> out;
  for (const auto& r : records) out.push_back(TokenInfoOf(r, now));
  std::lock_guard<std::mutex> l(cache_mu_);
  return WithPendingUse(std::move(out), token_last_used_);
}

Result<std::vector<TokenInfo>> Engine::ListTokens(const std::string& tenant) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListTokens(tenant));
  TimeMs now = clock_.Now();
  std::vector<TokenInfo> out;
  for (const auto& r : records) out.push_back(TokenInfoOf(r, now));
  std::lock_guard<std::mutex> l(cache_mu_);
  return WithPendingUse(std::move(out), token_last_used_);
}

void Engine::ForgetPrincipals(const std::string& tenant, const std::string& token_id) {
  std::lock_guard<std::mutex> l(cache_mu_);
  for (auto it = principals_.begin(); it != principals_.end();) {
    const Principal& p = it->second.principal;
    bool drop = token_id.empty() ? p.tenant == tenant : p.token_id == token_id;
    it = drop ? principals_.erase(it) : std::next(it);
  }
}

Result<NewToken> Engine::CreateToken(const Principal& actor, const std::string& tenant,
                                     const std::string& label,
                                     const std::vector<std::string>& scopes,
                                     std::optional<DurationMs> expires_in) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(ValidateName(label, "token label"));
  std::vector<std::string> chosen = scopes.empty() ? TenantScopes() : scopes;
  for (const auto& s : chosen) {
    const auto& all = TenantScopes();
    if (std::find(all.begin(), all.end(), s) == all.end()) {
      return Status(ErrorCode::kInvalidArgument, "unknown scope '" + s + "'");
    }
  }
  std::sort(chosen.begin(), chosen.end());
  chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  REDRIVE_ASSIGN_OR_RETURN(TimeMs expires_at, ExpiryOf(expires_in));
  NewToken t = MintToken(tenant, label, chosen, expires_at);
  REDRIVE_RETURN_IF_ERROR(control_.CreateToken(RecordOf(t)));
  Audit(tenant, actor.token_id, "token.create", TokenDetail(t));
  return t;
}

Result<NewToken> Engine::CreateToken(const std::string& tenant, const std::string& label,
                                     const std::vector<std::string>& scopes) {
  return CreateToken(SystemActor(), tenant, label, scopes);
}

Status Engine::RevokeToken(const Principal& actor, const std::string& tenant,
                           const std::string& token_id) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(bool revoked, control_.RevokeToken(tenant, token_id, clock_.Now()));
  if (!revoked) return TokenNotFound(token_id, false);
  // The revocation takes effect on this node at once.
  ForgetPrincipals(tenant, token_id);
  Audit(tenant, actor.token_id, "token.revoke", json{{"token", token_id}});
  return Status::Ok();
}

Status Engine::RevokeToken(const std::string& tenant, const std::string& token_id) {
  return RevokeToken(SystemActor(), tenant, token_id);
}

Result<NewToken> Engine::Rotate(const Principal& actor, const std::string& tenant,
                                const std::string& token_id, DurationMs overlap,
                                std::optional<DurationMs> expires_in) {
  bool operator_token = tenant.empty();
  if (overlap < 0 || overlap > kMaxRotationOverlap) {
    return Status(ErrorCode::kInvalidArgument,
                  "'overlap' must be between 0s and " + FormatDuration(kMaxRotationOverlap));
  }
  REDRIVE_ASSIGN_OR_RETURN(TimeMs expires_at, ExpiryOf(expires_in));
  REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListTokens(tenant));
  TimeMs now = clock_.Now();
  auto old = std::find_if(records.begin(), records.end(),
                          [&](const store::TokenRecord& r) { return r.id == token_id; });
  if (old == records.end() || TokenInfoOf(*old, now).state != "active") {
    return TokenNotFound(token_id, operator_token);
  }
  NewToken t = MintToken(tenant, old->label, old->scopes, expires_at);
  TimeMs old_until = now + overlap;
  if (old->expires_at != 0) old_until = std::min(old_until, old->expires_at);
  REDRIVE_ASSIGN_OR_RETURN(bool rotated,
                           control_.RotateToken(tenant, token_id, RecordOf(t), old_until, now));
  if (!rotated) return TokenNotFound(token_id, operator_token);
  // A cached principal carries the old expiry: drop it so the overlap ends on time.
  ForgetPrincipals(tenant, token_id);
  t.replaces = token_id;
  t.replaces_until = old_until;
  json detail = TokenDetail(t);
  detail["token"] = token_id;
  detail["replacement"] = t.info.id;
  detail["overlap"] = FormatDuration(overlap);
  detail["oldExpiresAt"] = FormatTime(old_until);
  Audit(tenant, actor.token_id, operator_token ? "operator-token.rotate" : "token.rotate",
        std::move(detail));
  return t;
}

Result<NewToken> Engine::RotateToken(const Principal& actor, const std::string& tenant,
                                     const std::string& token_id, DurationMs overlap,
                                     std::optional<DurationMs> expires_in) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  return Rotate(actor, tenant, token_id, overlap, expires_in);
}

Result<NewToken> Engine::CreateOperatorToken(const Principal& actor, const std::string& label,
                                             std::optional<DurationMs> expires_in) {
  REDRIVE_RETURN_IF_ERROR(ValidateName(label, "token label"));
  REDRIVE_ASSIGN_OR_RETURN(TimeMs expires_at, ExpiryOf(expires_in));
  NewToken t = MintToken("", label, {kScopeOperator}, expires_at);
  REDRIVE_RETURN_IF_ERROR(control_.CreateToken(RecordOf(t)));
  Audit("", actor.token_id, "operator-token.create", TokenDetail(t));
  return t;
}

Result<NewToken> Engine::CreateOperatorToken(const std::string& label) {
  return CreateOperatorToken(SystemActor(), label);
}

Status Engine::RevokeOperatorToken(const Principal& actor, const std::string& token_id) {
  REDRIVE_ASSIGN_OR_RETURN(auto outcome, control_.RevokeOperatorToken(token_id, clock_.Now()));
  switch (outcome) {
    case store::RevokeOutcome::kNotActive:
      return TokenNotFound(token_id, true);
    case store::RevokeOutcome::kLastActive:
      return Status(
          ErrorCode::kLastOperatorToken,
          "'" + token_id + "' is the last active operator token: create or rotate another first");
    case store::RevokeOutcome::kRevoked:
      break;
  }
  ForgetPrincipals("", token_id);
  Audit("", actor.token_id, "operator-token.revoke", json{{"token", token_id}});
  return Status::Ok();
}

Result<NewToken> Engine::RotateOperatorToken(const Principal& actor, const std::string& token_id,
                                             DurationMs overlap,
                                             std::optional<DurationMs> expires_in) {
  return Rotate(actor, "", token_id, overlap, expires_in);
}

void Engine::FlushTokenUse(bool force) {
  TimeMs now = clock_.Now();
  if (!force && now - token_use_flushed_at_ < options_.token_use_flush) return;
  token_use_flushed_at_ = now;
  std::unordered_map<std::string, TimeMs> pending;
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    pending.swap(token_last_used_);
  }
  if (pending.empty()) return;
  std::vector<std::pair<std::string, TimeMs>> rows(pending.begin(), pending.end());
  Status st = control_.TouchTokens(rows);
  // Best effort: a lost last-use time is not worth failing anything for.
  if (!st.ok()) spdlog::warn("recording the last use of {} tokens: {}", rows.size(), st.ToString());
}

// ------------------------------------------------------------------ tenants

Result<TenantInfo> Engine::CreateTenant(const Principal& actor, const std::string& name,
                                        const QuotaOverrides& quotas) {
  REDRIVE_RETURN_IF_ERROR(ValidateName(name, "tenant"));
  REDRIVE_RETURN_IF_ERROR(ValidateOverrides(quotas));
  TenantInfo info;
  info.name = name;
  info.created_at = clock_.Now();
  info.overrides = quotas;
  json overrides = QuotaOverridesToJson(quotas);
  store::TenantRecord rec{name, info.created_at, overrides.empty() ? "" : overrides.dump(), false};
  Status st = control_.CreateTenant(rec);
  if (st.code() == ErrorCode::kAlreadyExists) {
    return Status(ErrorCode::kAlreadyExists,
                  "tenant '" + name + "' already exists (or is still being deleted)");
  }
  REDRIVE_RETURN_IF_ERROR(st);
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    quota_overrides_.erase(name);
  }
  Audit("", actor.token_id, "tenant.create", json{{"tenant", name}, {"quotas", overrides}});
  return info;
}

Result<TenantInfo> Engine::CreateTenant(const std::string& name) {
  return CreateTenant(SystemActor(), name);
}

Result<std::vector<TenantInfo>> Engine::ListTenants() {
  REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListTenants());
  std::vector<TenantInfo> out;
  for (const auto& r : records) {
    TenantInfo t;
    t.name = r.name;
    t.created_at = r.created_at;
    t.deleting = r.deleting;
    REDRIVE_ASSIGN_OR_RETURN(t.overrides, ParseStoredOverrides(r.name, r.quotas_json));
    t.quotas = Effective(options_.default_quotas, t.overrides);
    out.push_back(std::move(t));
  }
  return out;
}

Result<TenantInfo> Engine::GetTenant(const std::string& name) {
  REDRIVE_ASSIGN_OR_RETURN(auto r, control_.GetTenant(name));
  if (!r || r->deleting) return TenantNotFound(name);
  TenantInfo t;
  t.name = r->name;
  t.created_at = r->created_at;
  REDRIVE_ASSIGN_OR_RETURN(t.overrides, ParseStoredOverrides(name, r->quotas_json));
  t.quotas = Effective(options_.default_quotas, t.overrides);
  REDRIVE_ASSIGN_OR_RETURN(t.usage, control_.GetTenantUsage(name));
  return t;
}

Result<QuotaOverrides> Engine::OverridesOf(const std::string& tenant) {
  TimeMs now = clock_.Now();
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    auto it = quota_overrides_.find(tenant);
    if (it != quota_overrides_.end() && now - it->second.fetched_at < options_.token_cache_ttl) {
      return it->second.overrides;
    }
  }
  REDRIVE_ASSIGN_OR_RETURN(auto r, control_.GetTenant(tenant));
  if (!r || r->deleting) return TenantNotFound(tenant);
  REDRIVE_ASSIGN_OR_RETURN(auto overrides, ParseStoredOverrides(tenant, r->quotas_json));
  std::lock_guard<std::mutex> l(cache_mu_);
  if (quota_overrides_.size() > 10'000) quota_overrides_.clear();
  quota_overrides_[tenant] = CachedOverrides{overrides, now};
  return overrides;
}

Result<TenantQuotas> Engine::QuotasOf(const std::string& tenant) {
  REDRIVE_ASSIGN_OR_RETURN(auto overrides, OverridesOf(tenant));
  return Effective(options_.default_quotas, overrides);
}

Result<TenantInfo> Engine::SetTenantQuotas(const Principal& actor, const std::string& name,
                                           const QuotaOverrides& overrides) {
  REDRIVE_RETURN_IF_ERROR(ValidateOverrides(overrides));
  REDRIVE_ASSIGN_OR_RETURN(TenantInfo before, GetTenant(name));
  json after = QuotaOverridesToJson(overrides);
  REDRIVE_ASSIGN_OR_RETURN(bool set,
                           control_.SetTenantQuotas(name, after.empty() ? "" : after.dump()));
  if (!set) return TenantNotFound(name);
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    quota_overrides_.erase(name);
  }
  {
    // A new rate or burst starts from a full bucket.
    std::lock_guard<std::mutex> l(rate_mu_);
    rate_buckets_.erase(name);
  }
  TenantQuotas effective = Effective(options_.default_quotas, overrides);
  json changed = Changes(TenantQuotasToJson(before.quotas), TenantQuotasToJson(effective));
  json detail = {{"tenant", name}, {"overrides", after}, {"changed", changed}};
  // Server-wide, and in the tenant's own log, so its admins see why limits moved.
  Audit("", actor.token_id, "tenant.quotas", detail);
  Audit(name, actor.token_id, "tenant.quotas", detail);
  return GetTenant(name);
}

Status Engine::DeleteTenant(const Principal& actor, const std::string& name, bool force) {
  REDRIVE_ASSIGN_OR_RETURN(auto r, control_.GetTenant(name));
  if (!r) return TenantNotFound(name);
  REDRIVE_ASSIGN_OR_RETURN(auto usage, control_.GetTenantUsage(name));
  auto forget = [&] {
    {
      std::lock_guard<std::mutex> l(cache_mu_);
      tenants_.erase(name);
      quota_overrides_.erase(name);
      std::string prefix = name + "/";
      for (auto it = queues_.begin(); it != queues_.end();) {
        it = it->first.compare(0, prefix.size(), prefix) == 0 ? queues_.erase(it) : std::next(it);
      }
    }
    ForgetPrincipals(name, "");
    std::lock_guard<std::mutex> l(rate_mu_);
    rate_buckets_.erase(name);
  };
  // Before (so no request of this node starts on it) and after (what started meanwhile).
  forget();
  REDRIVE_ASSIGN_OR_RETURN(auto outcome, control_.DeleteTenant(name, !force));
  forget();
  switch (outcome) {
    case store::DeleteTenantOutcome::kNotFound:
      return TenantNotFound(name);
    case store::DeleteTenantOutcome::kNotEmpty: {
      REDRIVE_ASSIGN_OR_RETURN(auto queues, control_.ListQueues(name));
      return Status(ErrorCode::kTenantNotEmpty,
                    "tenant '" + name + "' still has " + std::to_string(queues.size()) +
                        " queues (dead-letter queues included): delete them first, or pass "
                        "force=true to delete the tenant with everything it holds");
    }
    case store::DeleteTenantOutcome::kDeleted:
      break;
  }
  spdlog::warn("deleted tenant {} with {} queues and {} messages (token {})", name, usage.queues,
               usage.messages, actor.token_id);
  Audit("", actor.token_id, "tenant.delete",
        json{{"tenant", name},
             {"force", force},
             {"removed",
              {{"queues", usage.queues}, {"messages", usage.messages}, {"bytes", usage.bytes}}}});
  return Status::Ok();
}

// ------------------------------------------------------------------ request rate

Status Engine::AdmitRequest(const Principal& p, const std::string& tenant,
                            DurationMs* retry_after) {
  if (p.HasScope(kScopeOperator) || tenant.empty()) return Status::Ok();
  REDRIVE_ASSIGN_OR_RETURN(TenantQuotas q, QuotasOf(tenant));
  if (q.request_rate <= 0) return Status::Ok();
  double rate = static_cast<double>(q.request_rate);
  double burst = static_cast<double>(
      std::max<int64_t>(1, q.request_burst > 0 ? q.request_burst : q.request_rate));
  TimeMs now = clock_.Now();
  std::lock_guard<std::mutex> l(rate_mu_);
  auto [it, fresh] = rate_buckets_.try_emplace(tenant, RateBucket{burst, now});
  RateBucket& b = it->second;
  if (!fresh && now > b.at) {
    b.tokens = std::min(burst, b.tokens + static_cast<double>(now - b.at) * rate / 1000.0);
    b.at = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return Status::Ok();
  }
  // Less a hair, so that rounding (0.998 tokens at 2/s) does not add a millisecond.
  DurationMs wait = static_cast<DurationMs>(std::ceil((1.0 - b.tokens) * 1000.0 / rate - 1e-6));
  *retry_after = std::max<DurationMs>(1, wait);
  return Status(ErrorCode::kRateLimited, "tenant " + tenant + " is over its request rate of " +
                                             std::to_string(q.request_rate) +
                                             " per second (burst " +
                                             std::to_string(static_cast<int64_t>(burst)) +
                                             "); retry in " + FormatDuration(*retry_after));
}

// ------------------------------------------------------------------ queues and audit

Result<QueueInfo> Engine::CreateQueue(const std::string& tenant, const std::string& name,
                                      const QueueConfig& config) {
  return CreateQueue(SystemActor(), tenant, name, config);
}

Result<QueueInfo> Engine::UpdateQueue(const std::string& tenant, const std::string& name,
                                      const QueueConfig& config) {
  return UpdateQueue(SystemActor(), tenant, name, config);
}

Status Engine::DeleteQueue(const std::string& tenant, const std::string& name) {
  return DeleteQueue(SystemActor(), tenant, name);
}

Result<AuditQueryResult> Engine::QueryServerAudit(const AuditQuery& query) {
  return ReadAudit("", query);
}

}  // namespace redrive::engine
