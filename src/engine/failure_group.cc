#include "engine/failure_group.h"

#include <cctype>

#include "common/text.h"

namespace redrive::engine {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
}

// Length of an ISO 8601 / RFC 3339 timestamp starting at s[i], or 0.
size_t TimestampLength(std::string_view s, size_t i) {
  auto digits = [&](size_t at, size_t n) {
    if (at + n > s.size()) return false;
    for (size_t k = 0; k < n; ++k) {
      if (!IsDigit(s[at + k])) return false;
    }
    return true;
  };
  if (!digits(i, 4) || i + 10 > s.size() || s[i + 4] != '-' || !digits(i + 5, 2) ||
      s[i + 7] != '-' || !digits(i + 8, 2)) {
    return 0;
  }
  size_t j = i + 10;
  if (j < s.size() && (s[j] == 'T' || s[j] == ' ') && digits(j + 1, 2) && j + 3 < s.size() &&
      s[j + 3] == ':' && digits(j + 4, 2)) {
    j += 6;
    if (j < s.size() && s[j] == ':' && digits(j + 1, 2)) j += 3;
    if (j < s.size() && (s[j] == '.' || s[j] == ',')) {
      size_t k = j + 1;
      while (k < s.size() && IsDigit(s[k])) ++k;
      if (k > j + 1) j = k;
    }
    if (j < s.size() && s[j] == 'Z') {
      ++j;
    } else if (j < s.size() && (s[j] == '+' || s[j] == '-') && digits(j + 1, 2)) {
      size_t k = j + 3;
      if (k < s.size() && s[k] == ':') ++k;
      if (digits(k, 2)) j = k + 2;
    }
  }
  return j - i;
}

// What a word (a run of letters, digits, '_' and '-') stands for, or "" to keep it.
std::string_view Classify(std::string_view w) {
  size_t digits = 0, hex = 0;
  for (char c : w) {
    digits += IsDigit(c);
    hex += IsHex(c);
  }
  if (w.size() == 36 && w[8] == '-' && w[13] == '-' && w[18] == '-' && w[23] == '-' && hex == 32) {
    return "<uuid>";
  }
  if (digits == w.size()) return w.size() > 3 ? "<n>" : "";
  if (w.size() == 26 && digits > 0) {
    bool base32 = true;
    for (char c : w) base32 = base32 && (IsDigit(c) || (c >= 'A' && c <= 'Z'));
    if (base32) return "<id>";
  }
  if (w.size() >= 8 && hex == w.size() && digits > 0) return "<hex>";
  // Identifiers such as "user-48213" or "ord_99812": a word with a long run of digits.
  size_t run = 0, longest = 0;
  for (char c : w) {
    run = IsDigit(c) ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  if (longest >= 4) return "<id>";
  return "";
}

}  // namespace

std::string NormalizeCause(std::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxSignatureCause));
  size_t i = 0;
  auto emit_space = [&] {
    if (!out.empty() && out.back() != ' ') out.push_back(' ');
  };
  while (i < s.size() && out.size() < kMaxSignatureCause) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      emit_space();
      ++i;
      continue;
    }
    if (c == '"' || c == '\'' || c == '`') {
      size_t close = s.find(c, i + 1);
      if (close != std::string_view::npos && close - i <= 512) {
        out.push_back(c);
        out += "<str>";
        out.push_back(c);
        i = close + 1;
        continue;
      }
    }
    if (size_t t = TimestampLength(s, i); t > 0) {
      out += "<time>";
      i += t;
      continue;
    }
    if (IsWordChar(c)) {
      size_t j = i;
      while (j < s.size() && IsWordChar(s[j])) ++j;
      std::string_view word = s.substr(i, j - i);
      std::string_view cls = Classify(word);
      out += cls.empty() ? word : cls;
      i = j;
      continue;
    }
    // Decimal fractions and signs around numbers fold into the number placeholder.
    if ((c == '.' || c == ',') && !out.empty() && out.size() >= 3 &&
        out.compare(out.size() - 3, 3, "<n>") == 0 && i + 1 < s.size() && IsDigit(s[i + 1])) {
      ++i;
      while (i < s.size() && IsDigit(s[i])) ++i;
      continue;
    }
    out.push_back(c);
    ++i;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > kMaxSignatureCause) out.resize(kMaxSignatureCause);
  return out;
}

FailureSignature SignatureOf(std::string_view origin, std::string_view reason,
                             std::string_view cause) {
  FailureSignature sig;
  sig.text = std::string(origin) + " | " + std::string(reason) + " | " + NormalizeCause(cause);
  sig.group_id = Sha256Hex(sig.text).substr(0, 16);
  return sig;
}

std::string_view CauseOfSignature(std::string_view signature, std::string_view origin,
                                  std::string_view reason) {
  std::string prefix = std::string(origin) + " | " + std::string(reason) + " | ";
  if (signature.substr(0, prefix.size()) == prefix) signature.remove_prefix(prefix.size());
  return signature;
}

}  // namespace redrive::engine
