// The JSON document of a dead letter: what the REST API returns and what _queryFilter,
// _fields and _sortKeys address (/origin, /reason, /group, /attributes/<name>, ...). Defined
// once here so that a query means the same thing whichever API reaches it. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "store/control_store.h"

namespace redrive::engine {

// Message bodies are bytes: valid UTF-8 goes into j["body"] as a string with "base64": false,
// anything else base64-encoded with "base64": true. Shared by every document with a body.
void PutBody(nlohmann::json& j, const std::string& body);
nlohmann::json AttributesJson(const store::Attributes& attributes);
// An RFC 3339 time, or null for 0 (never happened).
nlohmann::json OptTime(TimeMs t);

nlohmann::json DeadLetterDocument(const store::DeadLetterRecord& d);

// Appends one export line (docs/export-format.md) without its "\n": exactly the bytes of
// DeadLetterDocument(d) with "formatVersion" and "exportedAt" set, dumped compactly (keys in
// order, UTF-8 as is, invalid UTF-8 replaced). Written directly, without building the document:
// an export writes millions of lines. exports_test holds the two equal; a field added to
// DeadLetterDocument must be added here too.
void AppendExportLine(std::string& out, const store::DeadLetterRecord& d, int format_version,
                      std::string_view exported_at);

// The document a filter is evaluated on: like DeadLetterDocument, but a body that is JSON is
// parsed, so /body/<path> can reach into it.
nlohmann::json DeadLetterFilterDocument(const store::DeadLetterRecord& d, bool parse_body);

}  // namespace redrive::engine
