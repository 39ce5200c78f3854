// Must build: the control of the script walls (wall_script_control).
#include "script/exhausted_script.h"
#include "store/records.h"
