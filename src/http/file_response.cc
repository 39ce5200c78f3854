#include "http/file_response.h"

#include <time.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <limits>

#include "common/errors.h"

namespace redrive::http {

namespace {

constexpr std::string_view kWhitespace = " \t";

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(kWhitespace);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(kWhitespace);
  return s.substr(b, e - b + 1);
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
    if (x != y) return false;
  }
  return true;
}

// 1*DIGIT, saturating at the largest uint64_t. False when `s` is empty or not all digits.
bool ParseDigits(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    v = v > (kMax - d) / 10 ? kMax : v * 10 + d;
  }
  *out = v;
  return true;
}

// etagc = %x21 / %x23-7E / obs-text
bool IsEtagChar(unsigned char c) { return c == 0x21 || (c >= 0x23 && c != 0x7F); }

Response Error(ErrorCode code, std::string_view message) {
  const auto& info = GetErrorInfo(code);
  return ErrorResponse(info.http_status, info.wire_code, message);
}

}  // namespace

RangeOutcome ParseRange(std::string_view header, uint64_t size, ByteRange* range) {
  header = Trim(header);
  size_t eq = header.find('=');
  if (eq == std::string_view::npos || !IEquals(header.substr(0, eq), "bytes")) {
    return RangeOutcome::kWhole;
  }
  // range-set = 1#range-spec: empty list elements are allowed, and skipped.
  std::string_view spec;
  int specs = 0;
  std::string_view rest = header.substr(eq + 1);
  for (;;) {
    size_t comma = rest.find(',');
    std::string_view element = Trim(rest.substr(0, comma));
    if (!element.empty()) {
      spec = element;
      ++specs;
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (specs != 1) return RangeOutcome::kWhole;
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeOutcome::kWhole;
  if (dash == 0) {
    uint64_t suffix = 0;
    if (!ParseDigits(spec.substr(1), &suffix)) return RangeOutcome::kWhole;
    if (size == 0) return RangeOutcome::kWhole;
    if (suffix == 0) return RangeOutcome::kUnsatisfiable;
    uint64_t length = std::min(suffix, size);
    *range = ByteRange{size - length, length};
    return RangeOutcome::kPartial;
  }
  uint64_t first = 0;
  if (!ParseDigits(spec.substr(0, dash), &first)) return RangeOutcome::kWhole;
  uint64_t last = std::numeric_limits<uint64_t>::max();
  std::string_view last_text = spec.substr(dash + 1);
  if (!last_text.empty()) {
    if (!ParseDigits(last_text, &last)) return RangeOutcome::kWhole;
    if (last < first) return RangeOutcome::kWhole;
  }
  if (first >= size) return RangeOutcome::kUnsatisfiable;
  last = std::min(last, size - 1);
  *range = ByteRange{first, last - first + 1};
  return RangeOutcome::kPartial;
}

bool IfNoneMatchMatches(std::string_view header, std::string_view etag) {
  std::string_view rest = Trim(header);
  if (rest == "*") return true;
  for (;;) {
    rest = rest.substr(std::min(rest.find_first_not_of(" \t,"), rest.size()));
    if (rest.empty()) return false;
    if (rest.substr(0, 2) == "W/") rest.remove_prefix(2);
    if (rest.empty() || rest.front() != '"') return false;
    size_t close = rest.find('"', 1);
    if (close == std::string_view::npos) return false;
    if (rest.substr(1, close - 1) == etag) return true;
    rest.remove_prefix(close + 1);
  }
}

bool IfRangeMatches(std::string_view header, std::string_view etag) {
  header = Trim(header);
  if (header.size() < 2 || header.front() != '"' || header.back() != '"') return false;
  std::string_view opaque = header.substr(1, header.size() - 2);
  return opaque.find('"') == std::string_view::npos && opaque == etag;
}

std::string DefaultEntityTag(const ReadOnlyFile::Info& info) {
  char buf[80];
  std::snprintf(buf, sizeof(buf), "%" PRIx64 "-%" PRIx64 "-%" PRIx64 "%08" PRIx64, info.inode,
                info.size, static_cast<uint64_t>(info.mtime_sec),
                static_cast<uint64_t>(info.mtime_nsec));
  return buf;
}

std::string HttpDate(int64_t unix_seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

Response FileResponse(const Request& req, const std::string& path, std::string content_type,
                      std::string etag, std::vector<std::pair<std::string, std::string>> headers) {
  auto file = ReadOnlyFile::Open(path);
  if (!file.ok()) return Error(file.status().code(), file.status().message());
  return FileResponse(req, std::move(file).value(), std::move(content_type), std::move(etag),
                      std::move(headers));
}

Response FileResponse(const Request& req, std::shared_ptr<const ReadOnlyFile> file,
                      std::string content_type, std::string etag,
                      std::vector<std::pair<std::string, std::string>> headers) {
  const ReadOnlyFile::Info& info = file->info();
  if (etag.empty()) etag = DefaultEntityTag(info);
  for (char& c : etag) {
    if (!IsEtagChar(static_cast<unsigned char>(c))) c = '_';
  }
  std::string quoted = "\"" + etag + "\"";
  std::string last_modified = HttpDate(info.mtime_sec);
  const bool get = req.method == "GET";

  if (get) {
    std::string_view if_none_match = req.Header("if-none-match");
    if (!if_none_match.empty() && IfNoneMatchMatches(if_none_match, etag)) {
      Response r;
      r.status = 304;
      r.content_type.clear();
      r.headers = {{"ETag", quoted}, {"Last-Modified", last_modified}};
      return r;
    }
  }

  ByteRange range{0, info.size};
  int status = 200;
  std::string content_range;
  std::string_view range_header = get ? req.Header("range") : std::string_view();
  std::string_view if_range = req.Header("if-range");
  if (!range_header.empty() && (if_range.empty() || IfRangeMatches(if_range, etag))) {
    ByteRange partial;
    switch (ParseRange(range_header, info.size, &partial)) {
      case RangeOutcome::kWhole:
        break;
      case RangeOutcome::kPartial:
        status = 206;
        range = partial;
        content_range = "bytes " + std::to_string(range.first) + "-" +
                        std::to_string(range.first + range.length - 1) + "/" +
                        std::to_string(info.size);
        break;
      case RangeOutcome::kUnsatisfiable: {
        Response r =
            Error(ErrorCode::kRangeNotSatisfiable,
                  "the range selects no byte of the " + std::to_string(info.size) + "-byte file");
        r.headers.emplace_back("Content-Range", "bytes */" + std::to_string(info.size));
        return r;
      }
    }
  }

  Response r;
  r.status = status;
  r.content_type = std::move(content_type);
  r.headers.reserve(headers.size() + 4);
  r.headers.emplace_back("Accept-Ranges", "bytes");
  r.headers.emplace_back("ETag", std::move(quoted));
  r.headers.emplace_back("Last-Modified", std::move(last_modified));
  if (!content_range.empty()) r.headers.emplace_back("Content-Range", std::move(content_range));
  for (auto& h : headers) r.headers.push_back(std::move(h));
  r.file = FileBody{std::move(file), range.first, range.length};
  return r;
}

}  // namespace redrive::http
