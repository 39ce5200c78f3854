// What PgStore's files share: row readers and column lists. Internal to the backend.
#pragma once

#include <string>

#include "common/status.h"
#include "store/postgres/pg_conn.h"
#include "store/store.h"

namespace redrive::store::postgres {

#define PG_QUEUE_COLUMNS "id, tenant, name, kind, config, created_at, updated_at"
QueueRecord ReadQueue(const Rows& rows, int row);

#define PG_TENANT_COLUMNS "name, created_at, quotas, deleting"
TenantRecord ReadTenant(const Rows& rows, int row);

// For methods not written yet: kInternal naming the method.
#define PG_NOT_IMPLEMENTED() \
  return Status(ErrorCode::kInternal, std::string("postgres: not implemented: ") + __func__)

}  // namespace redrive::store::postgres
