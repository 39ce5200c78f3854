// Must not build: the engine will use scripts, never the other way round (wall_script_no_engine).
#include "engine/engine.h"
#include "script/exhausted_script.h"
