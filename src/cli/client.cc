#include "cli/client.h"

#include <curl/curl.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace redrive::cli {
namespace {

size_t CollectBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// The first bytes of an unexpected answer, on one line, for the error message.
std::string Snippet(const std::string& body) {
  std::string s = body.substr(0, 120);
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (body.size() > s.size()) s += "...";
  return s;
}

}  // namespace

std::string CallError::ToString() const {
  if (kind == Kind::kServer) return code + ": " + message;
  return message;
}

std::string UrlEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

Client::Client(std::string base_url, std::string token, std::string ca_file)
    : base_url_(std::move(base_url)), token_(std::move(token)), ca_file_(std::move(ca_file)) {
  // curl_global_init is not thread-safe; do it once, before the first handle.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  curl_ = curl_easy_init();
}

Client::~Client() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

CallResult<json> Client::Get(const std::string& path, const QueryParams& query, long timeout_ms) {
  std::string target = path;
  char sep = '?';
  for (const auto& [k, v] : query) {
    if (v.empty()) continue;
    target += sep + UrlEscape(k) + "=" + UrlEscape(v);
    sep = '&';
  }
  return Call("GET", target, std::nullopt, timeout_ms);
}

CallResult<json> Client::Post(const std::string& path, const json& body, long timeout_ms) {
  return Call("POST", path, body, timeout_ms);
}

CallResult<json> Client::Patch(const std::string& path, const json& body, long timeout_ms) {
  return Call("PATCH", path, body, timeout_ms);
}

CallResult<json> Client::Put(const std::string& path, const json& body, long timeout_ms) {
  return Call("PUT", path, body, timeout_ms);
}

CallResult<json> Client::Delete(const std::string& path, long timeout_ms) {
  return Call("DELETE", path, std::nullopt, timeout_ms);
}

CallResult<json> Client::Call(const char* method, const std::string& path_and_query,
                              const std::optional<json>& body, long timeout_ms) {
  CallError err;
  if (!curl_) {
    err.kind = CallError::Kind::kBadRequest;
    err.message = "cannot initialise libcurl";
    return err;
  }
  std::string payload;
  if (body) {
    // dump() throws on strings that are not UTF-8; refuse them here rather than alter them.
    try {
      payload = body->dump();
    } catch (const json::exception& e) {
      err.kind = CallError::Kind::kBadRequest;
      err.message = std::string("the request holds text that is not valid UTF-8 (") + e.what() +
                    "); send binary bodies with --file or stdin";
      return err;
    }
  }

  CURL* c = static_cast<CURL*>(curl_);
  // reset() keeps the connection cache, so the connection stays alive across calls.
  curl_easy_reset(c);
  std::string url = base_url_ + path_and_query;
  std::string response;
  char curl_error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_error);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "redrive-cli");
  if (!ca_file_.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file_.c_str());
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
  } else if (std::string_view(method) == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  }
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/json");
  if (body) headers = curl_slist_append(headers, "Content-Type: application/json");
  if (!token_.empty()) {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
  }
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  // The token must not linger in the handle beyond the call.
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);

  if (rc != CURLE_OK) {
    err.kind = CallError::Kind::kUnreachable;
    std::string detail = curl_error[0] ? curl_error : curl_easy_strerror(rc);
    err.message = "cannot reach the server at " + base_url_ + ": " + detail;
    if (rc == CURLE_PEER_FAILED_VERIFICATION && ca_file_.empty()) {
      err.message +=
          " (for a certificate from a private CA, pass --ca-file or set REDRIVE_CA_FILE)";
    }
    return err;
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  err.http_status = status;

  json parsed = response.empty() ? json(nullptr) : json::parse(response, nullptr, false);
  if (status >= 200 && status < 300) {
    if (parsed.is_discarded()) {
      err.kind = CallError::Kind::kBadResponse;
      err.message = "HTTP " + std::to_string(status) + " from " + url +
                    " is not JSON (is this a redrive server?): " + Snippet(response);
      return err;
    }
    return parsed;
  }
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    const json& e = parsed["error"];
    auto code = e.find("code");
    auto message = e.find("message");
    if (code != e.end() && code->is_string()) {
      err.kind = CallError::Kind::kServer;
      err.code = code->get<std::string>();
      err.message = message != e.end() && message->is_string() ? message->get<std::string>() : "";
      return err;
    }
  }
  err.kind = CallError::Kind::kBadResponse;
  err.message = "HTTP " + std::to_string(status) + " from " + url +
                " without a redrive error (is this a redrive server?): " + Snippet(response);
  return err;
}

namespace {

struct DownloadState {
  std::FILE* out = nullptr;
  long status = 0;
  int64_t written = 0;
  int64_t total = -1;
  std::string error_body;  // a non-2xx answer's body, kept for its error
  const std::function<void(int64_t, int64_t)>* progress = nullptr;
  CURL* curl = nullptr;
  bool write_failed = false;
};

size_t WriteDownload(char* data, size_t size, size_t n, void* p) {
  auto* st = static_cast<DownloadState*>(p);
  size_t bytes = size * n;
  if (st->status == 0) curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &st->status);
  if (st->status != 200 && st->status != 206) {
    if (st->error_body.size() < 65536) st->error_body.append(data, bytes);
    return bytes;
  }
  if (std::fwrite(data, 1, bytes, st->out) != bytes) {
    st->write_failed = true;
    return 0;  // aborts the transfer
  }
  st->written += static_cast<int64_t>(bytes);
  if (*st->progress) (*st->progress)(st->written, st->total);
  return bytes;
}

// "Content-Range: bytes a-b/size" or "Content-Length: n" (a 200) give the file's size.
size_t ReadDownloadHeader(char* data, size_t size, size_t n, void* p) {
  auto* st = static_cast<DownloadState*>(p);
  std::string line(data, size * n);
  std::string lower = line;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.rfind("http/", 0) == 0) st->total = -1;  // a new response (after a redirect, 100)
  if (lower.rfind("content-range:", 0) == 0) {
    auto slash = line.rfind('/');
    if (slash != std::string::npos) st->total = std::atoll(line.c_str() + slash + 1);
  } else if (lower.rfind("content-length:", 0) == 0 && st->total < 0) {
    st->total = std::atoll(line.c_str() + 15);
  }
  return size * n;
}

}  // namespace

CallResult<int64_t> Client::Download(const std::string& path, std::FILE* out, int64_t offset,
                                     const std::function<void(int64_t, int64_t)>& progress) {
  CallError err;
  CURL* c = static_cast<CURL*>(curl_);
  if (!c) {
    err.kind = CallError::Kind::kBadRequest;
    err.message = "cannot initialise libcurl";
    return err;
  }
  curl_easy_reset(c);
  std::string url = base_url_ + path;
  DownloadState st;
  st.out = out;
  st.progress = &progress;
  st.curl = c;
  char curl_error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, WriteDownload);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ReadDownloadHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &st);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_error);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  // No overall timeout: a large file takes as long as it takes; a stalled one is cut off.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "redrive-cli");
  if (!ca_file_.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file_.c_str());
  curl_slist* headers = nullptr;
  if (!token_.empty()) {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
  }
  if (offset > 0) {
    headers = curl_slist_append(headers, ("Range: bytes=" + std::to_string(offset) + "-").c_str());
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  if (st.write_failed) {
    err.kind = CallError::Kind::kBadRequest;
    err.message = "cannot write the download: " + std::string(std::strerror(errno));
    return err;
  }
  if (rc != CURLE_OK) {
    err.kind = CallError::Kind::kUnreachable;
    err.message = "download from " + base_url_ + " broke off after " + std::to_string(st.written) +
                  " bytes: " + (curl_error[0] ? curl_error : curl_easy_strerror(rc)) +
                  " (run the same command again to resume)";
    return err;
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  err.http_status = status;
  if (status == 206 || (status == 200 && offset == 0)) {
    return st.total >= 0 ? st.total : offset + st.written;
  }
  if (status == 200) {
    err.kind = CallError::Kind::kBadResponse;
    err.message = "the server ignored the range request; remove the partial file to start over";
    return err;
  }
  json parsed = json::parse(st.error_body, nullptr, false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    err.kind = CallError::Kind::kServer;
    err.code = parsed["error"].value("code", "");
    err.message = parsed["error"].value("message", "");
    return err;
  }
  err.kind = CallError::Kind::kBadResponse;
  err.message = "HTTP " + std::to_string(status) + " from " + url + ": " + Snippet(st.error_body);
  return err;
}

}  // namespace redrive::cli
