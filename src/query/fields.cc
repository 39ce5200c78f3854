#include "query/fields.h"

#include <utility>

#include "query/filter.h"

namespace redrive::query {
namespace {

using nlohmann::json;

Status ListError(std::string_view param, size_t position, const std::string& what) {
  return Status(ErrorCode::kInvalidQuery,
                std::string(param) + ": at position " + std::to_string(position) + ": " + what);
}

struct Entry {
  std::string_view text;
  size_t position;
};

// Splits on ',' and trims spaces around each entry. Errors on an empty value or entry and on
// more than `max` entries.
Result<std::vector<Entry>> SplitList(std::string_view text, std::string_view param, size_t max) {
  std::vector<Entry> entries;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    size_t end = comma == std::string_view::npos ? text.size() : comma;
    size_t b = start, e = end;
    while (b < e && text[b] == ' ') ++b;
    while (e > b && text[e - 1] == ' ') --e;
    if (b == e) {
      return ListError(
          param, b,
          "expected a field pointer, found " +
              std::string(comma == std::string_view::npos ? "the end of the value" : "','"));
    }
    if (entries.size() == max) {
      return ListError(param, b, "more entries than the limit of " + std::to_string(max));
    }
    entries.push_back({text.substr(b, e - b), b});
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return entries;
}

// Copies the value at `path` in `doc` (if any) into the same place in `out`.
void CopyPath(const json& doc, const std::vector<std::string>& path, json* out) {
  if (ResolvePointer(doc, path) == nullptr) return;
  const json* src = &doc;
  json* dst = out;
  for (const std::string& token : path) {
    if (src->is_object()) {
      src = &(*src)[token];
      dst = &(*dst)[token];
    } else {
      // ResolvePointer accepted it, so this is an in-range array index.
      size_t index = std::stoul(token);
      src = &(*src)[index];
      dst = &(*dst)[index];  // pads with null up to index
    }
  }
  *dst = *src;
}

// The rank of a value's kind in the sort order; nullptr is a missing value.
int KindRank(const json* v) {
  if (v == nullptr) return 0;
  switch (v->type()) {
    case json::value_t::null:
      return 1;
    case json::value_t::boolean:
      return 2;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return 3;
    case json::value_t::string:
      return 4;
    case json::value_t::array:
      return 5;
    case json::value_t::object:
      return 6;
    default:  // binary and discarded cannot come from JSON text
      return 7;
  }
}

int CompareForSort(const json* a, const json* b) {
  int ra = KindRank(a), rb = KindRank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case 2: {
      bool x = a->get<bool>(), y = b->get<bool>();
      return x == y ? 0 : x ? 1 : -1;
    }
    case 3:
      return CompareNumbers(*a, *b);
    case 4: {
      int c = a->get_ref<const std::string&>().compare(b->get_ref<const std::string&>());
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    default:
      return 0;
  }
}

}  // namespace

Result<std::vector<std::vector<std::string>>> ParseFields(std::string_view text) {
  constexpr std::string_view kParam = "_fields";
  REDRIVE_ASSIGN_OR_RETURN(std::vector<Entry> entries, SplitList(text, kParam, kMaxFields));
  std::vector<std::vector<std::string>> fields;
  fields.reserve(entries.size());
  for (const Entry& entry : entries) {
    REDRIVE_ASSIGN_OR_RETURN(std::vector<std::string> path,
                             DecodePointer(entry.text, kParam, entry.position));
    fields.push_back(std::move(path));
  }
  return fields;
}

json Project(const json& doc, const std::vector<std::vector<std::string>>& fields) {
  if (fields.empty() || !doc.is_object()) return doc;
  json out = json::object();
  if (auto it = doc.find("id"); it != doc.end()) out["id"] = *it;
  for (const auto& path : fields) CopyPath(doc, path, &out);
  return out;
}

Result<std::vector<SortKey>> ParseSortKeys(std::string_view text) {
  constexpr std::string_view kParam = "_sortKeys";
  REDRIVE_ASSIGN_OR_RETURN(std::vector<Entry> entries, SplitList(text, kParam, kMaxSortKeys));
  std::vector<SortKey> keys;
  keys.reserve(entries.size());
  for (Entry entry : entries) {
    SortKey key;
    if (entry.text[0] == '+' || entry.text[0] == '-') {
      key.descending = entry.text[0] == '-';
      entry.text.remove_prefix(1);
      ++entry.position;
      if (entry.text.empty()) {
        return ListError(kParam, entry.position,
                         "expected a field pointer after '" +
                             std::string(key.descending ? "-" : "+") + "', found none");
      }
    }
    REDRIVE_ASSIGN_OR_RETURN(key.path, DecodePointer(entry.text, kParam, entry.position));
    keys.push_back(std::move(key));
  }
  return keys;
}

bool SortLess(const json& a, const json& b, const std::vector<SortKey>& keys) {
  for (const SortKey& key : keys) {
    int c = CompareForSort(ResolvePointer(a, key.path), ResolvePointer(b, key.path));
    if (c != 0) return key.descending ? c > 0 : c < 0;
  }
  return false;
}

}  // namespace redrive::query
