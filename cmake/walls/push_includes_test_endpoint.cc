// Must not build: the test receiver is for tests only, outside redrive_push
// (wall_push_no_test_endpoint).
#include "push/delivery_client.h"
#include "push/test_endpoint.h"
