// E-mail over SMTP (libcurl): one plain-text message to a list of recipients, for the
// notification channel "email" (engine/notifications.h). Blocking; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace redrive::push {

struct SmtpConfig {
  // smtp://host:port (STARTTLS when the server offers it and `require_tls`), or smtps://.
  std::string url;
  std::string from;                // the envelope sender and the From header
  std::string username, password;  // AUTH, when set
  bool require_tls = false;        // refuse to send without TLS (CURLUSESSL_ALL)
  DurationMs timeout = 30'000;
};

struct MailMessage {
  std::vector<std::string> to;
  std::string subject;     // UTF-8; encoded (RFC 2047) when not ASCII
  std::string text;        // UTF-8 plain text; lines end in \n
  std::string message_id;  // "<id@host>"; made up when empty
};

// The message as sent: headers (Date, From, To, Subject, Message-ID, MIME) and the body with
// CRLF line ends. Exposed for tests.
std::string FormatMail(const SmtpConfig& config, const MailMessage& message, TimeMs now);

// Errors: kInvalidArgument (no url, no sender or no recipient), kNotificationFailed (the
// server could not be reached or refused the message; libcurl's words in the message).
Status SendMail(const SmtpConfig& config, const MailMessage& message, TimeMs now);

}  // namespace redrive::push
