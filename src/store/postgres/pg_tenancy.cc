// PgStore, tenancy: quotas, usage, tenant deletion, secrets, tokens, queue deletion.
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {

Result<bool> PgStore::SetTenantQuotas(const std::string& tenant, const std::string& quotas_json) {
  PG_NOT_IMPLEMENTED();
}

Result<TenantUsage> PgStore::GetTenantUsage(const std::string& tenant) { PG_NOT_IMPLEMENTED(); }

Result<DeleteTenantOutcome> PgStore::DeleteTenant(const std::string& tenant, bool only_if_empty) {
  PG_NOT_IMPLEMENTED();
}

Result<std::string> PgStore::TenantSecret(const std::string& tenant, const std::string& name,
                                          const std::string& candidate) {
  PG_NOT_IMPLEMENTED();
}

Status PgStore::CreateToken(const TokenRecord& token) { PG_NOT_IMPLEMENTED(); }

Result<std::optional<TokenRecord>> PgStore::FindTokenByHash(const std::string& secret_hash) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<TokenRecord>> PgStore::ListTokens(const std::string& tenant) {
  PG_NOT_IMPLEMENTED();
}

Result<bool> PgStore::RevokeToken(const std::string& tenant, const std::string& id, TimeMs at) {
  PG_NOT_IMPLEMENTED();
}

Result<bool> PgStore::RotateToken(const std::string& tenant, const std::string& id,
                                  const TokenRecord& replacement, TimeMs old_expires_at,
                                  TimeMs now) {
  PG_NOT_IMPLEMENTED();
}

Result<RevokeOutcome> PgStore::RevokeOperatorToken(const std::string& id, TimeMs at) {
  PG_NOT_IMPLEMENTED();
}

Status PgStore::TouchTokens(const std::vector<std::pair<std::string, TimeMs>>& last_used) {
  PG_NOT_IMPLEMENTED();
}

Result<bool> PgStore::DeleteQueue(int64_t queue_id) { PG_NOT_IMPLEMENTED(); }

}  // namespace redrive::store::postgres
