#include "engine/failure_group.h"

#include <gtest/gtest.h>

namespace redrive::engine {
namespace {

TEST(FailureGroupTest, SameFailureWithDifferentValuesSharesASignature) {
  std::vector<std::string> causes = {
      "POST https://hooks.example.com/orders/48213 failed: HTTP 503 after 30012 ms",
      "POST https://hooks.example.com/orders/99120 failed: HTTP 503 after 29876 ms",
  };
  EXPECT_EQ(NormalizeCause(causes[0]), NormalizeCause(causes[1]));
  EXPECT_EQ(SignatureOf("orders", "max-deliveries", causes[0]).group_id,
            SignatureOf("orders", "max-deliveries", causes[1]).group_id);
}

TEST(FailureGroupTest, StatusCodesKeepFailuresApart) {
  EXPECT_NE(NormalizeCause("HTTP 503 from upstream"), NormalizeCause("HTTP 400 from upstream"));
}

TEST(FailureGroupTest, ReplacesTheVaryingParts) {
  EXPECT_EQ(NormalizeCause("field 'email' of user 'jdoe' is invalid"),
            "field '<str>' of user '<str>' is invalid");
  EXPECT_EQ(NormalizeCause("token expired at 2026-11-20T10:15:00.123Z"), "token expired at <time>");
  EXPECT_EQ(NormalizeCause("tx 3f2b1c9a-77aa-4c1b-9d7e-0123456789ab rolled back"),
            "tx <uuid> rolled back");
  EXPECT_EQ(NormalizeCause("message 01M80GCHNNV9WHCM6ZYT6QMXZ6 refused"), "message <id> refused");
  EXPECT_EQ(NormalizeCause("checksum deadbeef1234 mismatch"), "checksum <hex> mismatch");
  EXPECT_EQ(NormalizeCause("took 1234.56 ms"), "took <n> ms");
  EXPECT_EQ(NormalizeCause("user-48213 not found"), "<id> not found");
  EXPECT_EQ(NormalizeCause("  many   spaces\n\tand lines "), "many spaces and lines");
}

TEST(FailureGroupTest, OriginAndReasonArePartOfTheGroup) {
  auto a = SignatureOf("orders", "max-deliveries", "boom");
  auto b = SignatureOf("billing", "max-deliveries", "boom");
  auto c = SignatureOf("orders", "rejected", "boom");
  EXPECT_NE(a.group_id, b.group_id);
  EXPECT_NE(a.group_id, c.group_id);
  EXPECT_EQ(a.group_id.size(), 16u);
  EXPECT_EQ(a.text, "orders | max-deliveries | boom");
}

TEST(FailureGroupTest, SignatureIsBounded) {
  std::string huge(100'000, 'x');
  EXPECT_LE(NormalizeCause(huge).size(), kMaxSignatureCause);
  EXPECT_LE(NormalizeCause(std::string(5000, '\'')).size(), kMaxSignatureCause);
}

}  // namespace
}  // namespace redrive::engine
