#include "push/signature.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>

#include "common/text.h"

namespace redrive::push {

std::string NewSecret(Random& random, size_t bytes) {
  if (bytes < kMinSecretBytes || bytes > kMaxSecretBytes) std::abort();  // a programming error
  return std::string(kSecretPrefix) + Base64Encode(random.Bytes(bytes));
}

Result<std::string> ParseSecret(std::string_view secret) {
  auto bad = [](std::string why) {
    return Status(ErrorCode::kInvalidArgument, "signing secret " + why);
  };
  if (secret.substr(0, kSecretPrefix.size()) != kSecretPrefix) {
    return bad("must start with " + std::string(kSecretPrefix));
  }
  std::string_view encoded = secret.substr(kSecretPrefix.size());
  Result<std::string> key = Base64Decode(encoded);
  // Base64Decode tolerates some non-canonical texts ('=' inside, stray bits in the last
  // character); a secret has exactly one spelling, so that two texts never name one key.
  if (!key.ok() || Base64Encode(key.value()) != encoded) {
    return bad("is not whsec_ followed by padded base64");
  }
  if (key->size() < kMinSecretBytes || key->size() > kMaxSecretBytes) {
    return bad("must hold " + std::to_string(kMinSecretBytes) + " to " +
               std::to_string(kMaxSecretBytes) + " key bytes, not " + std::to_string(key->size()));
  }
  return std::move(key).value();
}

std::string SignWithKey(std::string_view key, std::string_view msg_id, int64_t timestamp_seconds,
                        std::string_view body) {
  std::string content;
  std::string timestamp = std::to_string(timestamp_seconds);
  content.reserve(msg_id.size() + timestamp.size() + body.size() + 2);
  content.append(msg_id).append(".").append(timestamp).append(".").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &mac_len);
  return "v1," + Base64Encode(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

Result<std::string> Sign(std::string_view msg_id, int64_t timestamp_seconds, std::string_view body,
                         const std::vector<std::string>& secrets) {
  if (secrets.empty()) return Status(ErrorCode::kInvalidArgument, "no signing secret");
  std::string header;
  for (size_t i = 0; i < secrets.size(); ++i) {
    Result<std::string> key = ParseSecret(secrets[i]);
    if (!key.ok()) {
      return Status(ErrorCode::kInvalidArgument,
                    "secret " + std::to_string(i + 1) + ": " + key.status().message());
    }
    if (i > 0) header += ' ';
    header += SignWithKey(key.value(), msg_id, timestamp_seconds, body);
  }
  return header;
}

}  // namespace redrive::push
