// _queryFilter: the ForgeRock common REST query filter, parsed, evaluated against JSON
// documents (dead letters as the REST API renders them) and printed back canonically.
//
// Grammar (keywords are lowercase and case-sensitive; whitespace may separate any two tokens
// and is needed only where two words would otherwise run together):
//
//   expr    := or
//   or      := and ('or' and)*
//   and     := not ('and' not)*
//   not     := '!' not | primary
//   primary := '(' expr ')' | 'true' | 'false' | pointer 'pr' | pointer OP literal
//   OP      := 'eq' | 'co' | 'sw' | 'lt' | 'le' | 'gt' | 'ge'
//   literal := JSON string in double quotes | JSON number | 'true' | 'false' | 'null'
//
// A pointer is a JSON pointer ("/reason", "/attributes/region", "~0" for '~', "~1" for '/');
// as in ForgeRock the leading '/' may be left out ("reason" is "/reason"). A pointer is one word:
// it runs to the next whitespace, '(', ')' or '"', and no token of it may be empty. A bare
// 'true' or 'false' in primary position is the constant, not a field; write "/true" for that.
// Single-quoted strings (which ForgeRock also accepts) are not accepted.
//
// Thread-safety: pure functions over immutable inputs; safe from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace redrive::query {

// Limits on a filter; going past any is a kInvalidQuery error that names the limit.
inline constexpr size_t kMaxFilterBytes = 4096;
// Open '(' plus '!' enclosing any point of the text.
inline constexpr int kMaxFilterDepth = 32;
// Pointer comparisons, `pr` included (not the constants true and false).
inline constexpr int kMaxFilterComparisons = 256;

enum class Op { kTrue, kFalse, kEq, kCo, kSw, kLt, kLe, kGt, kGe, kPr, kAnd, kOr, kNot };

// One node of a parsed filter.
//   kTrue, kFalse:            no path, no value, no children.
//   kEq ... kGe:              path and value (a string, number, boolean or null).
//   kPr:                      path only.
//   kAnd, kOr:                two or more children (ParseFilter never builds fewer).
//   kNot:                     exactly one child.
// `path` holds the decoded pointer tokens: "/a~1b/c" is {"a/b", "c"}.
struct Expr {
  Op op = Op::kTrue;
  std::vector<std::string> path;
  nlohmann::json value;
  std::vector<std::unique_ptr<Expr>> children;
};

// Parses a _queryFilter value (already URL-decoded). The text must be valid UTF-8.
// Errors: kInvalidQuery, with a message such as
//   "_queryFilter: at position 8: expected an operator (eq co sw lt le gt ge pr) after
//    '/reason', found 'is'"
// where the position is the 0-based byte offset of the offending token (the character offset
// when the text is ASCII), and the message says what was expected and what was found. Longer
// than kMaxFilterBytes, deeper than kMaxFilterDepth or with more than kMaxFilterComparisons
// comparisons is an error naming that limit. Never recurses deeper than the depth limit.
Result<std::unique_ptr<Expr>> ParseFilter(std::string_view text);

// True when `doc` matches `e`.
//   - The pointer is resolved in `doc` by ResolvePointer. A missing value makes every
//     comparison false; `pr` is true for any present value that is not null.
//   - eq: numbers compare numerically (1 eq 1.0), everything else by JSON equality (strings
//     exactly, case-sensitively); values of different JSON types are never equal.
//   - co, sw: both strings; substring / byte prefix. False for any other type.
//   - lt, le, gt, ge: two numbers compare numerically, two strings by bytes (so RFC 3339
//     timestamps written in one format, such as FormatTime's, compare in time order); any
//     other pairing is false.
//   - When the resolved value is an array, a comparison is true when it holds for any
//     element (one level, not recursive); `pr` looks at the array itself.
//   - '!' negates; 'and' and 'or' short-circuit.
// REQUIRES: `e` has the shape described at Expr (as every ParseFilter result does). Recursion
// follows the tree, so a hand-built tree must be no deeper than a parsed one can be.
bool Evaluate(const Expr& e, const nlohmann::json& doc);

// The canonical text of `e`: pointers always with a leading '/', single spaces between tokens,
// only the parentheses the tree needs, strings as compact JSON (UTF-8 unescaped), numbers in
// their shortest round-trip form (a float keeps a '.' or an exponent). For any tree from
// ParseFilter, ParseFilter(ToString(e)) succeeds and gives an equal tree whenever the text
// fits kMaxFilterBytes (it can be a few bytes per comparison longer than the input: "a pr"
// becomes "/a pr"); it never needs more depth or comparisons than the input did.
std::string ToString(const Expr& e);

// Equality-and-range constraints on indexed dead-letter columns that every match of a filter
// satisfies; an index pre-filter for the engine, which must still Evaluate the full filter on
// every candidate. Each field only ever narrows: a dead letter the filter matches is never
// outside these bounds. Unset fields mean "no constraint".
struct IndexedConstraints {
  std::optional<std::string> origin, reason, group, dlq;
  // Bounds on /deadLetteredAt: since inclusive, until exclusive. Always in FormatTime's form
  // "YYYY-MM-DDTHH:MM:SS.mmmZ" with valid fields, so they convert to milliseconds exactly and
  // their byte order is their time order.
  std::optional<std::string> since, until;
};

// Reads IndexedConstraints from the top-level conjunction of `e` only: `e` itself, or the
// children of a root 'and' (and of 'and's nested directly in it). Nothing is taken from under
// 'or' or '!'.
//   - `eq` with a string value on /origin, /reason, /group, /deadLetterQueue sets origin,
//     reason, group, dlq. (These are scalar strings in a dead letter, so the "any element"
//     rule cannot widen them.) Of two different values for one field the first is kept: the
//     filter then matches nothing, so either is a correct narrowing.
//   - On /deadLetteredAt, with a string value in FormatTime's form (see above; anything else
//     is ignored, because a differently written timestamp orders differently by bytes than by
//     time): `ge V` gives since = V; `gt V` gives since = V + 1 ms; `lt V` gives until = V;
//     `le V` gives until = V + 1 ms. All four are exact, because the stored values are in the
//     same form at millisecond precision. Several bounds combine to the tightest. A bound that
//     would fall outside years 0000-9999 is left unset.
IndexedConstraints ExtractIndexed(const Expr& e);

// Pointer helpers shared by _queryFilter, _fields and _sortKeys.

// Decodes a JSON pointer ("/a/b", or the bare "a/b") into its tokens, undoing "~0" and "~1".
// Errors: kInvalidQuery, "<param>: at position <base_position + offset>: ..." for an empty
// pointer, an empty token ("/a//b", "/", "a/") or a '~' not followed by '0' or '1'.
Result<std::vector<std::string>> DecodePointer(std::string_view text, std::string_view param,
                                               size_t base_position = 0);

// "/" followed by the tokens joined with "/", escaping '~' as "~0" and '/' as "~1".
std::string EncodePointer(const std::vector<std::string>& path);

// The value `path` names in `doc`, or nullptr if there is none. On an object a token is a key;
// on an array it must be a decimal index without leading zeros ("0", "12") within bounds;
// anything else (including "-") is missing. An empty path names `doc` itself.
const nlohmann::json* ResolvePointer(const nlohmann::json& doc,
                                     const std::vector<std::string>& path);

// Exact three-way comparison (-1, 0, 1) of two JSON numbers of any mix of signed, unsigned and
// floating types, without the rounding of a conversion to double. A NaN (only possible in a
// hand-built document) sorts below every other number and equal to another NaN, so this is a
// total order. REQUIRES: a.is_number() && b.is_number().
int CompareNumbers(const nlohmann::json& a, const nlohmann::json& b);

}  // namespace redrive::query
