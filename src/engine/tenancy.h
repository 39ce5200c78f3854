// Tenancy: tenants and their quotas, tokens (expiry, rotation with an overlap, operator tokens,
// last use), authentication and scopes, and the request rate. Every other service asks it
// whether a tenant exists (EnsureTenant) and what its quotas are (QuotasOf).
//
// Errors: each method documents the ErrorCodes it returns; kStoreFailed and kInternal can come
// from any method that touches the store.
//
// Thread-safety: thread-safe. Caches (principals, tenants known to exist, quota overrides) are
// dropped on this node at once, and on others through the Coordinator's invalidations
// (kTenant, kToken), and expire after EngineOptions::token_cache_ttl in any case.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/token_bucket.h"
#include "engine/coordination.h"
#include "engine/model.h"
#include "store/control_store.h"

namespace redrive::engine {

class AuditLog;

struct TenantInfo {
  std::string name;
  TimeMs created_at = 0;
  bool deleting = false;
  QuotaOverrides overrides;
  // Filled by GetTenant only:
  TenantQuotas quotas;  // effective: the defaults with the overrides
  store::TenantUsage usage;
};

struct TokenInfo {
  std::string id;
  std::string tenant;
  std::string label;
  std::vector<std::string> scopes;
  TimeMs created_at = 0;
  TimeMs revoked_at = 0;
  TimeMs expires_at = 0;    // 0 = never
  TimeMs last_used_at = 0;  // to within EngineOptions::token_use_flush on other nodes
  std::string replaced_by;  // the token a rotation issued in its place
  std::string state;        // active, expired or revoked (at the time of the call)
};

struct NewToken {
  TokenInfo info;
  std::string secret;  // shown once; only its hash is stored
  // Set by a rotation: the token this one replaces, and when that one stops being accepted.
  std::string replaces;
  TimeMs replaces_until = 0;
};

class Tenancy : public CoordinationListener {
 public:
  Tenancy(store::ControlStore& control, Clock& clock, Random& random, const EngineOptions& options,
          Coordinator& coordinator, AuditLog& audit);
  ~Tenancy() override;
  Tenancy(const Tenancy&) = delete;
  Tenancy& operator=(const Tenancy&) = delete;

  // ---- auth
  // Errors: kUnauthenticated for a missing, unknown or revoked token.
  Result<Principal> Authenticate(std::string_view bearer_token);
  // Whether `p` may act on `tenant` with `scope`. Errors: kTenantNotFound when the tenant does
  // not exist or belongs to another token (never revealing which), kForbidden when the scope
  // is missing or when a tenant token calls a server-wide route (`tenant` empty).
  Status Authorize(const Principal& p, const std::string& tenant, std::string_view scope);
  // Operator tokens (server-wide). The first is written by `serve` on first start.
  Result<NewToken> CreateOperatorToken(const std::string& label);
  Result<std::vector<TokenInfo>> ListOperatorTokens();

  // ---- tenants. Every change is written to the audit log with the token id of
  // `actor`: changes inside a tenant (its tokens, queues, quotas) to the tenant's log,
  // server-wide ones (tenants, operator tokens, quotas) to the server log (tenant ""), which
  // QueryServerAudit reads. The overloads without an actor act as `system`.
  //
  // Errors: kInvalidName, kAlreadyExists, kInvalidArgument (a negative quota).
  Result<TenantInfo> CreateTenant(const Principal& actor, const std::string& name,
                                  const QuotaOverrides& quotas = {});
  Result<TenantInfo> CreateTenant(const std::string& name);
  Result<std::vector<TenantInfo>> ListTenants();
  // With its effective quotas and usage. Errors: kTenantNotFound.
  Result<TenantInfo> GetTenant(const std::string& name);
  // Replaces the tenant's overrides; a quota already below its usage refuses only new work.
  // Errors: kTenantNotFound, kInvalidArgument (a negative quota).
  Result<TenantInfo> SetTenantQuotas(const Principal& actor, const std::string& name,
                                     const QuotaOverrides& overrides);
  // Deletes the tenant with its tokens, queues, messages, dead letters, jobs and audit log.
  // Errors: kTenantNotFound, kTenantNotEmpty (it has queues and `force` is false).
  Status DeleteTenant(const Principal& actor, const std::string& name, bool force);
  // The defaults with the tenant's overrides. Errors: kTenantNotFound.
  Result<TenantQuotas> QuotasOf(const std::string& tenant);
  // Admits one request of `p` on `tenant` by the tenant's request rate (a token bucket of
  // request_burst, refilled at request_rate per second). Operator tokens are never limited.
  // Errors: kRateLimited, with *retry_after set to when a request will be admitted again.
  Status AdmitRequest(const Principal& p, const std::string& tenant, DurationMs* retry_after);
  // Retry-After for kQuotaExceeded: space frees only as consumers and operators remove work.
  DurationMs quota_retry_after() const { return options_.quota_retry_after; }

  // Tenant tokens. `expires_in`: the token is refused from then on (1s to kMaxTokenLifetime).
  // Errors: kTenantNotFound, kInvalidName (label), kInvalidArgument (unknown scope, lifetime).
  Result<NewToken> CreateToken(const Principal& actor, const std::string& tenant,
                               const std::string& label, const std::vector<std::string>& scopes,
                               std::optional<DurationMs> expires_in = std::nullopt);
  Result<NewToken> CreateToken(const std::string& tenant, const std::string& label,
                               const std::vector<std::string>& scopes);
  Result<std::vector<TokenInfo>> ListTokens(const std::string& tenant);
  // Errors: kTokenNotFound.
  Status RevokeToken(const Principal& actor, const std::string& tenant,
                     const std::string& token_id);
  Status RevokeToken(const std::string& tenant, const std::string& token_id);
  // Issues a new token with the same tenant, label and scopes (and `expires_in`, else no
  // expiry); the old one is still accepted for `overlap` (0 = stops at once), then refused
  // like a revoked one. Errors: kTokenNotFound (no token with that id that is neither revoked
  // nor expired), kInvalidArgument (overlap outside 0 to kMaxRotationOverlap; lifetime).
  Result<NewToken> RotateToken(const Principal& actor, const std::string& tenant,
                               const std::string& token_id, DurationMs overlap,
                               std::optional<DurationMs> expires_in = std::nullopt);

  // Operator tokens. Errors as for tenant tokens; revoking fails with kLastOperatorToken
  // when no other operator token would stay active (neither revoked nor expired).
  Result<NewToken> CreateOperatorToken(const Principal& actor, const std::string& label,
                                       std::optional<DurationMs> expires_in = std::nullopt);
  Status RevokeOperatorToken(const Principal& actor, const std::string& token_id);
  Result<NewToken> RotateOperatorToken(const Principal& actor, const std::string& token_id,
                                       DurationMs overlap,
                                       std::optional<DurationMs> expires_in = std::nullopt);
  // The server-wide audit log (tenants, operator tokens, quotas). Errors: kInvalidQuery.
  Result<AuditQueryResult> QueryServerAudit(const AuditQuery& query);

  // Ok when `tenant` exists and is not being deleted. Errors: kTenantNotFound.
  Status EnsureTenant(const std::string& tenant);
  // Writes the last use of tokens seen since the last flush, at most every token_use_flush
  // unless `force` (the sweeper calls it, and Stop once the sweeper has ended).
  void FlushTokenUse(bool force = false);

  // The actor of changes made without one (`system`).
  static const Principal& System();

  void OnInvalidate(CacheScope scope, const std::string& key) override;

 private:
  struct CachedPrincipal {
    Principal principal;
    TimeMs fetched_at = 0;
    TimeMs expires_at = 0;  // the token's; 0 = never
  };
  struct CachedOverrides {
    QuotaOverrides overrides;
    TimeMs fetched_at = 0;
  };

  // A token for `tenant` ("" = operator) with a fresh id and secret, not stored.
  NewToken MintToken(const std::string& tenant, const std::string& label,
                     const std::vector<std::string>& scopes, TimeMs expires_at);
  // Now + expires_in, or 0 without one. Errors: kInvalidArgument (outside 1s..10y).
  Result<TimeMs> ExpiryOf(std::optional<DurationMs> expires_in);
  Result<NewToken> Rotate(const Principal& actor, const std::string& tenant,
                          const std::string& token_id, DurationMs overlap,
                          std::optional<DurationMs> expires_in);
  TokenInfo TokenInfoOf(const store::TokenRecord& record, TimeMs now);
  // Drops cached principals whose token id is `token_id`, or (token_id empty) of `tenant`.
  void ForgetPrincipals(const std::string& tenant, const std::string& token_id);
  // Drops everything cached about `tenant`.
  void ForgetTenant(const std::string& tenant);
  Result<QuotaOverrides> OverridesOf(const std::string& tenant);

  store::ControlStore& control_;
  Clock& clock_;
  Random& random_;
  const EngineOptions& options_;
  Coordinator& coordinator_;
  AuditLog& audit_;

  std::mutex cache_mu_;
  // By token hash. GUARDED_BY(cache_mu_)
  std::unordered_map<std::string, CachedPrincipal> principals_;
  std::unordered_map<std::string, bool> tenants_;  // known to exist. GUARDED_BY(cache_mu_)
  // Last use of tokens, by id, not yet written to the store. GUARDED_BY(cache_mu_)
  std::unordered_map<std::string, TimeMs> token_last_used_;
  // Quota overrides by tenant, refreshed after token_cache_ttl. GUARDED_BY(cache_mu_)
  std::unordered_map<std::string, CachedOverrides> quota_overrides_;
  std::mutex flush_mu_;
  TimeMs token_use_flushed_at_ = 0;  // GUARDED_BY(flush_mu_)
  std::mutex rate_mu_;
  std::unordered_map<std::string, TokenBucket> rate_buckets_;  // by tenant. GUARDED_BY(rate_mu_)
};

}  // namespace redrive::engine
