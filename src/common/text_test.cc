#include "common/text.h"

#include <gtest/gtest.h>

namespace redrive {
namespace {

TEST(DurationTest, ParsesEveryUnit) {
  EXPECT_EQ(ParseDuration("250ms").value(), 250);
  EXPECT_EQ(ParseDuration("30s").value(), 30'000);
  EXPECT_EQ(ParseDuration("5m").value(), 300'000);
  EXPECT_EQ(ParseDuration("2h").value(), 7'200'000);
  EXPECT_EQ(ParseDuration("7d").value(), 604'800'000);
  EXPECT_EQ(ParseDuration("1500").value(), 1500);
  EXPECT_EQ(ParseDuration("0s").value(), 0);
}

TEST(DurationTest, RejectsMalformedAndHugeValues) {
  for (const char* bad :
       {"", "s", "-1s", "1.5s", "10y", "1 s", "99999999999999999999d", "36501d", "abc"}) {
    auto r = ParseDuration(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidDuration) << bad;
  }
}

TEST(DurationTest, FormatsInTheLargestExactUnit) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(90'000), "90s");
  EXPECT_EQ(FormatDuration(300'000), "5m");
  EXPECT_EQ(FormatDuration(1500), "1500ms");
  EXPECT_EQ(FormatDuration(86'400'000 * 4LL), "4d");
  for (DurationMs d : {1LL, 999LL, 61'000LL, 3'600'000LL}) {
    EXPECT_EQ(ParseDuration(FormatDuration(d)).value(), d);
  }
}

TEST(NameTest, AcceptsTheDocumentedSyntaxOnly) {
  EXPECT_TRUE(ValidateName("orders", "queue").ok());
  EXPECT_TRUE(ValidateName("a.b_c-9", "queue").ok());
  EXPECT_TRUE(ValidateName(std::string(80, 'x'), "queue").ok());
  for (std::string bad :
       {std::string(""), std::string(81, 'x'), std::string(".hidden"), std::string("-x"),
        std::string("a/b"), std::string("a b"), std::string("caf\xc3\xa9")}) {
    auto st = ValidateName(bad, "queue");
    EXPECT_EQ(st.code(), ErrorCode::kInvalidName) << bad;
  }
}

TEST(Utf8Test, ValidatesStrictly) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  // ASCII is checked eight bytes at a time: a bad byte at any offset is still found.
  for (size_t at = 0; at <= 20; ++at) {
    std::string s = std::string(at, 'a') + "\xff" + std::string(20 - at, 'b');
    EXPECT_FALSE(IsValidUtf8(s)) << at;
    s = std::string(at, 'a') + "\xe2\x82\xac" + std::string(20 - at, 'b');
    EXPECT_TRUE(IsValidUtf8(s)) << at;
    EXPECT_FALSE(IsValidUtf8(s.substr(0, at + 2))) << at;  // truncated at the end
  }
}

TEST(Base64Test, RoundTripsBytes) {
  for (std::string s : {std::string(""), std::string("a"), std::string("ab"), std::string("abc"),
                        std::string("\x00\xff\x10", 3)}) {
    auto enc = Base64Encode(s);
    auto dec = Base64Decode(enc);
    ASSERT_TRUE(dec.ok()) << enc;
    EXPECT_EQ(dec.value(), s);
  }
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
}

TEST(Base64Test, RejectsInvalidText) {
  for (const char* bad : {"abc", "ab$=", "a===x"}) {
    EXPECT_EQ(Base64Decode(bad).status().code(), ErrorCode::kInvalidBase64) << bad;
  }
}

TEST(Sha256Test, MatchesKnownDigest) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HmacSha256Test, MatchesRfc4231TestCase2) {
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(UlidTest, IsSortableByTimeAndUnique) {
  SeededRandom random(7);
  std::string a = NewUlid(1'000, random);
  std::string b = NewUlid(2'000, random);
  std::string c = NewUlid(2'000, random);
  EXPECT_EQ(a.size(), 26u);
  EXPECT_LT(a, b);
  EXPECT_NE(b, c);
  EXPECT_EQ(b.substr(0, 10), c.substr(0, 10));
}

TEST(TimeTest, ParsesWhatItFormats) {
  EXPECT_EQ(ParseTime("2023-11-14T22:13:20.123Z").value(), 1'700'000'000'123);
  EXPECT_EQ(ParseTime("2023-11-14T22:13:20Z").value(), 1'700'000'000'000);
  EXPECT_EQ(ParseTime(FormatTime(1'234'567'890'123)).value(), 1'234'567'890'123);
  for (const char* bad : {"", "2023-11-14", "2023-11-14T22:13:20", "2023-13-14T22:13:20Z",
                          "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20+01:00"}) {
    EXPECT_FALSE(ParseTime(bad).ok()) << bad;
  }
}

TEST(TimeTest, FormatsRfc3339WithMilliseconds) {
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTime(1'700'000'000'123), "2023-11-14T22:13:20.123Z");
}

}  // namespace
}  // namespace redrive
