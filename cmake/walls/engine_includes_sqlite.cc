// Must not build: the engine cannot include a store backend (wall_engine_no_sqlite).
#include "engine/engine.h"
#include "store/sqlite/sqlite_store.h"
