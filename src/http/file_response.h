// FileResponse: a handler's answer that serves a file as a resumable download (RFC 9110), the
// body streamed by the server from the open file (Response::file), never held in memory.
//
// What a GET gets, in the order RFC 9110 §13.2.2 evaluates it:
//   - the file cannot be opened: 404 file-not-found when the path does not exist, 500 internal
//     for anything else (permissions, not a regular file, I/O); JSON errors from the catalogue.
//     The handler vouches that its resource exists before it names the file, so a missing file
//     means it went away in between (retention) or under the server's feet: gone, not "retry".
//   - If-None-Match with our ETag (weak comparison) or "*": 304 with ETag and Last-Modified,
//     no body, no Content-Length.
//   - Range with exactly one range-spec of unit bytes (first-last, first-, -suffix):
//       - If-Range present and not our ETag (strong comparison): the Range is ignored (200).
//         An If-Range holding a date never matches, so the client gets the whole file: always
//         correct, and our validator is the ETag.
//       - satisfiable: 206 with Content-Range: bytes first-last/size and those bytes;
//         a last beyond the end is cut at the end; a suffix longer than the file is the file.
//       - unsatisfiable (first at or past the end, or bytes=-0): 416 range-not-satisfiable
//         with Content-Range: bytes */size.
//     A Range header that is malformed, names another unit, has first > last, or lists more
//     than one range is ignored: 200 with the whole file (RFC 9110 §14.2 allows ignoring it;
//     a multipart/byteranges answer would buy a resuming client nothing). On an empty file a
//     suffix range is ignored too (200, empty) and any other range is 416.
//   - otherwise 200 with the whole file.
// 200 and 206 carry Content-Type, Content-Length, Accept-Ranges: bytes, ETag, Last-Modified
// and the caller's extra headers (e.g. Content-Encoding: gzip for a stored gzip variant, which
// must then have its own ETag). Range and conditionals apply to GET only; other methods get
// the whole file. HEAD is not routed by the API (routes match methods exactly, so HEAD is a
// 405), hence not handled here. If-Match, If-Unmodified-Since and If-Modified-Since are not
// evaluated.
//
// The bytes served are those of the file as opened here: its size and ETag are taken at open,
// and a file deleted or renamed afterwards is still served whole. A file truncated while it is
// served makes the server close the connection short of Content-Length.
//
// Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http.h"

namespace redrive::http {

// `etag`: the opaque tag, without quotes and without W/ (it is a strong validator: the same
// tag only for the same bytes); characters outside RFC 9110's etagc (the quote, controls,
// space) become '_'. Empty: DefaultEntityTag of the file. `headers` go on 200 and 206 only.
// REQUIRES: `content_type` is the type of the stored bytes.
Response FileResponse(const Request& req, const std::string& path, std::string content_type,
                      std::string etag = "",
                      std::vector<std::pair<std::string, std::string>> headers = {});
// The same for a file the caller opened (e.g. under a lock that keeps retention away).
// REQUIRES: file != nullptr.
Response FileResponse(const Request& req, std::shared_ptr<const ReadOnlyFile> file,
                      std::string content_type, std::string etag = "",
                      std::vector<std::pair<std::string, std::string>> headers = {});

// ---- the pieces, for tests

// `length` bytes from `first`.
struct ByteRange {
  uint64_t first = 0;
  uint64_t length = 0;
};

enum class RangeOutcome {
  kWhole,          // no Range, or one that is ignored (see above): the whole file
  kPartial,        // one satisfiable range, in *range
  kUnsatisfiable,  // a valid single range that selects no byte of the file
};

// A Range header's value against a representation of `size` bytes. Numbers too large for 64
// bits saturate (a first-pos that large is past any end; a last-pos that large is the end).
RangeOutcome ParseRange(std::string_view header, uint64_t size, ByteRange* range);

// If-None-Match: "*", or a list of entity-tags one of which has `etag` as its opaque tag
// (weak comparison: W/ is ignored). A malformed list matches no further than where it breaks.
bool IfNoneMatchMatches(std::string_view header, std::string_view etag);

// If-Range: true only for a strong entity-tag equal to `etag`; a weak tag or a date is false.
bool IfRangeMatches(std::string_view header, std::string_view etag);

// Hex of inode, size and modification time: changes whenever the file is replaced or written.
std::string DefaultEntityTag(const ReadOnlyFile::Info& info);

// The IMF-fixdate of a time in seconds since the epoch: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string HttpDate(int64_t unix_seconds);

}  // namespace redrive::http
