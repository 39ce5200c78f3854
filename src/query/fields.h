// _fields and _sortKeys: which parts of each result to return, and in what order.
//
// Both take comma-separated JSON pointers, with or without the leading '/' (see filter.h for
// the pointer syntax); spaces around an entry are ignored. Parsing is pure; thread-safe.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace redrive::query {

inline constexpr size_t kMaxFields = 64;
inline constexpr size_t kMaxSortKeys = 8;

// Parses a _fields value such as "id,reason,attributes/region" into decoded pointer paths, in
// the order given. Errors: kInvalidQuery, "_fields: at position N: ..." (N the 0-based byte
// offset) for an empty value or entry, a malformed pointer (empty token, bad '~' escape), or
// more than kMaxFields entries.
Result<std::vector<std::vector<std::string>>> ParseFields(std::string_view text);

// A copy of `doc` holding only the values at `fields`, at the same places: {"a":{"b":1,"c":2}}
// with fields {{"a","b"}} gives {"a":{"b":1}}. A path through an array keeps the element at
// its index, padding earlier slots with null. Paths missing from `doc` are left out. "id" is
// always kept when `doc` has it. An empty `fields` (no _fields given) returns `doc` whole, as
// does a `doc` that is not an object.
nlohmann::json Project(const nlohmann::json& doc,
                       const std::vector<std::vector<std::string>>& fields);

struct SortKey {
  std::vector<std::string> path;
  bool descending = false;
};

// Parses a _sortKeys value such as "-deadLetteredAt,origin": each entry a pointer, optionally
// prefixed by '+' (ascending, the default) or '-' (descending). Errors: kInvalidQuery,
// "_sortKeys: at position N: ..." for an empty value or entry, a sign without a pointer, a
// malformed pointer, or more than kMaxSortKeys entries.
Result<std::vector<SortKey>> ParseSortKeys(std::string_view text);

// Whether `a` sorts before `b` under `keys`: the first key on which they differ decides; ties
// fall through to the next key, and documents equal on every key are equivalent. Under one key,
// values order as: missing < null < false < true < numbers (numerically, exactly) < strings (by
// bytes) < arrays < objects, all arrays being equal to each other and all objects too. A
// descending key reverses that order, so missing values sort last. This is a strict weak
// ordering, safe for std::sort and std::stable_sort.
bool SortLess(const nlohmann::json& a, const nlohmann::json& b, const std::vector<SortKey>& keys);

}  // namespace redrive::query
