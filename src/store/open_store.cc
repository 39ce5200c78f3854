#include "store/sqlite/sqlite_store.h"
#include "store/store.h"

namespace redrive::store {

Result<std::unique_ptr<Store>> OpenStore(const std::string& uri) {
  std::string path = uri;
  if (uri.rfind("sqlite:", 0) == 0) {
    path = uri.substr(7);
  } else if (uri.find("://") != std::string::npos) {
    return Status(ErrorCode::kInvalidArgument,
                  "unsupported store '" + uri + "': use sqlite:PATH or a file path");
  }
  auto opened = sqlite::SqliteStore::Open(path);
  if (!opened.ok()) return opened.status();
  return std::unique_ptr<Store>(std::move(opened).value());
}

}  // namespace redrive::store
