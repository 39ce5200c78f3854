#include "push/signature.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "common/text.h"

namespace redrive::push {
namespace {

// The Standard Webhooks test vector, as published with the reference libraries.
TEST(SignatureTest, ReproducesTheStandardWebhooksTestVector) {
  Result<std::string> header =
      Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})",
           {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"});
  ASSERT_TRUE(header.ok()) << header.status().ToString();
  EXPECT_EQ(header.value(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

// The same signatures computed by Python's hmac, hashlib and base64, a second implementation
// that shares no code with ours. Arguments travel as hex, so no shell quoting is involved.
std::string PythonSign(const std::string& msg_id, int64_t timestamp, const std::string& body,
                       const std::vector<std::string>& secrets) {
  std::string command =
      "python3 -c 'import sys, hmac, hashlib, base64\n"
      "msg_id, ts, body = (bytes.fromhex(a) for a in sys.argv[1:4])\n"
      "sigs = []\n"
      "for s in sys.argv[4:]:\n"
      "    key = base64.b64decode(s[len(\"whsec_\"):], validate=True)\n"
      "    mac = hmac.new(key, msg_id + b\".\" + ts + b\".\" + body, hashlib.sha256).digest()\n"
      "    sigs.append(\"v1,\" + base64.b64encode(mac).decode())\n"
      "print(\" \".join(sigs), end=\"\")'";
  command += " " + HexEncode(msg_id) + " " + HexEncode(std::to_string(timestamp)) + " " +
             (body.empty() ? std::string("''") : HexEncode(body));
  for (const std::string& s : secrets) command += " " + s;  // whsec_ + base64: no shell metas
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  std::string out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "python3 failed (exit " + std::to_string(WEXITSTATUS(status)) + "): " + out;
  }
  return out;
}

TEST(SignatureTest, MatchesAnIndependentImplementationIncludingARotation) {
  SeededRandom random(7);
  std::string a = NewSecret(random);
  std::string b = NewSecret(random, kMinSecretBytes);
  std::string c = NewSecret(random, kMaxSecretBytes);
  std::string binary_body("\x00\xff\n.\x7f{\"a\":1}", 12);
  struct Case {
    std::string msg_id;
    int64_t timestamp;
    std::string body;
    std::vector<std::string> secrets;
  };
  std::vector<Case> cases = {
      {"msg_01HZY3", 1'700'000'000, R"({"type":"order.created","data":{"id":42}})", {a}},
      {"01J0ABCDEFGHJKMNPQRSTVWXYZ", 0, "", {b}},
      {"id.with.dots", 4'102'444'800, binary_body, {c}},
      // A rotation: the old and the new secret sign side by side.
      {"msg_rotation", 1'765'000'000, "hello, world", {a, c}},
      {"msg_three", 1'765'000'001, std::string(5000, 'x'), {c, b, a}},
  };
  for (const Case& k : cases) {
    Result<std::string> ours = Sign(k.msg_id, k.timestamp, k.body, k.secrets);
    ASSERT_TRUE(ours.ok()) << ours.status().ToString();
    EXPECT_EQ(ours.value(), PythonSign(k.msg_id, k.timestamp, k.body, k.secrets)) << k.msg_id;
  }
}

TEST(SignatureTest, ARotationSignsWithEachSecretInOrderSpaceSeparated) {
  SeededRandom random(1);
  std::string old_secret = NewSecret(random);
  std::string new_secret = NewSecret(random);
  std::string one = Sign("m", 1, "b", {old_secret}).value();
  std::string two = Sign("m", 1, "b", {new_secret}).value();
  EXPECT_NE(one, two);
  EXPECT_EQ(Sign("m", 1, "b", {old_secret, new_secret}).value(), one + " " + two);
}

TEST(SignatureTest, EveryPartOfTheSignedContentChangesTheSignature) {
  SeededRandom random(2);
  std::string s = NewSecret(random);
  std::string base = Sign("m1", 100, "body", {s}).value();
  EXPECT_NE(Sign("m2", 100, "body", {s}).value(), base);
  EXPECT_NE(Sign("m1", 101, "body", {s}).value(), base);
  EXPECT_NE(Sign("m1", 100, "bodY", {s}).value(), base);
  // The dots are separators: moving one across a boundary changes the content.
  EXPECT_NE(Sign("m1.1", 0, "body", {s}).value(), Sign("m1", 10, "body", {s}).value());
}

TEST(SignatureTest, NewSecretsParseBackToFreshKeysOfTheAskedLength) {
  SystemRandom random;
  std::string a = NewSecret(random);
  std::string b = NewSecret(random);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("whsec_", 0), 0u);
  Result<std::string> key = ParseSecret(a);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->size(), kNewSecretBytes);
  EXPECT_EQ(ParseSecret(NewSecret(random, 24)).value().size(), 24u);
  EXPECT_EQ(ParseSecret(NewSecret(random, 64)).value().size(), 64u);
}

// A 25-byte key whose last base64 character carries stray low bits: it decodes to the same
// bytes as the canonical text, so accepting it would give one key two spellings.
std::string NonCanonical() {
  std::string text = Base64Encode(std::string(25, 'k'));  // "...w=="
  text[text.size() - 3] = 'x';
  return "whsec_" + text;
}

TEST(SignatureTest, MalformedSecretsAreRefusedWithoutEchoingThem) {
  const std::string good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  ASSERT_TRUE(ParseSecret(good).ok());
  std::vector<std::string> bad = {
      "",
      "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",             // no prefix
      "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",       // prefix is case-sensitive
      "whsec_",                                       // no key
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",        // not a multiple of 4
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!",       // not base64
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ",      // trailing space
      "whsec_MfKQ9r8G-YqrTwjUPD8ILPZIo2LaLaSw",       // base64url, not base64
      "whsec_MfKQ9r8GKYqr=wjUPD8ILPZIo2LaLaSw",       // padding inside
      "whsec_" + Base64Encode(std::string(23, 'k')),  // key too short
      "whsec_" + Base64Encode(std::string(65, 'k')),  // key too long
      NonCanonical(),
  };
  for (const std::string& s : bad) {
    Result<std::string> key = ParseSecret(s);
    ASSERT_FALSE(key.ok()) << s;
    EXPECT_EQ(key.status().code(), ErrorCode::kInvalidArgument) << s;
    if (s.size() > 6) {
      EXPECT_EQ(key.status().message().find(s.substr(6)), std::string::npos)
          << key.status().message();
    }
  }
}

TEST(SignatureTest, SignRefusesNoSecretsAndNamesTheBadOneByPosition) {
  Result<std::string> none = Sign("m", 1, "b", {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), ErrorCode::kInvalidArgument);
  Result<std::string> second =
      Sign("m", 1, "b", {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_nope"});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(second.status().message().find("secret 2"), std::string::npos)
      << second.status().message();
}

}  // namespace
}  // namespace redrive::push
