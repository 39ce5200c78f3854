// Must build: what the client may include (wall_cli_control).
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "common/status.h"
