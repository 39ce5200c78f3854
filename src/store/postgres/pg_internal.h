// What PgStore's files share: row readers and column lists. Internal to the backend.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "store/postgres/pg_conn.h"
#include "store/store.h"

namespace redrive::store::postgres {

#define PG_QUEUE_COLUMNS "id, tenant, name, kind, config, created_at, updated_at"
QueueRecord ReadQueue(const Rows& rows, int row);

#define PG_TENANT_COLUMNS "name, created_at, quotas, deleting"
TenantRecord ReadTenant(const Rows& rows, int row);

// A dead letter's membership of a DeadLetterSnapshot, as SQL over dead_letters' columns (seq,
// xid): its seq is at most max_seq and its transaction had committed when the snapshot was
// taken (visible: pg_current_snapshot()::text; "" = seq alone). NULLIF/COALESCE rather than
// `$v = '' OR ...`, so that no plan ever casts '' to pg_snapshot. Usage:
// "... WHERE tenant = $1 AND " PG_IN_SNAPSHOT("$2", "$3").
#define PG_IN_SNAPSHOT(max_seq_param, visible_param)                            \
  "(seq <= " max_seq_param                                                      \
  " AND COALESCE(pg_visible_in_snapshot(xid::text::xid8, NULLIF(" visible_param \
  ", '')::pg_snapshot), true))"

// True for "" and for the text form of a pg_snapshot ("xmin:xmax:xip,xip,..."), so that a
// snapshot of another store is refused (kInvalidArgument) before SQL would fail to cast it.
inline bool IsPgSnapshotText(std::string_view v) {
  if (v.empty()) return true;
  int colons = 0;
  bool digit = false;  // a digit since the last separator
  for (char c : v) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c == ':' && digit && colons < 2) {
      ++colons;
      digit = false;
    } else if (c == ',' && digit && colons == 2) {
      digit = false;
    } else {
      return false;
    }
  }
  return colons == 2 && (digit || v.back() == ':');
}

// For methods not written yet: kInternal naming the method.
#define PG_NOT_IMPLEMENTED() \
  return Status(ErrorCode::kInternal, std::string("postgres: not implemented: ") + __func__)

}  // namespace redrive::store::postgres
