// Must build: the control of the push walls (wall_push_control).
#include "push/delivery_client.h"
#include "push/outcome.h"
#include "push/signature.h"
