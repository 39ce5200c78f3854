#include "http/http.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <system_error>

namespace redrive::http {

namespace {

// strerror's text without its shared buffer (io threads read files at the same time).
Status SystemError(const char* what, int err) {
  return Status(ErrorCode::kInternal,
                std::string(what) + ": " + std::generic_category().message(err));
}

}  // namespace

std::string_view Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

std::string_view Request::Query(std::string_view name, bool* found) const {
  for (const auto& [k, v] : query) {
    if (k == name) {
      if (found) *found = true;
      return v;
    }
  }
  if (found) *found = false;
  return {};
}

bool PercentDecode(std::string_view in, std::string* out, bool plus_is_space) {
  out->clear();
  out->reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int h = hex(in[i + 1]);
      int l = hex(in[i + 2]);
      if (h < 0 || l < 0) return false;
      out->push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

bool ParseQuery(std::string_view text, std::vector<std::pair<std::string, std::string>>* out) {
  out->clear();
  while (!text.empty()) {
    size_t amp = text.find('&');
    std::string_view part = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string k, v;
    if (!PercentDecode(part.substr(0, eq), &k, true)) return false;
    if (eq != std::string_view::npos && !PercentDecode(part.substr(eq + 1), &v, true)) {
      return false;
    }
    out->emplace_back(std::move(k), std::move(v));
  }
  return true;
}

Response ErrorResponse(int http_status, std::string_view code, std::string_view message) {
  Response r;
  r.status = http_status;
  nlohmann::json j = {{"error", {{"code", code}, {"message", message}}}};
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

Result<std::shared_ptr<const ReadOnlyFile>> ReadOnlyFile::Open(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Status(ErrorCode::kFileNotFound, "the file is gone");
    }
    return SystemError("cannot open the file", err);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return SystemError("cannot stat the file", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(ErrorCode::kInternal, "cannot serve the file: not a regular file");
  }
  // Downloads read front to back: a larger readahead makes each chunk a page-cache hit.
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  Info info;
  info.size = static_cast<uint64_t>(st.st_size);
  info.inode = static_cast<uint64_t>(st.st_ino);
  info.mtime_sec = st.st_mtim.tv_sec;
  info.mtime_nsec = st.st_mtim.tv_nsec;
  return std::shared_ptr<const ReadOnlyFile>(new ReadOnlyFile(fd, info));
}

ReadOnlyFile::~ReadOnlyFile() { ::close(fd_); }

Result<size_t> ReadOnlyFile::ReadAt(uint64_t offset, char* out, size_t n) const {
  for (;;) {
    ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(offset));
    if (got >= 0) return static_cast<size_t>(got);
    if (errno != EINTR) {
      return SystemError("cannot read the file", errno);
    }
  }
}

}  // namespace redrive::http
