// JSON encodings of the structured columns (attributes, journal, scopes) shared by every
// backend, so that a dead letter reads the same whichever store wrote it. Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "store/records.h"

namespace redrive::store {

std::string EncodeAttributes(const Attributes& attributes);
Attributes DecodeAttributes(const std::string& json);
std::string EncodeJournal(const Journal& journal);
Journal DecodeJournal(const std::string& json);
std::string EncodeLineage(const Lineage& lineage);
Lineage DecodeLineage(const std::string& json);
std::string JoinScopes(const std::vector<std::string>& scopes);
std::vector<std::string> SplitScopes(const std::string& text);

}  // namespace redrive::store
