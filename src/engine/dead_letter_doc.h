// The JSON document of a dead letter: what the REST API returns and what _queryFilter,
// _fields and _sortKeys address (/origin, /reason, /group, /attributes/<name>, ...). Defined
// once here so that a query means the same thing whichever API reaches it. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "store/store.h"

namespace redrive::engine {

// Bodies that are valid UTF-8 appear as a string with "base64": false; others base64-encoded.
nlohmann::json DeadLetterDocument(const store::DeadLetterRecord& d);

// The document a filter is evaluated on: like DeadLetterDocument, but a body that is JSON is
// parsed, so /body/<path> can reach into it.
nlohmann::json DeadLetterFilterDocument(const store::DeadLetterRecord& d, bool parse_body);

}  // namespace redrive::engine
