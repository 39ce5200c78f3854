// Tenancy: tenants with their quotas and deletion; tokens (expiry, rotation with an overlap,
// operator tokens, last use); authentication; the request-rate buckets (tenancy.h).
#include "engine/tenancy.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "common/text.h"
#include "engine/audit_log.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

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

}  // namespace

Tenancy::Tenancy(store::ControlStore& control, Clock& clock, Random& random,
                 const EngineOptions& options, Coordinator& coordinator, AuditLog& audit)
    : control_(control),
      clock_(clock),
      random_(random),
      options_(options),
      coordinator_(coordinator),
      audit_(audit) {
  coordinator_.Subscribe(this);
}

Tenancy::~Tenancy() { coordinator_.Unsubscribe(this); }

const Principal& Tenancy::System() { return SystemActor(); }

// ------------------------------------------------------------------ auth

Result<Principal> Tenancy::Authenticate(std::string_view bearer) {
  if (bearer.empty() || bearer.size() > 256) {
    return Status(ErrorCode::kUnauthenticated, "a bearer token is required");
  }
  std::string hash = Sha256Hex(bearer);
  TimeMs now = clock_.Now();
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    auto it = principals_.find(hash);
    // An expiry is exact even while the principal is cached (a rotation's overlap ends on
    // time); a revocation elsewhere takes at most token_cache_ttl.
    if (it != principals_.end() && now - it->second.fetched_at < options_.token_cache_ttl &&
        (it->second.expires_at == 0 || now < it->second.expires_at)) {
      token_last_used_[it->second.principal.token_id] = now;
      return it->second.principal;
    }
  }
  REDRIVE_ASSIGN_OR_RETURN(auto record, control_.FindTokenByHash(hash));
  if (!record || record->revoked_at != 0 ||
      (record->expires_at != 0 && record->expires_at <= now)) {
    std::lock_guard<std::mutex> l(cache_mu_);
    principals_.erase(hash);
    return Status(ErrorCode::kUnauthenticated, "the token is unknown, revoked or expired");
  }
  Principal p{record->id, record->tenant, record->scopes};
  std::lock_guard<std::mutex> l(cache_mu_);
  if (principals_.size() > 10'000) principals_.clear();
  principals_[hash] = CachedPrincipal{p, now, record->expires_at};
  token_last_used_[p.token_id] = now;
  return p;
}

Status Tenancy::Authorize(const Principal& p, const std::string& tenant, std::string_view scope) {
  if (p.HasScope(kScopeOperator)) {
    if (tenant.empty()) return Status::Ok();
    return EnsureTenant(tenant);
  }
  // Server-wide routes (no tenant in the path) are for operators only.
  if (tenant.empty()) {
    return Status(ErrorCode::kForbidden, "this route needs an operator token");
  }
  // A tenant token never learns whether another tenant exists.
  if (p.tenant != tenant) return TenantNotFound(tenant);
  if (!p.HasScope(scope)) {
    return Status(ErrorCode::kForbidden, "this token lacks the '" + std::string(scope) + "' scope");
  }
  return Status::Ok();
}

Status Tenancy::EnsureTenant(const std::string& tenant) {
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    if (tenants_.count(tenant)) return Status::Ok();
  }
  REDRIVE_ASSIGN_OR_RETURN(auto t, control_.GetTenant(tenant));
  // A tenant being deleted is gone for every caller.
  if (!t || t->deleting) return TenantNotFound(tenant);
  std::lock_guard<std::mutex> l(cache_mu_);
  tenants_[tenant] = true;
  return Status::Ok();
}

// ------------------------------------------------------------------ tokens

NewToken Tenancy::MintToken(const std::string& tenant, const std::string& label,
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

Result<TimeMs> Tenancy::ExpiryOf(std::optional<DurationMs> expires_in) {
  if (!expires_in) return TimeMs{0};
  if (*expires_in < 1000 || *expires_in > kMaxTokenLifetime) {
    return Status(ErrorCode::kInvalidArgument,
                  "'expiresIn' must be between 1s and " + FormatDuration(kMaxTokenLifetime));
  }
  return clock_.Now() + *expires_in;
}

TokenInfo Tenancy::TokenInfoOf(const store::TokenRecord& r, TimeMs now) {
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

Result<std::vector<TokenInfo>> Tenancy::ListOperatorTokens() {
  REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListTokens(""));
  TimeMs now = clock_.Now();
  std::vector<TokenInfo> out;
  for (const auto& r : records) out.push_back(TokenInfoOf(r, now));
  std::lock_guard<std::mutex> l(cache_mu_);
  return WithPendingUse(std::move(out), token_last_used_);
}

Result<std::vector<TokenInfo>> Tenancy::ListTokens(const std::string& tenant) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListTokens(tenant));
  TimeMs now = clock_.Now();
  std::vector<TokenInfo> out;
  for (const auto& r : records) out.push_back(TokenInfoOf(r, now));
  std::lock_guard<std::mutex> l(cache_mu_);
  return WithPendingUse(std::move(out), token_last_used_);
}

void Tenancy::ForgetPrincipals(const std::string& tenant, const std::string& token_id) {
  std::lock_guard<std::mutex> l(cache_mu_);
  for (auto it = principals_.begin(); it != principals_.end();) {
    const Principal& p = it->second.principal;
    bool drop = token_id.empty() ? p.tenant == tenant : p.token_id == token_id;
    it = drop ? principals_.erase(it) : std::next(it);
  }
}

void Tenancy::ForgetTenant(const std::string& tenant) {
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    tenants_.erase(tenant);
    quota_overrides_.erase(tenant);
  }
  ForgetPrincipals(tenant, "");
  std::lock_guard<std::mutex> l(rate_mu_);
  rate_buckets_.erase(tenant);
}

void Tenancy::OnInvalidate(CacheScope scope, const std::string& key) {
  switch (scope) {
    case CacheScope::kTenant:
      ForgetTenant(key);
      break;
    case CacheScope::kToken:
      ForgetPrincipals("", key);
      break;
    case CacheScope::kAll: {
      std::lock_guard<std::mutex> l(cache_mu_);
      tenants_.clear();
      quota_overrides_.clear();
      principals_.clear();
      break;
    }
    case CacheScope::kQueue:
      break;
  }
}

Result<NewToken> Tenancy::CreateToken(const Principal& actor, const std::string& tenant,
                                      const std::string& label,
                                      const std::vector<std::string>& scopes,
                                      std::optional<DurationMs> expires_in) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(ValidateName(label, "token label"));
  std::vector<std::string> chosen = scopes.empty() ? DefaultTenantScopes() : scopes;
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
  audit_.Write(tenant, actor.token_id, "token.create", TokenDetail(t));
  return t;
}

Result<NewToken> Tenancy::CreateToken(const std::string& tenant, const std::string& label,
                                      const std::vector<std::string>& scopes) {
  return CreateToken(SystemActor(), tenant, label, scopes);
}

Status Tenancy::RevokeToken(const Principal& actor, const std::string& tenant,
                            const std::string& token_id) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(bool revoked, control_.RevokeToken(tenant, token_id, clock_.Now()));
  if (!revoked) return TokenNotFound(token_id, false);
  // The revocation takes effect on this node at once, on the others when they hear it.
  coordinator_.Invalidate(CacheScope::kToken, token_id);
  audit_.Write(tenant, actor.token_id, "token.revoke", json{{"token", token_id}});
  return Status::Ok();
}

Status Tenancy::RevokeToken(const std::string& tenant, const std::string& token_id) {
  return RevokeToken(SystemActor(), tenant, token_id);
}

Result<NewToken> Tenancy::Rotate(const Principal& actor, const std::string& tenant,
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
  coordinator_.Invalidate(CacheScope::kToken, token_id);
  t.replaces = token_id;
  t.replaces_until = old_until;
  json detail = TokenDetail(t);
  detail["token"] = token_id;
  detail["replacement"] = t.info.id;
  detail["overlap"] = FormatDuration(overlap);
  detail["oldExpiresAt"] = FormatTime(old_until);
  audit_.Write(tenant, actor.token_id, operator_token ? "operator-token.rotate" : "token.rotate",
               std::move(detail));
  return t;
}

Result<NewToken> Tenancy::RotateToken(const Principal& actor, const std::string& tenant,
                                      const std::string& token_id, DurationMs overlap,
                                      std::optional<DurationMs> expires_in) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  return Rotate(actor, tenant, token_id, overlap, expires_in);
}

Result<NewToken> Tenancy::CreateOperatorToken(const Principal& actor, const std::string& label,
                                              std::optional<DurationMs> expires_in) {
  REDRIVE_RETURN_IF_ERROR(ValidateName(label, "token label"));
  REDRIVE_ASSIGN_OR_RETURN(TimeMs expires_at, ExpiryOf(expires_in));
  NewToken t = MintToken("", label, {kScopeOperator}, expires_at);
  REDRIVE_RETURN_IF_ERROR(control_.CreateToken(RecordOf(t)));
  audit_.Write("", actor.token_id, "operator-token.create", TokenDetail(t));
  return t;
}

Result<NewToken> Tenancy::CreateOperatorToken(const std::string& label) {
  return CreateOperatorToken(SystemActor(), label);
}

Status Tenancy::RevokeOperatorToken(const Principal& actor, const std::string& token_id) {
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
  coordinator_.Invalidate(CacheScope::kToken, token_id);
  audit_.Write("", actor.token_id, "operator-token.revoke", json{{"token", token_id}});
  return Status::Ok();
}

Result<NewToken> Tenancy::RotateOperatorToken(const Principal& actor, const std::string& token_id,
                                              DurationMs overlap,
                                              std::optional<DurationMs> expires_in) {
  return Rotate(actor, "", token_id, overlap, expires_in);
}

void Tenancy::FlushTokenUse(bool force) {
  TimeMs now = clock_.Now();
  {
    std::lock_guard<std::mutex> l(flush_mu_);
    if (!force && now - token_use_flushed_at_ < options_.token_use_flush) return;
    token_use_flushed_at_ = now;
  }
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

Result<TenantInfo> Tenancy::CreateTenant(const Principal& actor, const std::string& name,
                                         const QuotaOverrides& quotas) {
  REDRIVE_RETURN_IF_ERROR(ValidateName(name, "tenant"));
  REDRIVE_RETURN_IF_ERROR(ValidateQuotaOverrides(quotas));
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
  coordinator_.Invalidate(CacheScope::kTenant, name);
  audit_.Write("", actor.token_id, "tenant.create", json{{"tenant", name}, {"quotas", overrides}});
  return info;
}

Result<TenantInfo> Tenancy::CreateTenant(const std::string& name) {
  return CreateTenant(SystemActor(), name);
}

Result<std::vector<TenantInfo>> Tenancy::ListTenants() {
  REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListTenants());
  std::vector<TenantInfo> out;
  for (const auto& r : records) {
    TenantInfo t;
    t.name = r.name;
    t.created_at = r.created_at;
    t.deleting = r.deleting;
    REDRIVE_ASSIGN_OR_RETURN(t.overrides, ParseStoredOverrides(r.name, r.quotas_json));
    t.quotas = EffectiveQuotas(options_.default_quotas, t.overrides);
    out.push_back(std::move(t));
  }
  return out;
}

Result<TenantInfo> Tenancy::GetTenant(const std::string& name) {
  REDRIVE_ASSIGN_OR_RETURN(auto r, control_.GetTenant(name));
  if (!r || r->deleting) return TenantNotFound(name);
  TenantInfo t;
  t.name = r->name;
  t.created_at = r->created_at;
  REDRIVE_ASSIGN_OR_RETURN(t.overrides, ParseStoredOverrides(name, r->quotas_json));
  t.quotas = EffectiveQuotas(options_.default_quotas, t.overrides);
  REDRIVE_ASSIGN_OR_RETURN(t.usage, control_.GetTenantUsage(name));
  return t;
}

Result<QuotaOverrides> Tenancy::OverridesOf(const std::string& tenant) {
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

Result<TenantQuotas> Tenancy::QuotasOf(const std::string& tenant) {
  REDRIVE_ASSIGN_OR_RETURN(auto overrides, OverridesOf(tenant));
  return EffectiveQuotas(options_.default_quotas, overrides);
}

Result<TenantInfo> Tenancy::SetTenantQuotas(const Principal& actor, const std::string& name,
                                            const QuotaOverrides& overrides) {
  REDRIVE_RETURN_IF_ERROR(ValidateQuotaOverrides(overrides));
  REDRIVE_ASSIGN_OR_RETURN(TenantInfo before, GetTenant(name));
  json after = QuotaOverridesToJson(overrides);
  REDRIVE_ASSIGN_OR_RETURN(bool set,
                           control_.SetTenantQuotas(name, after.empty() ? "" : after.dump()));
  if (!set) return TenantNotFound(name);
  // Cached overrides go, and a new rate or burst starts from a full bucket.
  coordinator_.Invalidate(CacheScope::kTenant, name);
  TenantQuotas effective = EffectiveQuotas(options_.default_quotas, overrides);
  json changed =
      AuditLog::Changes(TenantQuotasToJson(before.quotas), TenantQuotasToJson(effective));
  json detail = {{"tenant", name}, {"overrides", after}, {"changed", changed}};
  // Server-wide, and in the tenant's own log, so its admins see why limits moved.
  audit_.Write("", actor.token_id, "tenant.quotas", detail);
  audit_.Write(name, actor.token_id, "tenant.quotas", detail);
  return GetTenant(name);
}

Status Tenancy::DeleteTenant(const Principal& actor, const std::string& name, bool force) {
  REDRIVE_ASSIGN_OR_RETURN(auto r, control_.GetTenant(name));
  if (!r) return TenantNotFound(name);
  REDRIVE_ASSIGN_OR_RETURN(auto usage, control_.GetTenantUsage(name));
  // Every cache of the tenant (its queues, tokens, quotas) goes, on every node.
  auto forget = [&] { coordinator_.Invalidate(CacheScope::kTenant, name); };
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
  audit_.Write(
      "", actor.token_id, "tenant.delete",
      json{{"tenant", name},
           {"force", force},
           {"removed",
            {{"queues", usage.queues}, {"messages", usage.messages}, {"bytes", usage.bytes}}}});
  return Status::Ok();
}

// ------------------------------------------------------------------ request rate

Status Tenancy::AdmitRequest(const Principal& p, const std::string& tenant,
                             DurationMs* retry_after) {
  if (p.HasScope(kScopeOperator) || tenant.empty()) return Status::Ok();
  REDRIVE_ASSIGN_OR_RETURN(TenantQuotas q, QuotasOf(tenant));
  if (q.request_rate <= 0) return Status::Ok();
  // Each node keeps its share of the rate and the burst, so that the nodes together keep the
  // tenant's limit when the load balancer spreads its requests evenly (docs/operations.md,
  // "Several nodes"). One node: the whole of both.
  const double nodes = std::max(1, coordinator_.LiveNodes());
  double rate = static_cast<double>(q.request_rate) / nodes;
  double burst = std::max(
      1.0, static_cast<double>(q.request_burst > 0 ? q.request_burst : q.request_rate) / nodes);
  TimeMs now = clock_.Now();
  std::lock_guard<std::mutex> l(rate_mu_);
  auto it = rate_buckets_.find(tenant);
  // A bucket starts full; one whose rate or burst changed (on another node) starts again.
  if (it == rate_buckets_.end() || it->second.rate() != rate || it->second.burst() != burst) {
    it = rate_buckets_.insert_or_assign(tenant, TokenBucket(rate, burst, burst, now)).first;
  }
  if (it->second.TryTake(now, 1.0, retry_after)) return Status::Ok();
  return Status(ErrorCode::kRateLimited, "tenant " + tenant + " is over its request rate of " +
                                             std::to_string(q.request_rate) +
                                             " per second (burst " +
                                             std::to_string(static_cast<int64_t>(burst)) +
                                             "); retry in " + FormatDuration(*retry_after));
}

Result<AuditQueryResult> Tenancy::QueryServerAudit(const AuditQuery& query) {
  return audit_.Read("", query);
}

}  // namespace redrive::engine
