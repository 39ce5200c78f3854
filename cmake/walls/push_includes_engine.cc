// Must not build: the engine will use push, never the other way round (wall_push_no_engine).
#include "engine/engine.h"
#include "push/delivery_client.h"
