#include "cli/commands_common.h"

#include <cctype>
#include <chrono>
#include <cstdio>

#include "common/text.h"

namespace redrive::cli {

// ------------------------------------------------------------------ context

int Context::Fail(const CallError& e) const {
  std::fprintf(stderr, "error: %s\n", Printable(e.ToString()).c_str());
  switch (e.kind) {
    case CallError::Kind::kServer:
      if (e.code == "unauthenticated" && settings.token.empty()) {
        std::fprintf(stderr,
                     "hint: no token was given; pass --token or --token-file, or set "
                     "REDRIVE_TOKEN\n");
      }
      return kExitServerError;
    case CallError::Kind::kUnreachable:
      return kExitUnreachable;
    case CallError::Kind::kBadResponse:
      return kExitServerError;
    case CallError::Kind::kBadRequest:
      return kExitUsage;
  }
  return kExitServerError;
}

void Context::PrintJson(const json& j) const {
  if (j.is_null()) return;
  std::string text = j.dump(2, ' ', false, json::error_handler_t::replace);
  std::printf("%s\n", text.c_str());
}

int Context::Answer(const json& answer, const std::function<void()>& human) const {
  if (settings.json) {
    PrintJson(answer);
  } else {
    human();
  }
  return kExitOk;
}

// ------------------------------------------------------------------ errors

Status Invalid(std::string message) {
  return Status(ErrorCode::kInvalidArgument, std::move(message));
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return kExitUsage;
}

// ------------------------------------------------------------------ reading answers

const json& At(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string Text(const json& v, const std::string& absent) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return absent;
  if (v.is_array()) {
    std::string out;
    // std::string(), not "": a literal would choose the (object, key) overload.
    for (const auto& e : v) out += (out.empty() ? "" : ", ") + Text(e, std::string());
    return out.empty() ? absent : out;
  }
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Text(const json& j, const char* key, const std::string& absent) {
  return Text(At(j, key), absent);
}

const json& Items(const json& j, const char* key) {
  static const json kEmpty = json::array();
  const json& v = At(j, key);
  return v.is_array() ? v : kEmpty;
}

std::string CompactJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int64_t Int(const json& j, const char* key) {
  const json& v = At(j, key);
  return v.is_number_integer() ? v.get<int64_t>() : 0;
}

std::string IntText(const json& j, const char* key) { return std::to_string(Int(j, key)); }

Result<std::string> BodyBytes(const json& item) {
  std::string body = Text(item, "body", "");
  if (At(item, "base64") == true) return Base64Decode(body);
  return body;
}

void AddBody(Details* d, const json& item) {
  if (At(item, "base64") == true) {
    d->Add("body (base64)", Text(item, "body", ""));
  } else {
    d->AddMultiline("body", Text(item, "body", ""));
  }
}

void PrintNextCursor(const json& answer) {
  const json& next = At(answer, "pagedResultsCookie");
  if (next.is_string()) {
    std::printf("next cursor: %s\n", Printable(next.get<std::string>()).c_str());
  }
}

// ------------------------------------------------------------------ flags and filters

const CLI::Validator& DurationCheck() {
  static const CLI::Validator v(
      [](std::string& s) -> std::string {
        auto d = ParseDuration(s);
        return d.ok() ? std::string() : d.status().message();
      },
      "DURATION", "duration");
  return v;
}

namespace {

TimeMs NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

const CLI::Validator& TimeCheck() {
  static const CLI::Validator v(
      [](std::string& s) -> std::string {
        if (auto t = ParseTime(s); t.ok()) {
          s = FormatTime(t.value());
          return "";
        }
        if (!s.empty() && std::isalpha(static_cast<unsigned char>(s.back()))) {
          if (auto d = ParseDuration(s); d.ok()) {
            s = FormatTime(NowMs() - d.value());
            return "";
          }
        }
        return "'" + s +
               "' is neither an RFC 3339 UTC time (2026-11-22T10:00:00Z) nor a duration ago "
               "(30m, 2h, 7d)";
      },
      "TIME", "time");
  return v;
}

std::string Clause(const char* pointer, const char* op, const std::string& value) {
  return std::string(pointer) + " " + op + " " +
         json(value).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string AndFilter(const std::string& user, const std::vector<std::string>& clauses) {
  std::string out;
  for (const auto& c : clauses) {
    if (c.empty()) continue;
    out += (out.empty() ? "" : " and ") + c;
  }
  if (user.empty()) return out;
  if (out.empty()) return user;
  return "(" + user + ") and " + out;
}

void AddSelectionOptions(CLI::App* cmd, Flags* f) {
  cmd->add_option("--filter", f->filter, "Query filter ('true' selects every dead letter)");
  cmd->add_option("--group", f->group, "A failure group (see dlq groups)");
  cmd->add_option("--reason", f->dlq_reason, "Only this reason; ANDed with --filter");
  cmd->add_option("--origin", f->origin, "Only those from this queue; ANDed with --filter");
  cmd->add_option("--queue", f->dlq, "Only this dead-letter queue");
  cmd->add_option("--since", f->since, "Dead-lettered at or after: RFC 3339 time or 2h (ago)")
      ->transform(TimeCheck());
  cmd->add_option("--until", f->until, "Dead-lettered before: RFC 3339 time or 2h (ago)")
      ->transform(TimeCheck());
}

void AddSelection(const Flags& f, json* body) {
  std::string filter =
      AndFilter(f.filter, {f.dlq_reason.empty() ? "" : Clause("/reason", "eq", f.dlq_reason),
                           f.origin.empty() ? "" : Clause("/origin", "eq", f.origin)});
  if (!filter.empty()) (*body)["filter"] = filter;
  if (!f.group.empty()) (*body)["group"] = f.group;
  if (!f.dlq.empty()) (*body)["deadLetterQueue"] = f.dlq;
  if (!f.since.empty()) (*body)["since"] = f.since;
  if (!f.until.empty()) (*body)["until"] = f.until;
}

}  // namespace redrive::cli
