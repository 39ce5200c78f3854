#include "query/fields.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace redrive::query {
namespace {

using nlohmann::json;
using Path = std::vector<std::string>;

void ExpectError(const Result<std::vector<Path>>& r, const std::string& param, size_t position,
                 const std::string& says, const std::string& input) {
  ASSERT_FALSE(r.ok()) << input;
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidQuery) << input;
  std::string prefix = param + ": at position " + std::to_string(position) + ": ";
  EXPECT_EQ(r.status().message().rfind(prefix, 0), 0u)
      << input << "\n  got: " << r.status().message() << "\n  want prefix: " << prefix;
  EXPECT_NE(r.status().message().find(says), std::string::npos)
      << input << "\n  got: " << r.status().message() << "\n  want: " << says;
}

std::string FieldList(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += (i ? ",f" : "f") + std::to_string(i);
  return out;
}

// ---- _fields ----

TEST(ParseFieldsTest, AcceptsPointersWithOrWithoutTheLeadingSlash) {
  auto r = ParseFields("id,/reason,attributes/region,/body/a~1b,c~0d");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, (std::vector<Path>{
                    {"id"}, {"reason"}, {"attributes", "region"}, {"body", "a/b"}, {"c~d"}}));
}

TEST(ParseFieldsTest, IgnoresSpacesAroundEntries) {
  auto r = ParseFields(" id , reason,  cause ");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, (std::vector<Path>{{"id"}, {"reason"}, {"cause"}}));
}

TEST(ParseFieldsTest, ReportsTheEntryAndPositionOfEachMistake) {
  ExpectError(ParseFields(""), "_fields", 0, "expected a field pointer, found the end", "''");
  ExpectError(ParseFields("id,,reason"), "_fields", 3, "expected a field pointer, found ','",
              "id,,reason");
  ExpectError(ParseFields("id,"), "_fields", 3, "found the end of the value", "id,");
  ExpectError(ParseFields("id,  ,x"), "_fields", 5, "found ','", "id,  ,x");
  ExpectError(ParseFields("id,a//b"), "_fields", 5, "found an empty one", "id,a//b");
  ExpectError(ParseFields("/"), "_fields", 1, "found an empty one", "/");
  ExpectError(ParseFields("id,a~x"), "_fields", 4, "expected '~0' or '~1'", "id,a~x");
  ExpectError(ParseFields(FieldList(65)), "_fields", FieldList(64).size() + 1,
              "more entries than the limit of 64", "65 fields");
  EXPECT_TRUE(ParseFields(FieldList(64)).ok());
}

class ProjectTest : public ::testing::Test {
 protected:
  std::vector<Path> Fields(std::string_view text) { return ParseFields(text).value(); }

  const json doc_ = json::parse(R"({
    "id": "m1",
    "reason": "expired",
    "cause": "boom",
    "attributes": {"region": "eu", "team": "pay"},
    "attempts": [{"at": "t1", "cause": "c1"}, {"at": "t2", "cause": "c2"}],
    "body": {"customer": {"id": 7, "name": "Ada"}}
  })");
};

TEST_F(ProjectTest, KeepsOnlyTheNamedPathsAndAlwaysTheId) {
  EXPECT_EQ(Project(doc_, Fields("reason")), json::parse(R"({"id":"m1","reason":"expired"})"));
  EXPECT_EQ(
      Project(doc_, Fields("attributes/region,body/customer/id")),
      json::parse(R"({"id":"m1","attributes":{"region":"eu"},"body":{"customer":{"id":7}}})"));
  EXPECT_EQ(Project(doc_, Fields("id")), json::parse(R"({"id":"m1"})"));
}

TEST_F(ProjectTest, LeavesOutMissingPaths) {
  EXPECT_EQ(Project(doc_, Fields("missing,attributes/missing,reason/deeper,attempts/5")),
            json::parse(R"({"id":"m1"})"));
  json no_id = {{"reason", "x"}};
  EXPECT_EQ(Project(no_id, Fields("cause")), json::object());
}

TEST_F(ProjectTest, KeepsArrayElementsAtTheirIndex) {
  EXPECT_EQ(Project(doc_, Fields("attempts/1/cause")),
            json::parse(R"({"id":"m1","attempts":[null,{"cause":"c2"}]})"));
  EXPECT_EQ(Project(doc_, Fields("attempts/0/at,attempts/1/at")),
            json::parse(R"({"id":"m1","attempts":[{"at":"t1"},{"at":"t2"}]})"));
}

TEST_F(ProjectTest, OverlappingPathsKeepTheWiderOne) {
  json whole = json::parse(R"({"id":"m1","attributes":{"region":"eu","team":"pay"}})");
  EXPECT_EQ(Project(doc_, Fields("attributes/region,attributes")), whole);
  EXPECT_EQ(Project(doc_, Fields("attributes,attributes/region")), whole);
}

TEST_F(ProjectTest, ReturnsTheWholeDocumentWithoutFields) {
  EXPECT_EQ(Project(doc_, {}), doc_);
  EXPECT_EQ(Project(json("scalar"), Fields("a")), json("scalar"));
}

// ---- _sortKeys ----

TEST(ParseSortKeysTest, ReadsSignsAndPointers) {
  auto r = ParseSortKeys("-deadLetteredAt,origin,+/attributes/region, -x");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].path, Path{"deadLetteredAt"});
  EXPECT_TRUE((*r)[0].descending);
  EXPECT_EQ((*r)[1].path, Path{"origin"});
  EXPECT_FALSE((*r)[1].descending);
  EXPECT_EQ((*r)[2].path, (Path{"attributes", "region"}));
  EXPECT_FALSE((*r)[2].descending);
  EXPECT_TRUE((*r)[3].descending);
  // Only the first sign is a sign: "--a" sorts descending by a field named "-a".
  auto dash = ParseSortKeys("--a");
  ASSERT_TRUE(dash.ok());
  EXPECT_EQ((*dash)[0].path, Path{"-a"});
}

TEST(ParseSortKeysTest, ReportsTheEntryAndPositionOfEachMistake) {
  auto expect = [](std::string_view text, size_t position, const std::string& says) {
    auto r = ParseSortKeys(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidQuery);
    std::string prefix = "_sortKeys: at position " + std::to_string(position) + ": ";
    EXPECT_EQ(r.status().message().rfind(prefix, 0), 0u) << text << ": " << r.status().message();
    EXPECT_NE(r.status().message().find(says), std::string::npos)
        << text << ": " << r.status().message();
  };
  expect("", 0, "expected a field pointer");
  expect("a,", 2, "found the end of the value");
  expect("a,-", 3, "expected a field pointer after '-', found none");
  expect("+", 1, "after '+'");
  expect("a,-b//c", 5, "found an empty one");
  expect("a,-b~", 4, "expected '~0' or '~1'");
  expect("a,b,c,d,e,f,g,h,i", 16, "more entries than the limit of 8");
  EXPECT_TRUE(ParseSortKeys("a,b,c,d,e,f,g,h").ok());
}

std::vector<std::string> SortedIds(std::vector<json> docs, std::string_view keys) {
  auto parsed = ParseSortKeys(keys);
  EXPECT_TRUE(parsed.ok()) << parsed.status().message();
  std::stable_sort(docs.begin(), docs.end(),
                   [&](const json& a, const json& b) { return SortLess(a, b, *parsed); });
  std::vector<std::string> ids;
  for (const json& d : docs) ids.push_back(d["id"]);
  return ids;
}

TEST(SortLessTest, SortsByEachKeyThenTheNext) {
  std::vector<json> docs = {
      {{"id", "1"}, {"origin", "b"}, {"deadLetteredAt", "2026-01-01T00:00:00.000Z"}},
      {{"id", "2"}, {"origin", "a"}, {"deadLetteredAt", "2026-01-02T00:00:00.000Z"}},
      {{"id", "3"}, {"origin", "a"}, {"deadLetteredAt", "2026-01-01T00:00:00.000Z"}},
      {{"id", "4"}, {"origin", "c"}, {"deadLetteredAt", "2026-01-02T00:00:00.000Z"}},
  };
  EXPECT_EQ(SortedIds(docs, "-deadLetteredAt,origin"),
            (std::vector<std::string>{"2", "4", "3", "1"}));
  EXPECT_EQ(SortedIds(docs, "origin,-deadLetteredAt"),
            (std::vector<std::string>{"2", "3", "1", "4"}));
  EXPECT_EQ(SortedIds(docs, "+deadLetteredAt,-origin"),
            (std::vector<std::string>{"1", "3", "4", "2"}));
}

TEST(SortLessTest, MissingSortsFirstAscendingAndLastDescending) {
  std::vector<json> docs = {
      {{"id", "has"}, {"n", 1}},
      {{"id", "missing"}},
      {{"id", "null"}, {"n", nullptr}},
  };
  EXPECT_EQ(SortedIds(docs, "n"), (std::vector<std::string>{"missing", "null", "has"}));
  EXPECT_EQ(SortedIds(docs, "-n"), (std::vector<std::string>{"has", "null", "missing"}));
}

TEST(SortLessTest, ComparesNumbersNumericallyAndStringsByBytes) {
  std::vector<json> numbers = {{{"id", "ten"}, {"n", 10}},
                               {{"id", "two"}, {"n", 2}},
                               {{"id", "half"}, {"n", 2.5}},
                               {{"id", "neg"}, {"n", -1}},
                               {{"id", "big"}, {"n", 18446744073709551615ull}}};
  EXPECT_EQ(SortedIds(numbers, "n"),
            (std::vector<std::string>{"neg", "two", "half", "ten", "big"}));
  std::vector<json> strings = {{{"id", "a"}, {"s", "a"}},
                               {{"id", "B"}, {"s", "B"}},
                               {{"id", "ab"}, {"s", "ab"}},
                               {{"id", "e"}, {"s", "\xc3\xa9"}}};
  EXPECT_EQ(SortedIds(strings, "s"), (std::vector<std::string>{"B", "a", "ab", "e"}));
}

TEST(SortLessTest, OrdersMixedTypesByKind) {
  std::vector<json> docs = {{{"id", "object"}, {"v", json::object()}},
                            {{"id", "string"}, {"v", "0"}},
                            {{"id", "array"}, {"v", json::array()}},
                            {{"id", "number"}, {"v", 99}},
                            {{"id", "true"}, {"v", true}},
                            {{"id", "false"}, {"v", false}},
                            {{"id", "null"}, {"v", nullptr}},
                            {{"id", "missing"}}};
  EXPECT_EQ(SortedIds(docs, "v"),
            (std::vector<std::string>{"missing", "null", "false", "true", "number", "string",
                                      "array", "object"}));
}

TEST(SortLessTest, IsAStrictWeakOrdering) {
  std::vector<json> docs = {json::object(),
                            {{"k", 1}},
                            {{"k", 1.0}},
                            {{"k", 9007199254740993LL}},
                            {{"k", 9007199254740992.0}},
                            {{"k", "1"}},
                            {{"k", json::array({1})}},
                            {{"k", json::array({2})}},
                            {{"k", std::nan("")}},
                            {{"k", -0.0}},
                            {{"k", 0}}};
  std::vector<SortKey> keys = ParseSortKeys("k").value();
  for (const json& a : docs) {
    EXPECT_FALSE(SortLess(a, a, keys)) << a;
    for (const json& b : docs) {
      if (SortLess(a, b, keys)) {
        EXPECT_FALSE(SortLess(b, a, keys)) << a << " " << b;
      }
      for (const json& c : docs) {
        if (SortLess(a, b, keys) && SortLess(b, c, keys)) {
          EXPECT_TRUE(SortLess(a, c, keys)) << a << " " << b << " " << c;
        }
        bool ab = !SortLess(a, b, keys) && !SortLess(b, a, keys);
        bool bc = !SortLess(b, c, keys) && !SortLess(c, b, keys);
        bool ac = !SortLess(a, c, keys) && !SortLess(c, a, keys);
        if (ab && bc) {
          EXPECT_TRUE(ac) << a << " " << b << " " << c;
        }
      }
    }
  }
}

}  // namespace
}  // namespace redrive::query
