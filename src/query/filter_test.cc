#include "query/filter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace redrive::query {
namespace {

using nlohmann::json;

// On failure records it and returns an empty Expr, so that the calling test fails rather than
// crashes.
std::unique_ptr<Expr> MustParse(std::string_view text) {
  auto r = ParseFilter(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().message();
  if (!r.ok()) return std::make_unique<Expr>();
  return std::move(r).value();
}

// Structural equality; numbers compare by value (1 and 1.0 are the same literal).
bool SameTree(const Expr& a, const Expr& b) {
  if (a.op != b.op || a.path != b.path || a.children.size() != b.children.size()) return false;
  if (a.value.is_number() && b.value.is_number()) {
    if (CompareNumbers(a.value, b.value) != 0) return false;
  } else if (a.value != b.value) {
    return false;
  }
  for (size_t i = 0; i < a.children.size(); ++i) {
    if (!SameTree(*a.children[i], *b.children[i])) return false;
  }
  return true;
}

bool Matches(std::string_view filter, const json& doc) { return Evaluate(*MustParse(filter), doc); }

std::string Repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// ---- grammar ----

TEST(FilterParseTest, ParsesEveryComparisonOperator) {
  const std::pair<const char*, Op> cases[] = {{"eq", Op::kEq}, {"co", Op::kCo}, {"sw", Op::kSw},
                                              {"lt", Op::kLt}, {"le", Op::kLe}, {"gt", Op::kGt},
                                              {"ge", Op::kGe}};
  for (const auto& [name, op] : cases) {
    auto e = MustParse(std::string("/reason ") + name + " \"x\"");
    ASSERT_TRUE(e) << name;
    EXPECT_EQ(e->op, op) << name;
    EXPECT_EQ(e->path, std::vector<std::string>{"reason"});
    EXPECT_EQ(e->value, "x");
    EXPECT_TRUE(e->children.empty());
  }
}

TEST(FilterParseTest, ParsesPresenceAndConstants) {
  auto pr = MustParse("/idempotencyKey pr");
  EXPECT_EQ(pr->op, Op::kPr);
  EXPECT_EQ(pr->path, std::vector<std::string>{"idempotencyKey"});
  EXPECT_EQ(MustParse("true")->op, Op::kTrue);
  EXPECT_EQ(MustParse("false")->op, Op::kFalse);
  EXPECT_EQ(MustParse("  true\t")->op, Op::kTrue);
  // "/true" is a field named true, not the constant.
  EXPECT_EQ(MustParse("/true pr")->op, Op::kPr);
}

TEST(FilterParseTest, AndBindsTighterThanOr) {
  auto e = MustParse("/a pr or /b pr and /c pr");
  ASSERT_EQ(e->op, Op::kOr);
  ASSERT_EQ(e->children.size(), 2u);
  EXPECT_EQ(e->children[0]->path, std::vector<std::string>{"a"});
  ASSERT_EQ(e->children[1]->op, Op::kAnd);
  EXPECT_EQ(e->children[1]->children.size(), 2u);

  auto f = MustParse("/a pr and /b pr or /c pr");
  ASSERT_EQ(f->op, Op::kOr);
  EXPECT_EQ(f->children[0]->op, Op::kAnd);
  EXPECT_EQ(f->children[1]->op, Op::kPr);
}

TEST(FilterParseTest, ChainsOfOneOperatorAreOneNode) {
  auto e = MustParse("/a pr and /b pr and /c pr and /d pr");
  ASSERT_EQ(e->op, Op::kAnd);
  EXPECT_EQ(e->children.size(), 4u);
  auto f = MustParse("/a pr or /b pr or /c pr");
  ASSERT_EQ(f->op, Op::kOr);
  EXPECT_EQ(f->children.size(), 3u);
}

TEST(FilterParseTest, ParenthesesOverridePrecedence) {
  auto e = MustParse("(/a pr or /b pr) and /c pr");
  ASSERT_EQ(e->op, Op::kAnd);
  EXPECT_EQ(e->children[0]->op, Op::kOr);
  // Redundant parentheses add no node.
  EXPECT_EQ(MustParse("(((/a pr)))")->op, Op::kPr);
  // An explicitly grouped 'and' inside an 'and' stays a separate node.
  auto g = MustParse("/a pr and (/b pr and /c pr)");
  ASSERT_EQ(g->children.size(), 2u);
  EXPECT_EQ(g->children[1]->op, Op::kAnd);
}

TEST(FilterParseTest, NotAppliesToTheNextPrimaryOnly) {
  auto e = MustParse("!/a pr and /b pr");
  ASSERT_EQ(e->op, Op::kAnd);
  ASSERT_EQ(e->children[0]->op, Op::kNot);
  EXPECT_EQ(e->children[0]->children[0]->op, Op::kPr);
  auto g = MustParse("!(/a pr and /b pr)");
  ASSERT_EQ(g->op, Op::kNot);
  EXPECT_EQ(g->children[0]->op, Op::kAnd);
  auto n = MustParse("!!/a pr");
  ASSERT_EQ(n->op, Op::kNot);
  ASSERT_EQ(n->children[0]->op, Op::kNot);
  EXPECT_EQ(n->children[0]->children[0]->op, Op::kPr);
  EXPECT_EQ(MustParse("! true")->children[0]->op, Op::kTrue);
}

TEST(FilterParseTest, ParsesEveryKindOfLiteral) {
  EXPECT_EQ(MustParse("/a eq \"text\"")->value, json("text"));
  auto i = MustParse("/a eq 42");
  EXPECT_TRUE(i->value.is_number_integer());
  EXPECT_EQ(i->value.get<int64_t>(), 42);
  auto n = MustParse("/a eq -7");
  EXPECT_EQ(n->value.get<int64_t>(), -7);
  auto f = MustParse("/a eq -1.5e3");
  EXPECT_TRUE(f->value.is_number_float());
  EXPECT_EQ(f->value.get<double>(), -1500.0);
  EXPECT_EQ(MustParse("/a eq 0.25")->value.get<double>(), 0.25);
  auto u = MustParse("/a eq 18446744073709551615");
  EXPECT_TRUE(u->value.is_number_unsigned());
  EXPECT_EQ(u->value.get<uint64_t>(), 18446744073709551615ull);
  EXPECT_EQ(MustParse("/a eq true")->value, json(true));
  EXPECT_EQ(MustParse("/a eq false")->value, json(false));
  EXPECT_TRUE(MustParse("/a eq null")->value.is_null());
}

TEST(FilterParseTest, DecodesEveryStringEscape) {
  auto e = MustParse(R"(/a eq "q\" b\\ s\/ \b\f\n\r\t \u00e9 \u20AC \ud83d\ude00 \u0000")");
  std::string expected =
      std::string("q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 ") +
      std::string(1, '\0');
  EXPECT_EQ(e->value.get<std::string>(), expected);
  // Raw UTF-8 passes through unchanged.
  EXPECT_EQ(MustParse("/a eq \"caf\xc3\xa9\"")->value, json("caf\xc3\xa9"));
}

TEST(FilterParseTest, DecodesPointerEscapesAndNesting) {
  EXPECT_EQ(MustParse("/attributes/region eq \"eu\"")->path,
            (std::vector<std::string>{"attributes", "region"}));
  EXPECT_EQ(MustParse("/body/customer/id eq 7")->path,
            (std::vector<std::string>{"body", "customer", "id"}));
  EXPECT_EQ(MustParse("/a~1b/c~0d/~01 pr")->path, (std::vector<std::string>{"a/b", "c~d", "~1"}));
}

TEST(FilterParseTest, AcceptsBareFieldNamesAsTopLevelPointers) {
  EXPECT_EQ(MustParse("reason eq \"x\"")->path, std::vector<std::string>{"reason"});
  EXPECT_EQ(MustParse("attributes/region pr")->path,
            (std::vector<std::string>{"attributes", "region"}));
  auto e = MustParse("(origin eq \"a\" and reason sw \"max\")");
  ASSERT_EQ(e->op, Op::kAnd);
  EXPECT_EQ(e->children[1]->path, std::vector<std::string>{"reason"});
}

TEST(FilterParseTest, NeedsWhitespaceOnlyBetweenWords) {
  auto e = MustParse("(/a eq\"x\"and(/b pr))or!(/c pr)");
  ASSERT_EQ(e->op, Op::kOr);
  EXPECT_EQ(e->children[0]->op, Op::kAnd);
  EXPECT_EQ(e->children[1]->op, Op::kNot);
  EXPECT_EQ(MustParse("\t/a\neq\r\n1 ")->op, Op::kEq);
  auto n = MustParse("/a pr and!/b pr");
  ASSERT_EQ(n->op, Op::kAnd);
  EXPECT_EQ(n->children[1]->op, Op::kNot);
  // Inside a pointer '!' is an ordinary character.
  EXPECT_EQ(MustParse("/a!b pr")->path, std::vector<std::string>{"a!b"});
}

TEST(FilterParseTest, KeywordsAreCaseSensitive) {
  EXPECT_FALSE(ParseFilter("/a EQ 1").ok());
  EXPECT_FALSE(ParseFilter("/a pr AND /b pr").ok());
  EXPECT_FALSE(ParseFilter("/a pr Or /b pr").ok());
  EXPECT_FALSE(ParseFilter("/a eq TRUE").ok());
  EXPECT_FALSE(ParseFilter("/a eq Null").ok());
  // "TRUE" is not the constant, so it reads as a field that lacks an operator.
  EXPECT_FALSE(ParseFilter("TRUE").ok());
}

struct BadFilter {
  std::string text;
  size_t position;
  std::string says;  // a part of the message after the position
};

TEST(FilterParseTest, ReportsWhereAndWhatForMalformedFilters) {
  const std::vector<BadFilter> cases = {
      {"", 0, "expected a comparison, 'true', 'false', '!' or '(', found the end of the filter"},
      {"   ", 3, "found the end of the filter"},
      {"(/a pr", 6, "expected 'and', 'or' or ')' to close the '(' at position 0, found the end"},
      {"((/a pr) and /b pr", 18, "to close the '(' at position 0"},
      {"/a pr)", 5, "expected 'and', 'or' or the end of the filter, found ')'"},
      {"()", 1, "found ')'"},
      {"/reason \"x\"", 8,
       "expected an operator (eq co sw lt le gt ge pr) after '/reason', found '\"'"},
      {"/reason", 7, "after '/reason', found the end of the filter"},
      {"reason is \"x\"", 7,
       "expected an operator (eq co sw lt le gt ge pr) after 'reason', "
       "found 'is'"},
      {"/reason eq", 10,
       "expected a value (a JSON string in double quotes, a number, true, "
       "false or null) after 'eq', found the end of the filter"},
      {"/reason eq )", 11, "after 'eq', found ')'"},
      {"/reason eq timeout", 11, "after 'eq', found 'timeout'"},
      {"/reason eq 'timeout'", 11, "found ''timeout''"},
      {"/n gt 01", 6, "found '01'"},
      {"/n gt 1.", 6, "found '1.'"},
      {"/n gt +1", 6, "found '+1'"},
      {"/n gt 1e400", 6, "the number '1e400' is out of range"},
      {"/reason eq \"abc", 11, "expected a closing '\"' for the string that starts here"},
      {"/reason eq \"a\\x\"", 13,
       "expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t "
       "\\uXXXX) in a string, found '\\x'"},
      {"/reason eq \"a\\", 13, "found the end of the filter"},
      {"/reason eq \"\\u12G4\"", 12, "found '\\u12G4'"},
      {"/reason eq \"\\ud800\"", 12, "low surrogate after the high surrogate '\\ud800'"},
      {"/reason eq \"\\udc00\"", 12, "expected a high surrogate"},
      {"/reason eq \"a\nb\"", 13, "control character '\\x0A'"},
      {"/a pr /b pr", 6, "expected 'and', 'or' or the end of the filter, found '/b'"},
      {"/a pr xor /b pr", 6, "found 'xor'"},
      {"/a pr and", 9, "found the end of the filter"},
      {"/a pr and and", 13, "after 'and', found the end of the filter"},
      {"!", 1, "found the end of the filter"},
      {"/a pr andnot /b pr", 6, "found 'andnot'"},
      {"/a//b pr", 3, "expected a field name in the pointer '/a//b', found an empty one"},
      {"/ pr", 1, "found an empty one"},
      {"a/ pr", 2, "found an empty one"},
      {"/a~2 pr", 2, "expected '~0' or '~1' in the pointer '/a~2', found '~2'"},
      {"/a~ pr", 2, "found '~'"},
      {"/a eq \"\xff\"", 7, "not valid UTF-8"},
      {"/a eq \"\xc0\xaf\"", 7, "not valid UTF-8"},
      {Repeat("(", 33) + "/a pr" + Repeat(")", 33), 32, "nests deeper than the limit of 32 levels"},
      {Repeat("!", 33) + "/a pr", 32, "nests deeper than the limit of 32 levels"},
      {Repeat("!(", 17) + "/a pr" + Repeat(")", 17), 32, "limit of 32 levels"},
      {"/" + std::string(4093, 'a') + " pr", 4096, "longer than the limit of 4096 bytes"},
      {Repeat("/a pr and ", 256) + "/b pr", 2560, "more comparisons than the limit of 256"},
  };
  for (const BadFilter& c : cases) {
    auto r = ParseFilter(c.text);
    std::string shown = c.text.size() > 60 ? c.text.substr(0, 60) + "..." : c.text;
    ASSERT_FALSE(r.ok()) << shown;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidQuery) << shown;
    std::string prefix = "_queryFilter: at position " + std::to_string(c.position) + ": ";
    EXPECT_EQ(r.status().message().rfind(prefix, 0), 0u)
        << shown << "\n  got: " << r.status().message() << "\n  want prefix: " << prefix;
    EXPECT_NE(r.status().message().find(c.says), std::string::npos)
        << shown << "\n  got: " << r.status().message() << "\n  want: " << c.says;
  }
}

TEST(FilterParseTest, AcceptsFiltersExactlyAtTheLimits) {
  EXPECT_TRUE(ParseFilter(Repeat("(", 32) + "/a pr" + Repeat(")", 32)).ok());
  EXPECT_TRUE(ParseFilter(Repeat("!", 32) + "/a pr").ok());
  std::string longest = "/" + std::string(4092, 'a') + " pr";
  ASSERT_EQ(longest.size(), kMaxFilterBytes);
  EXPECT_TRUE(ParseFilter(longest).ok());
  EXPECT_TRUE(ParseFilter(Repeat("/a pr and ", 255) + "/b pr").ok());
  // true and false are not comparisons.
  EXPECT_TRUE(ParseFilter(Repeat("/a pr and ", 256) + Repeat("true and ", 100) + "false").ok());
}

TEST(FilterParseTest, ErrorMessagesStayPrintableAscii) {
  auto r = ParseFilter("/a \x01\x7f\xc3\xa9" + std::string(40, 'x') + " 1");
  ASSERT_FALSE(r.ok());
  for (char c : r.status().message()) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << r.status().message();
  }
  EXPECT_NE(r.status().message().find("'\\x01\\x7F\\xC3\\xA9xxx"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("...'"), std::string::npos) << r.status().message();
}

// ---- evaluation ----

class FilterEvaluateTest : public ::testing::Test {
 protected:
  const json doc_ = json::parse(R"({
    "id": "m1",
    "origin": "orders",
    "reason": "max-deliveries",
    "deadLetterQueue": "orders.dlq",
    "cause": "Timeout talking to payments",
    "deliveryCount": 5,
    "ratio": 0.5,
    "flag": true,
    "idempotencyKey": null,
    "deadLetteredAt": "2026-11-22T10:00:00.123Z",
    "attributes": {"region": "eu-west", "a/b": "slash", "c~d": "tilde"},
    "tags": ["urgent", "billing"],
    "scores": [1, 5, 9],
    "empty": [],
    "nested": [["x"]],
    "body": {"customer": {"id": 42, "name": "Ada"}}
  })");
};

TEST_F(FilterEvaluateTest, ConstantsAndPresence) {
  EXPECT_TRUE(Matches("true", doc_));
  EXPECT_FALSE(Matches("false", doc_));
  EXPECT_TRUE(Matches("/origin pr", doc_));
  EXPECT_TRUE(Matches("/flag pr", doc_));
  EXPECT_TRUE(Matches("/empty pr", doc_));
  EXPECT_TRUE(Matches("/body/customer pr", doc_));
  EXPECT_FALSE(Matches("/idempotencyKey pr", doc_)) << "null is not present";
  EXPECT_FALSE(Matches("/missing pr", doc_));
  EXPECT_FALSE(Matches("/body/missing/deeper pr", doc_));
  EXPECT_FALSE(Matches("/origin/deeper pr", doc_)) << "a string has no children";
}

TEST_F(FilterEvaluateTest, EqualityIsExactAndTyped) {
  EXPECT_TRUE(Matches("/origin eq \"orders\"", doc_));
  EXPECT_TRUE(Matches("origin eq \"orders\"", doc_));
  EXPECT_FALSE(Matches("/origin eq \"Orders\"", doc_)) << "case-sensitive";
  EXPECT_FALSE(Matches("/origin eq \"order\"", doc_));
  EXPECT_TRUE(Matches("/deliveryCount eq 5", doc_));
  EXPECT_TRUE(Matches("/deliveryCount eq 5.0", doc_)) << "numbers compare numerically";
  EXPECT_TRUE(Matches("/deliveryCount eq 0.5e1", doc_));
  EXPECT_FALSE(Matches("/deliveryCount eq \"5\"", doc_)) << "a string is not a number";
  EXPECT_TRUE(Matches("/ratio eq 0.5", doc_));
  EXPECT_TRUE(Matches("/flag eq true", doc_));
  EXPECT_FALSE(Matches("/flag eq 1", doc_));
  EXPECT_TRUE(Matches("/idempotencyKey eq null", doc_));
  EXPECT_FALSE(Matches("/missing eq null", doc_)) << "missing is not null";
  EXPECT_FALSE(Matches("/body eq null", doc_));
  EXPECT_TRUE(Matches("/body/customer/id eq 42", doc_));
  EXPECT_TRUE(Matches("/attributes/a~1b eq \"slash\"", doc_));
  EXPECT_TRUE(Matches("/attributes/c~0d eq \"tilde\"", doc_));
}

TEST_F(FilterEvaluateTest, MissingValuesFailEveryComparison) {
  for (const char* op : {"eq", "co", "sw", "lt", "le", "gt", "ge"}) {
    EXPECT_FALSE(Matches(std::string("/missing ") + op + " \"\"", doc_)) << op;
    EXPECT_FALSE(Matches(std::string("/missing ") + op + " 0", doc_)) << op;
    EXPECT_TRUE(Matches(std::string("!(/missing ") + op + " 0)", doc_)) << op;
  }
}

TEST_F(FilterEvaluateTest, ContainsAndStartsWithAreForStringsOnly) {
  EXPECT_TRUE(Matches("/cause co \"talking\"", doc_));
  EXPECT_TRUE(Matches("/cause co \"\"", doc_));
  EXPECT_FALSE(Matches("/cause co \"TALKING\"", doc_));
  EXPECT_TRUE(Matches("/cause sw \"Timeout\"", doc_));
  EXPECT_FALSE(Matches("/cause sw \"talking\"", doc_));
  EXPECT_FALSE(Matches("/cause sw \"Timeout talking to payments and more\"", doc_));
  EXPECT_FALSE(Matches("/deliveryCount co 5", doc_));
  EXPECT_FALSE(Matches("/deliveryCount sw \"5\"", doc_));
  EXPECT_FALSE(Matches("/body co \"Ada\"", doc_)) << "objects are not searched";
}

TEST_F(FilterEvaluateTest, ArraysMatchWhenAnyElementDoes) {
  EXPECT_TRUE(Matches("/tags eq \"billing\"", doc_));
  EXPECT_FALSE(Matches("/tags eq \"bill\"", doc_));
  EXPECT_TRUE(Matches("/tags co \"ill\"", doc_));
  EXPECT_TRUE(Matches("/tags sw \"urg\"", doc_));
  EXPECT_TRUE(Matches("/scores eq 5", doc_));
  EXPECT_TRUE(Matches("/scores gt 8", doc_));
  EXPECT_TRUE(Matches("/scores lt 2", doc_));
  EXPECT_FALSE(Matches("/scores gt 9", doc_));
  EXPECT_FALSE(Matches("/empty eq 1", doc_));
  EXPECT_FALSE(Matches("/nested eq \"x\"", doc_)) << "one level only";
  EXPECT_TRUE(Matches("/tags/0 eq \"urgent\"", doc_)) << "an index selects one element";
  EXPECT_FALSE(Matches("/tags/1 eq \"urgent\"", doc_));
  EXPECT_FALSE(Matches("/tags/01 pr", doc_));
  EXPECT_FALSE(Matches("/tags/2 pr", doc_));
  EXPECT_FALSE(Matches("/tags/- pr", doc_));
}

TEST_F(FilterEvaluateTest, OrderingIsNumericOrByBytesAndOtherwiseFalse) {
  EXPECT_TRUE(Matches("/deliveryCount gt 4", doc_));
  EXPECT_TRUE(Matches("/deliveryCount ge 5", doc_));
  EXPECT_FALSE(Matches("/deliveryCount gt 5", doc_));
  EXPECT_TRUE(Matches("/deliveryCount le 5.0", doc_));
  EXPECT_TRUE(Matches("/deliveryCount lt 10", doc_)) << "numerically, not as text";
  EXPECT_TRUE(Matches("/ratio lt 1", doc_));
  EXPECT_TRUE(Matches("/ratio gt -1", doc_));
  EXPECT_TRUE(Matches("/origin gt \"order\"", doc_));
  EXPECT_TRUE(Matches("/origin lt \"ordersa\"", doc_));
  EXPECT_TRUE(Matches("/origin gt \"Orders\"", doc_)) << "by bytes: 'o' > 'O'";
  EXPECT_TRUE(Matches("/origin le \"orders\"", doc_));
  EXPECT_FALSE(Matches("/origin lt \"orders\"", doc_));
  // Mismatched types are never ordered, either way round.
  EXPECT_FALSE(Matches("/deliveryCount gt \"1\"", doc_));
  EXPECT_FALSE(Matches("/deliveryCount lt \"9\"", doc_));
  EXPECT_FALSE(Matches("/origin gt 1", doc_));
  EXPECT_FALSE(Matches("/origin lt 1", doc_));
  EXPECT_FALSE(Matches("/flag gt false", doc_));
  EXPECT_FALSE(Matches("/idempotencyKey ge null", doc_));
  EXPECT_FALSE(Matches("/body gt 0", doc_));
  EXPECT_TRUE(Matches("!(/origin gt 1)", doc_));
}

TEST_F(FilterEvaluateTest, TimestampsInOneFormatCompareInTimeOrder) {
  EXPECT_TRUE(Matches("/deadLetteredAt ge \"2026-11-22T10:00:00.123Z\"", doc_));
  EXPECT_FALSE(Matches("/deadLetteredAt gt \"2026-11-22T10:00:00.123Z\"", doc_));
  EXPECT_TRUE(Matches("/deadLetteredAt lt \"2026-11-22T10:00:00.124Z\"", doc_));
  EXPECT_TRUE(Matches("/deadLetteredAt gt \"2026-11-22T09:59:59.999Z\"", doc_));
  EXPECT_TRUE(Matches("/deadLetteredAt lt \"2026-12-01T00:00:00.000Z\"", doc_));
  EXPECT_TRUE(Matches("/deadLetteredAt ge \"2026-11-22\"", doc_)) << "a date prefix works too";
  EXPECT_TRUE(
      Matches("/deadLetteredAt ge \"2026-11-01T00:00:00.000Z\" and "
              "/deadLetteredAt lt \"2026-11-23T00:00:00.000Z\"",
              doc_));
}

TEST_F(FilterEvaluateTest, CombinesWithAndOrNot) {
  EXPECT_TRUE(Matches("/origin eq \"orders\" and /deliveryCount ge 5", doc_));
  EXPECT_FALSE(Matches("/origin eq \"orders\" and /deliveryCount gt 5", doc_));
  EXPECT_TRUE(Matches("/origin eq \"x\" or /deliveryCount eq 5", doc_));
  EXPECT_FALSE(Matches("/origin eq \"x\" or /deliveryCount eq 6", doc_));
  EXPECT_TRUE(Matches("!/origin eq \"x\"", doc_));
  EXPECT_FALSE(Matches("!!/origin eq \"x\"", doc_));
  EXPECT_TRUE(Matches("/origin eq \"x\" or /reason eq \"y\" or /flag eq true", doc_));
  // 'and' binds tighter: false or (true and true).
  EXPECT_TRUE(Matches("false or /flag pr and /origin pr", doc_));
  EXPECT_FALSE(Matches("(false or /flag pr) and /missing pr", doc_));
  EXPECT_TRUE(Matches("!(/origin eq \"x\" or /reason eq \"y\")", doc_));
}

TEST(FilterNumbersTest, ComparesLargeAndMixedNumbersExactly) {
  json doc = {{"umax", 18446744073709551615ull},
              {"above53", 9007199254740993LL},
              {"neg", -9223372036854775807LL - 1}};
  // nlohmann's own == would cast 2^64-1 to -1 and call them equal.
  EXPECT_FALSE(Matches("/umax eq -1", doc));
  EXPECT_TRUE(Matches("/umax eq 18446744073709551615", doc));
  EXPECT_TRUE(Matches("/umax gt 9223372036854775807", doc));
  EXPECT_TRUE(Matches("/umax lt 18446744073709551616", doc)) << "2^64 is a float, and larger";
  // 2^53 + 1 is not representable as a double; a lossy comparison would call these equal.
  EXPECT_FALSE(Matches("/above53 eq 9007199254740992.0", doc));
  EXPECT_TRUE(Matches("/above53 gt 9007199254740992.0", doc));
  EXPECT_TRUE(Matches("/above53 eq 9007199254740993", doc));
  EXPECT_TRUE(Matches("/neg lt -9223372036854775807", doc));
  EXPECT_TRUE(Matches("/neg eq -9223372036854775808", doc));
  EXPECT_TRUE(Matches("/neg gt -9.3e18", doc));
  EXPECT_TRUE(Matches("/neg lt 0.5", doc));

  EXPECT_EQ(CompareNumbers(json(1), json(1.0)), 0);
  EXPECT_EQ(CompareNumbers(json(2u), json(-3)), 1);
  EXPECT_EQ(CompareNumbers(json(-3), json(2u)), -1);
  EXPECT_EQ(CompareNumbers(json(1.5), json(1)), 1);
  EXPECT_EQ(CompareNumbers(json(1), json(1.5)), -1);
  EXPECT_EQ(CompareNumbers(json(-1), json(-0.5)), -1);
  EXPECT_EQ(CompareNumbers(json(0u), json(-0.5)), 1);
  EXPECT_EQ(CompareNumbers(json(std::nan("")), json(-1e308)), -1);
  EXPECT_EQ(CompareNumbers(json(std::nan("")), json(std::nan(""))), 0);
}

// ---- canonical text ----

TEST(FilterToStringTest, RoundTripsToTheCanonicalForm) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"true", "true"},
      {"false", "false"},
      {"!true", "!true"},
      {"reason eq \"x\"", "/reason eq \"x\""},
      {"  /reason   eq\t\"x\" ", "/reason eq \"x\""},
      {"/a pr or /b pr and /c pr", "/a pr or /b pr and /c pr"},
      {"(/a pr and /b pr) or /c pr", "/a pr and /b pr or /c pr"},
      {"(/a pr or /b pr) and /c pr", "(/a pr or /b pr) and /c pr"},
      {"/a pr and (/b pr and /c pr)", "/a pr and (/b pr and /c pr)"},
      {"/a pr or (/b pr or /c pr)", "/a pr or (/b pr or /c pr)"},
      {"((/a pr))", "/a pr"},
      {"!(/a pr)", "!/a pr"},
      {"!(!(/a pr))", "!!/a pr"},
      {"!(/a pr and /b pr)", "!(/a pr and /b pr)"},
      {"!(/a pr or /b pr) and !/c pr", "!(/a pr or /b pr) and !/c pr"},
      {"(/a eq\"x\"and(/b pr))", "/a eq \"x\" and /b pr"},
      {"/a~1b/c~0d co \"v\"", "/a~1b/c~0d co \"v\""},
      {"/a eq \"\\u00e9\\n\\\"\\\\\\/\"", "/a eq \"\xc3\xa9\\n\\\"\\\\/\""},
      {"/a eq \"\\u0001\"", "/a eq \"\\u0001\""},
      {"/a eq \"\\ud83d\\ude00\"", "/a eq \"\xf0\x9f\x98\x80\""},
      {"/a sw \"\"", "/a sw \"\""},
      {"/a lt 42", "/a lt 42"},
      {"/a le -0", "/a le 0"},
      {"/a gt 1E5", "/a gt 1e5"},
      {"/a gt 1E15", "/a gt 1e15"},
      {"/a ge 100000.0", "/a ge 1e5"},
      {"/a ge 123456.0", "/a ge 123456.0"},
      {"/a ge 0.1", "/a ge 0.1"},
      {"/a ge -0.0", "/a ge -0.0"},
      {"/a ge 1.5e-7", "/a ge 1.5e-7"},
      {"/a ge 2.50", "/a ge 2.5"},
      {"/a eq 18446744073709551615", "/a eq 18446744073709551615"},
      {"/a eq 18446744073709551616", "/a eq 18446744073709551616.0"},
      {"/a eq 1.7976931348623157e308", "/a eq 1.7976931348623157e308"},
      {"/a eq 5e-324", "/a eq 5e-324"},
      {"/a eq true", "/a eq true"},
      {"/a eq null", "/a eq null"},
  };
  for (const auto& [input, canonical] : cases) {
    auto e = MustParse(input);
    ASSERT_TRUE(e) << input;
    std::string text = ToString(*e);
    EXPECT_EQ(text, canonical) << input;
    auto again = MustParse(text);
    ASSERT_TRUE(again) << text;
    EXPECT_TRUE(SameTree(*e, *again)) << input << " -> " << text;
    EXPECT_EQ(ToString(*again), text) << input;
  }
}

TEST(FilterToStringTest, RoundTripsFiltersAtTheDepthAndComparisonLimits) {
  for (const std::string& input :
       {Repeat("(", 32) + "/a pr" + Repeat(")", 32), Repeat("!", 32) + "/a pr",
        Repeat("!(", 16) + "/a pr or /b pr" + Repeat(")", 16),
        Repeat("(/a pr or ", 32) + "/b pr" + Repeat(")", 32),
        Repeat("/a eq 1E5 and ", 255) + "/b pr"}) {
    auto e = MustParse(input);
    ASSERT_TRUE(e);
    auto again = MustParse(ToString(*e));
    ASSERT_TRUE(again) << ToString(*e).substr(0, 80);
    EXPECT_TRUE(SameTree(*e, *again));
  }
}

// The documented exception to the round trip: canonical text adds the '/' that bare names
// leave out (and spaces that compact text leaves out), so it can outgrow the length limit.
TEST(FilterToStringTest, CanonicalFormOfAFilterNearTheLengthLimitCanOutgrowIt) {
  std::string input = Repeat("aaaaaaaaaa pr and ", 227) + "a pr";
  ASSERT_LE(input.size(), kMaxFilterBytes);
  auto e = MustParse(input);
  std::string canonical = ToString(*e);
  EXPECT_EQ(canonical.size(), input.size() + 228);
  auto again = ParseFilter(canonical);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), ErrorCode::kInvalidQuery);
  EXPECT_NE(again.status().message().find("longer than the limit"), std::string::npos);
}

// ---- indexed constraints ----

TEST(ExtractIndexedTest, TakesEqualitiesAndTimeBoundsFromTheTopLevelConjunction) {
  auto e = MustParse(
      "/origin eq \"orders\" and /reason eq \"max-deliveries\" and (/group eq \"g1\" and "
      "/deadLetterQueue eq \"orders.dlq\") and /deadLetteredAt ge \"2026-01-01T00:00:00.000Z\" "
      "and /deadLetteredAt lt \"2026-02-01T00:00:00.000Z\" and /cause co \"timeout\"");
  IndexedConstraints c = ExtractIndexed(*e);
  EXPECT_EQ(c.origin, "orders");
  EXPECT_EQ(c.reason, "max-deliveries");
  EXPECT_EQ(c.group, "g1");
  EXPECT_EQ(c.dlq, "orders.dlq");
  EXPECT_EQ(c.since, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(c.until, "2026-02-01T00:00:00.000Z");
}

TEST(ExtractIndexedTest, TakesASingleComparisonAtTheRoot) {
  EXPECT_EQ(ExtractIndexed(*MustParse("origin eq \"orders\"")).origin, "orders");
  EXPECT_EQ(ExtractIndexed(*MustParse("(/reason eq \"expired\")")).reason, "expired");
}

TEST(ExtractIndexedTest, TakesNothingFromUnderOrOrNot) {
  for (const char* filter : {
           "/origin eq \"a\" or /reason eq \"b\"",
           "!(/origin eq \"a\")",
           "!/deadLetteredAt lt \"2026-01-01T00:00:00.000Z\"",
           "!(/origin eq \"a\" and /reason eq \"b\")",
           "/flag pr and (/origin eq \"a\" or /origin eq \"b\")",
           "(/origin eq \"a\" and /reason eq \"b\") or false",
       }) {
    IndexedConstraints c = ExtractIndexed(*MustParse(filter));
    EXPECT_FALSE(c.origin || c.reason || c.group || c.dlq || c.since || c.until) << filter;
  }
  IndexedConstraints mixed =
      ExtractIndexed(*MustParse("/origin eq \"a\" and (/reason eq \"b\" or /reason eq \"c\")"));
  EXPECT_EQ(mixed.origin, "a");
  EXPECT_FALSE(mixed.reason);
}

TEST(ExtractIndexedTest, IgnoresComparisonsThatCannotUseTheIndex) {
  for (const char* filter : {
           "/origin eq 5",
           "/origin co \"a\"",
           "/origin sw \"a\"",
           "/origin ge \"a\"",
           "/attributes/origin eq \"a\"",
           "/originx eq \"a\"",
           "/deadLetteredAt eq \"2026-01-01T00:00:00.000Z\"",
           "/deadLetteredAt ge 5",
           "/deadLetteredAt ge \"2026-01-01\"",
           "/deadLetteredAt ge \"2026-01-01T00:00:00Z\"",
           "/deadLetteredAt lt \"2026-01-01T00:00:00.000+00:00\"",
           "/deadLetteredAt lt \"2026-02-30T00:00:00.000Z\"",
           "/deadLetteredAt lt \"2026-13-01T00:00:00.000Z\"",
           "/deadLetteredAt lt \"2026-01-01T24:00:00.000Z\"",
           "/deadLetteredAt lt \"2026-01-01t00:00:00.000Z\"",
           "/deadLetteredAt le \"9999-12-31T23:59:59.999Z\"",
       }) {
    IndexedConstraints c = ExtractIndexed(*MustParse(filter));
    EXPECT_FALSE(c.origin || c.reason || c.group || c.dlq || c.since || c.until) << filter;
  }
}

TEST(ExtractIndexedTest, MakesExclusiveAndInclusiveBoundsExactToTheMillisecond) {
  auto bounds = [](const std::string& filter) {
    IndexedConstraints c = ExtractIndexed(*MustParse(filter));
    return std::make_pair(c.since.value_or("-"), c.until.value_or("-"));
  };
  EXPECT_EQ(bounds("/deadLetteredAt gt \"2026-01-01T00:00:00.000Z\""),
            std::make_pair(std::string("2026-01-01T00:00:00.001Z"), std::string("-")));
  EXPECT_EQ(bounds("/deadLetteredAt gt \"2024-12-31T23:59:59.999Z\"").first,
            "2025-01-01T00:00:00.000Z");
  EXPECT_EQ(bounds("/deadLetteredAt le \"2024-02-28T23:59:59.999Z\"").second,
            "2024-02-29T00:00:00.000Z");
  EXPECT_EQ(bounds("/deadLetteredAt le \"2023-02-28T23:59:59.999Z\"").second,
            "2023-03-01T00:00:00.000Z");
  EXPECT_EQ(bounds("/deadLetteredAt le \"2100-02-28T23:59:59.999Z\"").second,
            "2100-03-01T00:00:00.000Z");
  EXPECT_EQ(bounds("/deadLetteredAt le \"2000-02-28T23:59:59.999Z\"").second,
            "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(bounds("/deadLetteredAt le \"2026-04-30T10:59:59.999Z\"").second,
            "2026-04-30T11:00:00.000Z");
  // Several bounds combine to the tightest.
  EXPECT_EQ(bounds("/deadLetteredAt ge \"2026-01-01T00:00:00.000Z\" and "
                   "/deadLetteredAt gt \"2026-03-01T00:00:00.000Z\" and "
                   "/deadLetteredAt ge \"2026-02-01T00:00:00.000Z\" and "
                   "/deadLetteredAt lt \"2026-06-01T00:00:00.000Z\" and "
                   "/deadLetteredAt le \"2026-05-01T00:00:00.000Z\""),
            std::make_pair(std::string("2026-03-01T00:00:00.001Z"),
                           std::string("2026-05-01T00:00:00.001Z")));
}

TEST(ExtractIndexedTest, KeepsTheFirstOfConflictingEqualities) {
  IndexedConstraints c = ExtractIndexed(*MustParse("/origin eq \"a\" and /origin eq \"b\""));
  EXPECT_EQ(c.origin, "a");
}

// The contract that matters: the constraints never exclude a dead letter the filter matches.
TEST(ExtractIndexedTest, NeverExcludesAMatch) {
  std::vector<json> docs;
  for (const char* origin : {"a", "b"}) {
    for (const char* at :
         {"2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.001Z", "2025-12-31T23:59:59.999Z",
          "2026-01-01T00:00:00.002Z", "2026-06-01T00:00:00.000Z"}) {
      docs.push_back({{"origin", origin},
                      {"reason", "expired"},
                      {"group", "g"},
                      {"deadLetterQueue", "d"},
                      {"deadLetteredAt", at}});
    }
  }
  std::vector<std::string> filters;
  for (const char* op : {"eq", "lt", "le", "gt", "ge"}) {
    for (const char* at : {"2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.001Z"}) {
      std::string cmp = std::string("/deadLetteredAt ") + op + " \"" + at + "\"";
      filters.push_back(cmp);
      filters.push_back("/origin eq \"a\" and " + cmp);
      filters.push_back("(/reason eq \"expired\" and " + cmp + ") and /group eq \"g\"");
      filters.push_back("/origin eq \"b\" or " + cmp);
      filters.push_back("!(" + cmp + ") and /deadLetterQueue eq \"d\"");
    }
  }
  for (const std::string& filter : filters) {
    auto e = MustParse(filter);
    IndexedConstraints c = ExtractIndexed(*e);
    for (const json& doc : docs) {
      if (!Evaluate(*e, doc)) continue;
      std::string at = doc["deadLetteredAt"];
      EXPECT_TRUE(!c.origin || *c.origin == doc["origin"]) << filter;
      EXPECT_TRUE(!c.reason || *c.reason == doc["reason"]) << filter;
      EXPECT_TRUE(!c.group || *c.group == doc["group"]) << filter;
      EXPECT_TRUE(!c.dlq || *c.dlq == doc["deadLetterQueue"]) << filter;
      EXPECT_TRUE(!c.since || *c.since <= at) << filter << " dropped " << at;
      EXPECT_TRUE(!c.until || at < *c.until) << filter << " dropped " << at;
    }
  }
}

// ---- pointers ----

TEST(PointerTest, EncodesWhatItDecodes) {
  for (const char* p : {"/a", "/a/b", "/a~1b/~0", "/~01", "/x y"}) {
    auto path = DecodePointer(p, "_test");
    ASSERT_TRUE(path.ok()) << p;
    EXPECT_EQ(EncodePointer(*path), p);
  }
  EXPECT_EQ(EncodePointer(DecodePointer("a/b", "_test").value()), "/a/b");
}

TEST(PointerTest, ResolvesKeysAndArrayIndexes) {
  json doc = {{"a", {{"b", json::array({10, 20})}}}, {"", 1}};
  EXPECT_EQ(*ResolvePointer(doc, {"a", "b", "1"}), 20);
  EXPECT_EQ(ResolvePointer(doc, {}), &doc);
  EXPECT_EQ(ResolvePointer(doc, {"a", "b", "2"}), nullptr);
  EXPECT_EQ(ResolvePointer(doc, {"a", "b", "-1"}), nullptr);
  EXPECT_EQ(ResolvePointer(doc, {"a", "b", "99999999999999999999999"}), nullptr);
  EXPECT_EQ(ResolvePointer(doc, {"a", "c"}), nullptr);
}

}  // namespace
}  // namespace redrive::query
