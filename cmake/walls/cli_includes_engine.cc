// Must not build: the client, and main.cc, cannot include the engine (wall_cli_no_engine,
// wall_main_no_engine).
#include "cli/commands.h"
#include "engine/engine.h"
