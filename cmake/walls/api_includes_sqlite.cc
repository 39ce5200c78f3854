// Must not build: the API cannot include a store backend (wall_api_no_sqlite).
#include "api/api.h"
#include "store/sqlite/sqlite_store.h"
