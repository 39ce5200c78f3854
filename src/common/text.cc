#include "common/text.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <charconv>
#include <cstring>
#include <ctime>

namespace redrive {

Result<DurationMs> ParseDuration(std::string_view text) {
  auto bad = [&] {
    return Status(ErrorCode::kInvalidDuration,
                  "'" + std::string(text.substr(0, 40)) + "' is not a duration like 30s");
  };
  if (text.empty() || text.size() > 24) return bad();
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return bad();
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, n);
  if (ec != std::errc()) return bad();
  std::string_view unit = text.substr(digits);
  uint64_t mult;
  if (unit.empty() || unit == "ms") {
    mult = 1;
  } else if (unit == "s") {
    mult = 1000;
  } else if (unit == "m") {
    mult = 60'000;
  } else if (unit == "h") {
    mult = 3'600'000;
  } else if (unit == "d") {
    mult = 86'400'000;
  } else {
    return bad();
  }
  if (n > static_cast<uint64_t>(kMaxDuration) / mult) return bad();
  return static_cast<DurationMs>(n * mult);
}

std::string FormatDuration(DurationMs d) {
  if (d == 0) return "0s";
  struct Unit {
    DurationMs ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  for (const auto& u : kUnits) {
    if (d % u.ms == 0) return std::to_string(d / u.ms) + u.name;
  }
  return std::to_string(d) + "ms";
}

Status ValidateName(std::string_view name, std::string_view what) {
  auto bad = [&](const std::string& why) {
    return Status(ErrorCode::kInvalidName, std::string(what) + " name " + why);
  };
  if (name.empty()) return bad("is empty");
  if (name.size() > 80) return bad("is longer than 80 characters");
  if (name[0] == '.' || name[0] == '-') return bad("must not start with '.' or '-'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return bad("may contain only letters, digits, '.', '_' and '-'");
  }
  return Status::Ok();
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0, n = s.size();
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < n) {
    // ASCII eight bytes at a time: message bodies are mostly ASCII, and this runs over every
    // body a receive answers with.
    while (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  auto bad = [] { return Status(ErrorCode::kInvalidBase64, "body is not valid base64"); };
  if (text.size() % 4 != 0) return bad();
  for (char c : text) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '=';
    if (!ok) return bad();
  }
  std::string out(3 * (text.size() / 4), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return bad();
  // EVP_DecodeBlock keeps the bytes that padding stands for; drop them.
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return HexEncode(std::string_view(reinterpret_cast<char*>(digest), sizeof(digest)));
}

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &len);
  return HexEncode(std::string_view(reinterpret_cast<char*>(digest), len));
}

std::string NewUlid(TimeMs now, Random& random) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  std::string rnd = random.Bytes(10);
  std::string out(26, '0');
  uint64_t t = static_cast<uint64_t>(now);
  for (int i = 9; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kAlphabet[t & 31];
    t >>= 5;
  }
  // 80 random bits -> 16 base32 characters.
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < 5; ++i) hi = (hi << 8) | static_cast<unsigned char>(rnd[i]);
  for (int i = 5; i < 10; ++i) lo = (lo << 8) | static_cast<unsigned char>(rnd[i]);
  for (int i = 25; i >= 18; --i) {
    out[static_cast<size_t>(i)] = kAlphabet[lo & 31];
    lo >>= 5;
  }
  for (int i = 17; i >= 10; --i) {
    out[static_cast<size_t>(i)] = kAlphabet[hi & 31];
    hi >>= 5;
  }
  return out;
}

Result<TimeMs> ParseTime(std::string_view s) {
  auto bad = [&] {
    return Status(ErrorCode::kInvalidArgument,
                  "'" + std::string(s.substr(0, 40)) + "' is not a time like 2026-11-22T10:00:00Z");
  };
  auto num = [&](size_t at, size_t n, int* out) {
    if (at + n > s.size()) return false;
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  int y, mo, d, h, mi, sec, ms = 0;
  if (s.size() < 20 || !num(0, 4, &y) || s[4] != '-' || !num(5, 2, &mo) || s[7] != '-' ||
      !num(8, 2, &d) || s[10] != 'T' || !num(11, 2, &h) || s[13] != ':' || !num(14, 2, &mi) ||
      s[16] != ':' || !num(17, 2, &sec)) {
    return bad();
  }
  size_t i = 19;
  if (s[i] == '.') {
    size_t start = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return bad();
    std::string frac(s.substr(start, std::min<size_t>(3, i - start)));
    while (frac.size() < 3) frac += '0';
    ms = std::stoi(frac);
  }
  if (i + 1 != s.size() || s[i] != 'Z') return bad();
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return bad();
  struct tm tm_utc {};
  tm_utc.tm_year = y - 1900;
  tm_utc.tm_mon = mo - 1;
  tm_utc.tm_mday = d;
  tm_utc.tm_hour = h;
  tm_utc.tm_min = mi;
  tm_utc.tm_sec = sec;
  return static_cast<TimeMs>(timegm(&tm_utc)) * 1000 + ms;
}

std::string FormatTime(TimeMs t) {
  time_t secs = static_cast<time_t>(t / 1000);
  int ms = static_cast<int>(t % 1000);
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  struct tm tm_utc;
  gmtime_r(&secs, &tm_utc);
  char buf[40];
  size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm_utc);
  snprintf(buf + n, sizeof(buf) - n, ".%03dZ", ms);
  return buf;
}

}  // namespace redrive
