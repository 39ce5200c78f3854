#include "store/postgres/pg_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"

namespace redrive::store {

bool IsPostgresUri(const std::string& uri) {
  return uri.rfind("postgres://", 0) == 0 || uri.rfind("postgresql://", 0) == 0;
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& uri) {
  if (IsPostgresUri(uri)) {
    auto opened = postgres::PgStore::Open(uri);
    if (!opened.ok()) return opened.status();
    return std::unique_ptr<Store>(std::move(opened).value());
  }
  std::string path = uri;
  if (uri.rfind("sqlite:", 0) == 0) {
    path = uri.substr(7);
  } else if (uri.find("://") != std::string::npos) {
    return Status(ErrorCode::kInvalidArgument,
                  "unsupported store '" + uri +
                      "': use postgres://..., postgresql://..., sqlite:PATH or a file path");
  }
  auto opened = sqlite::SqliteStore::Open(path);
  if (!opened.ok()) return opened.status();
  return std::unique_ptr<Store>(std::move(opened).value());
}

}  // namespace redrive::store
