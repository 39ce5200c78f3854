#include "http/request_parser.h"

#include <boost/beast/http.hpp>
#include <cctype>
#include <cstdint>

#include "common/errors.h"

namespace redrive::http {
namespace {

namespace bhttp = boost::beast::http;

Response Error(ErrorCode code, std::string_view message) {
  const auto& info = GetErrorInfo(code);
  return ErrorResponse(info.http_status, info.wire_code, message);
}

}  // namespace

struct RequestParser::Impl {
  bhttp::request_parser<bhttp::string_body> parser;
};

RequestParser::RequestParser(size_t max_header_bytes, size_t max_body_bytes)
    : impl_(std::make_unique<Impl>()),
      max_header_bytes_(max_header_bytes),
      max_body_bytes_(max_body_bytes) {
  auto& p = impl_->parser;
  p.header_limit(static_cast<uint32_t>(max_header_bytes));
  p.body_limit(max_body_bytes);
  p.eager(true);
}

RequestParser::~RequestParser() = default;

// Beast applies its header limit to the request line and to the header fields separately (and
// to both together only when they arrive in pieces), so on its own it lets through up to twice
// the limit. The limit is on the request line and the headers together, however the bytes
// arrive: `header_bytes_` (what Beast consumed of the header so far: at most the request line)
// plus the bytes up to the blank line that ends the header, or all of `buffer` when it has not
// come yet.
bool RequestParser::OverHeaderLimit(std::string_view buffer) const {
  size_t end = std::string_view::npos;
  if (header_bytes_ > 0 && buffer.substr(0, 2) == "\r\n") {
    end = 2;  // the request line's CRLF was consumed: no fields, the blank line comes next
  } else if (size_t pos = buffer.find("\r\n\r\n"); pos != std::string_view::npos) {
    end = pos + 4;
  }
  return header_bytes_ + (end == std::string_view::npos ? buffer.size() : end) > max_header_bytes_;
}

RequestParser::Step RequestParser::Feed(std::string* buffer) {
  auto& p = impl_->parser;
  while (!buffer->empty()) {
    bool in_header = !p.is_header_done();
    if (in_header && OverHeaderLimit(*buffer)) {
      error_ = Error(ErrorCode::kHeadersTooLarge, "request line and headers exceed " +
                                                      std::to_string(max_header_bytes_) + " bytes");
      return Step::kFailed;
    }
    boost::system::error_code ec;
    size_t n = p.put(boost::asio::buffer(buffer->data(), buffer->size()), ec);
    buffer->erase(0, n);
    if (in_header && !p.is_header_done()) header_bytes_ += n;
    if (ec == bhttp::error::need_more) return Step::kNeedMore;
    if (ec == bhttp::error::header_limit) {
      error_ = Error(ErrorCode::kHeadersTooLarge, "request line and headers exceed " +
                                                      std::to_string(max_header_bytes_) + " bytes");
      return Step::kFailed;
    }
    if (ec == bhttp::error::body_limit) {
      error_ = Error(ErrorCode::kRequestTooLarge,
                     "request body exceeds " + std::to_string(max_body_bytes_) + " bytes");
      return Step::kFailed;
    }
    if (ec) {
      error_ = Error(ErrorCode::kInvalidArgument, "malformed HTTP request: " + ec.message());
      return Step::kFailed;
    }
    if (p.is_done()) return Step::kDone;
    if (n == 0) return Step::kNeedMore;
  }
  return p.is_done() ? Step::kDone : Step::kNeedMore;
}

bool RequestParser::TakeRequest(std::string remote, Request* req, bool* keep_alive,
                                Response* error) {
  auto msg = impl_->parser.release();
  *req = Request();
  req->method = std::string(msg.method_string());
  req->target = std::string(msg.target());
  req->remote = std::move(remote);
  std::string_view target = req->target;
  size_t qpos = target.find('?');
  req->path = std::string(target.substr(0, qpos));
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req->headers.emplace_back(std::move(name), std::string(f.value()));
  }
  req->body = std::move(msg.body());
  *keep_alive = msg.keep_alive();
  if (qpos != std::string_view::npos && !ParseQuery(target.substr(qpos + 1), &req->query)) {
    *error = Error(ErrorCode::kInvalidArgument, "malformed percent-encoding in query");
    return false;
  }
  return true;
}

}  // namespace redrive::http
