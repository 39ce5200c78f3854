// libFuzzer target for ParseFilter (scripts/fuzz.sh filter_fuzz SECONDS). Checks, beyond "no
// crash, no sanitizer report": an accepted filter prints to a canonical text that parses again
// to the same canonical text (or, only when printing made it longer than the limit, is refused
// for length alone), and evaluating it on a sample dead letter is safe.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "query/filter.h"

namespace {

const nlohmann::json& SampleDoc() {
  static const nlohmann::json doc = nlohmann::json::parse(R"({
    "id": "01JD0000000000000000000000",
    "deadLetterQueue": "orders.dlq", "origin": "orders", "reason": "max-deliveries",
    "group": "g1", "cause": "timeout talking to payments",
    "body": {"customer": {"id": 42, "tier": "gold"}, "items": [1, 2.5, "x", null]},
    "attributes": {"region": "eu-west", "a/b": "~", "": 0},
    "idempotencyKey": null, "deliveryCount": 5, "ratio": -0.5,
    "big": 18446744073709551615, "neg": -9223372036854775808,
    "deadLetteredAt": "2026-11-22T10:00:00.123Z", "tags": ["urgent", "billing"],
    "attempts": [{"at": "2026-11-22T09:59:00.000Z", "cause": "c1"}], "flag": true
  })");
  return doc;
}

[[noreturn]] void Die(const char* what, const std::string& a, const std::string& b) {
  fprintf(stderr, "%s\n  first:  %s\n  second: %s\n", what, a.c_str(), b.c_str());
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using redrive::query::ParseFilter;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseFilter(text);
  if (!parsed.ok()) {
    if (parsed.status().code() != redrive::ErrorCode::kInvalidQuery) {
      Die("parse error with the wrong code", std::string(text), parsed.status().message());
    }
    return 0;
  }
  const redrive::query::Expr& e = **parsed;
  std::string canonical = redrive::query::ToString(e);
  auto again = ParseFilter(canonical);
  if (!again.ok()) {
    bool only_too_long =
        canonical.size() > redrive::query::kMaxFilterBytes &&
        again.status().message().find("longer than the limit") != std::string::npos;
    if (!only_too_long) Die("canonical form does not parse", canonical, again.status().message());
  } else {
    std::string twice = redrive::query::ToString(**again);
    if (twice != canonical) Die("canonical form is not stable", canonical, twice);
    bool first = redrive::query::Evaluate(e, SampleDoc());
    bool second = redrive::query::Evaluate(**again, SampleDoc());
    if (first != second) Die("canonical form evaluates differently", canonical, twice);
  }
  (void)redrive::query::Evaluate(e, SampleDoc());
  (void)redrive::query::Evaluate(e, nlohmann::json());
  (void)redrive::query::ExtractIndexed(e);
  return 0;
}
