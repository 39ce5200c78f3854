#include "push/mailer.h"

#include <curl/curl.h>

#include <cstring>
#include <ctime>
#include <memory>

#include "common/text.h"

namespace redrive::push {
namespace {

void GlobalInit() {
  // Once per process, before the first handle (curl_global_init counts its calls).
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)init;
}

bool IsAscii(const std::string& s) {
  for (unsigned char c : s) {
    if (c >= 0x80 || c == '\r' || c == '\n') return false;
  }
  return true;
}

// An RFC 2047 encoded word when `s` is not plain ASCII.
std::string HeaderText(const std::string& s) {
  if (IsAscii(s)) return s;
  std::string clean;
  for (char c : s) clean += (c == '\r' || c == '\n') ? ' ' : c;
  return "=?UTF-8?B?" + Base64Encode(clean) + "?=";
}

std::string RfcDate(TimeMs now) {
  std::time_t t = static_cast<std::time_t>(now / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

struct Upload {
  const std::string* data;
  size_t offset = 0;
};

size_t ReadUpload(char* out, size_t size, size_t n, void* user) {
  auto* u = static_cast<Upload*>(user);
  size_t left = u->data->size() - u->offset;
  size_t take = std::min(left, size * n);
  std::memcpy(out, u->data->data() + u->offset, take);
  u->offset += take;
  return take;
}

}  // namespace

std::string FormatMail(const SmtpConfig& config, const MailMessage& m, TimeMs now) {
  std::string to;
  for (const auto& r : m.to) to += (to.empty() ? "" : ", ") + r;
  std::string id = m.message_id.empty() ? "<" + std::to_string(now) + "@redrive>" : m.message_id;
  std::string out = "Date: " + RfcDate(now) + "\r\n" + "From: " + config.from + "\r\n" +
                    "To: " + to + "\r\n" + "Subject: " + HeaderText(m.subject) + "\r\n" +
                    "Message-ID: " + id + "\r\n" + "MIME-Version: 1.0\r\n" +
                    "Content-Type: text/plain; charset=utf-8\r\n" +
                    "Content-Transfer-Encoding: 8bit\r\n\r\n";
  // CRLF line ends; libcurl dot-stuffs lines that begin with '.'.
  for (size_t i = 0; i < m.text.size(); ++i) {
    if (m.text[i] == '\n' && (i == 0 || m.text[i - 1] != '\r')) out += '\r';
    out += m.text[i];
  }
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
  return out;
}

Status SendMail(const SmtpConfig& config, const MailMessage& m, TimeMs now) {
  if (config.url.empty()) return Status(ErrorCode::kInvalidArgument, "no SMTP server");
  if (config.from.empty()) return Status(ErrorCode::kInvalidArgument, "no sender address");
  if (m.to.empty()) return Status(ErrorCode::kInvalidArgument, "no recipient");
  GlobalInit();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return Status(ErrorCode::kInternal, "curl_easy_init failed");
  std::string payload = FormatMail(config, m, now);
  Upload upload{&payload};
  curl_slist* rcpt = nullptr;
  for (const auto& r : m.to) rcpt = curl_slist_append(rcpt, ("<" + r + ">").c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> rcpt_guard(rcpt, curl_slist_free_all);
  std::string from = "<" + config.from + ">";
  char error[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, config.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadUpload);
  curl_easy_setopt(c, CURLOPT_READDATA, &upload);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(config.timeout));
  curl_easy_setopt(c, CURLOPT_USE_SSL, config.require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY);
  if (!config.username.empty()) {
    curl_easy_setopt(c, CURLOPT_USERNAME, config.username.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, config.password.c_str());
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    // Not the URL: it may hold credentials.
    return Status(ErrorCode::kNotificationFailed,
                  std::string("SMTP server: ") +
                      (error[0] ? std::string(error) : std::string(curl_easy_strerror(rc))));
  }
  return Status::Ok();
}

}  // namespace redrive::push
