// Plain HTTP request/response values shared by the server and the handlers, so that handlers
// never see the HTTP library. Value types; thread-compatible (ReadOnlyFile is thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace redrive::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query
  std::string path;    // path as sent (still percent-encoded), without the query
  std::vector<std::pair<std::string, std::string>> query;    // decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string remote;  // peer address

  // The first header with this lower-case name, or "".
  std::string_view Header(std::string_view name) const;
  // The first query parameter with this name; `found` tells whether it was present.
  std::string_view Query(std::string_view name, bool* found = nullptr) const;
};

// A regular file opened read-only, for a Response to stream. The descriptor is opened once and
// read with pread, so the bytes served are those of the file that was opened: renaming or
// deleting the path afterwards changes nothing (truncating the file does; the server then
// closes the connection). Closes the descriptor when destroyed. Thread-safe.
class ReadOnlyFile {
 public:
  // What fstat said at open.
  struct Info {
    uint64_t size = 0;
    uint64_t inode = 0;
    int64_t mtime_sec = 0;  // since the epoch
    int64_t mtime_nsec = 0;
  };

  // Opens `path` (O_RDONLY | O_CLOEXEC | O_NONBLOCK, so that a FIFO cannot block the caller).
  // Errors: kFileNotFound when the path does not exist (ENOENT, ENOTDIR); kInternal for any
  // other failure, a path that is not a regular file included. Messages give the reason, not
  // the path (they may reach a client).
  static Result<std::shared_ptr<const ReadOnlyFile>> Open(const std::string& path);
  ~ReadOnlyFile();
  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;

  const Info& info() const { return info_; }
  // Reads up to `n` bytes at `offset` into `out`: the count read, 0 at the end of the file.
  // Errors: kInternal with the system's reason.
  Result<size_t> ReadAt(uint64_t offset, char* out, size_t n) const;

 private:
  ReadOnlyFile(int fd, Info info) : fd_(fd), info_(info) {}
  const int fd_;
  const Info info_;
};

// A response body streamed from a file: `length` bytes from `offset`. The server writes the
// headers (Content-Length: length), then the bytes in chunks of ServerOptions::file_chunk_bytes
// as the client takes them, so a download holds one chunk in memory, never the file.
struct FileBody {
  // Shared by the copies of the Response that carries it (a Response is copyable, and a
  // Responder may copy it); the descriptor closes when the last copy is gone.
  std::shared_ptr<const ReadOnlyFile> file;
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;                                          // ignored when `file` is set
  std::vector<std::pair<std::string, std::string>> headers;  // never Content-Length
  // When set, the body is these bytes of a file instead of `body` (see FileResponse in
  // http/file_response.h, which also answers ranges and conditional requests).
  std::optional<FileBody> file;
};

// Completes a request: called exactly once with the answer, from any thread, at any time
// (a long poll answers when a message arrives or its wait ends). Copyable; thread-safe.
using Responder = std::function<void(Response)>;

// Splits and percent-decodes "a=1&b=x%20y". False when an escape is malformed.
bool ParseQuery(std::string_view text, std::vector<std::pair<std::string, std::string>>* out);
bool PercentDecode(std::string_view in, std::string* out, bool plus_is_space);

// A JSON error body {"error":{"code":..., "message":...}} for a catalogue code.
Response ErrorResponse(int http_status, std::string_view code, std::string_view message);

}  // namespace redrive::http
