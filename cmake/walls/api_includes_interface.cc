// Must build: what the API may include, the store's interface among it (wall_api_control).
#include "api/api.h"
#include "engine/engine.h"
#include "http/http.h"
#include "store/codec.h"
#include "store/store.h"
