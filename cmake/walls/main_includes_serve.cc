// Must build: what main.cc may include (wall_main_control).
#include "cli/commands.h"
#include "server/serve.h"
