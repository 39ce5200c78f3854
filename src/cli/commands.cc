#include "cli/commands.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "cli/client.h"
#include "cli/table.h"
#include "common/text.h"

namespace redrive::cli {

// ------------------------------------------------------------------ settings

std::optional<std::string> ProcessEnv(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

std::string DefaultConfigPath(const EnvLookup& env) {
  if (auto xdg = env("XDG_CONFIG_HOME")) return *xdg + "/redrive/cli.toml";
  if (auto home = env("HOME")) return *home + "/.config/redrive/cli.toml";
  return "";
}

namespace {

namespace fs = std::filesystem;

Status Invalid(std::string message) {
  return Status(ErrorCode::kInvalidArgument, std::move(message));
}

// One source of settings; unset keys are nullopt.
struct Source {
  std::string name;  // for messages: "command line", "environment", "config file X"
  std::optional<std::string> url, token, token_file, tenant, ca_file;
  fs::path base_dir;  // a relative token_file is relative to this
};

std::optional<std::string> NonEmpty(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

Result<Source> ReadConfigFile(const std::string& path) {
  Source src;
  src.name = "config file " + path;
  src.base_dir = fs::path(path).parent_path();
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return Invalid("config file " + path + ": " + std::string(e.description()) + " at " +
                   where.str());
  }
  for (const auto& [key, node] : root) {
    std::string k(key.str());
    std::optional<std::string>* slot = nullptr;
    if (k == "url") {
      slot = &src.url;
    } else if (k == "token") {
      slot = &src.token;
    } else if (k == "token_file") {
      slot = &src.token_file;
    } else if (k == "tenant") {
      slot = &src.tenant;
    } else if (k == "ca_file") {
      slot = &src.ca_file;
    } else {
      return Invalid("config file " + path + ": unknown key '" + k +
                     "' (known: url, token, token_file, tenant, ca_file)");
    }
    auto value = node.value<std::string>();
    if (!value) return Invalid("config file " + path + ": '" + k + "' must be a string");
    if (!value->empty()) *slot = *value;
  }
  return src;
}

Result<std::string> ReadTokenFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Invalid("cannot read token file " + path.string() + ": " + std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = ss.str();
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!token.empty() && is_space(token.back())) token.pop_back();
  size_t start = 0;
  while (start < token.size() && is_space(token[start])) ++start;
  token.erase(0, start);
  if (token.empty()) return Invalid("token file " + path.string() + " is empty");
  return token;
}

}  // namespace

Result<Settings> ResolveSettings(const GlobalOptions& flags, const EnvLookup& env) {
  Settings settings;
  settings.json = flags.json;

  Source file;
  std::string path = flags.config;
  std::error_code ec;
  if (!path.empty()) {
    if (!fs::is_regular_file(path, ec)) return Invalid("config file " + path + " does not exist");
  } else {
    path = DefaultConfigPath(env);
    if (!path.empty() && !fs::is_regular_file(path, ec)) path.clear();
  }
  if (!path.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(file, ReadConfigFile(path));
    settings.config_path = path;
  }

  Source flag{.name = "command line",
              .url = NonEmpty(flags.url),
              .token = NonEmpty(flags.token),
              .token_file = NonEmpty(flags.token_file),
              .tenant = NonEmpty(flags.tenant),
              .ca_file = NonEmpty(flags.ca_file),
              .base_dir = {}};
  Source environment{.name = "environment",
                     .url = env("REDRIVE_URL"),
                     .token = env("REDRIVE_TOKEN"),
                     .token_file = env("REDRIVE_TOKEN_FILE"),
                     .tenant = env("REDRIVE_TENANT"),
                     .ca_file = env("REDRIVE_CA_FILE"),
                     .base_dir = {}};
  const Source* order[] = {&flag, &environment, &file};

  settings.url = kDefaultUrl;
  for (const Source* s : order) {
    if (s->url) {
      settings.url = *s->url;
      break;
    }
  }
  for (const Source* s : order) {
    if (s->tenant) {
      settings.tenant = *s->tenant;
      break;
    }
  }
  for (const Source* s : order) {
    if (s->ca_file) {
      fs::path p(*s->ca_file);
      if (p.is_relative() && !s->base_dir.empty()) p = s->base_dir / p;
      if (!std::ifstream(p)) {
        return Invalid("cannot read CA file " + p.string() + ": " + std::strerror(errno));
      }
      settings.ca_file = p.string();
      break;
    }
  }
  for (const Source* s : order) {
    if (s->token && s->token_file) {
      return Invalid("both a token and a token file are given (" + s->name + "); keep one");
    }
    if (s->token) {
      settings.token = *s->token;
      break;
    }
    if (s->token_file) {
      fs::path p(*s->token_file);
      if (p.is_relative() && !s->base_dir.empty()) p = s->base_dir / p;
      REDRIVE_ASSIGN_OR_RETURN(settings.token, ReadTokenFile(p));
      break;
    }
  }
  return settings;
}

// ------------------------------------------------------------------ context and output

struct Context {
  explicit Context(Settings s)
      : settings(std::move(s)), client(settings.url, settings.token, settings.ca_file) {}

  Settings settings;
  Client client;

  std::string TenantPath() const { return "/v1/tenants/" + UrlEscape(settings.tenant); }
  std::string QueuePath(const std::string& queue) const {
    return TenantPath() + "/queues/" + UrlEscape(queue);
  }

  // Reports a failed call on stderr; returns the exit code it maps to.
  int Fail(const CallError& e) const {
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

  // The server's answer, pretty-printed (nothing for 204 No Content).
  void PrintJson(const json& j) const {
    if (j.is_null()) return;
    std::string text = j.dump(2, ' ', false, json::error_handler_t::replace);
    std::printf("%s\n", text.c_str());
  }
};

namespace {

int Usage(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return kExitUsage;
}

// Safe field access: the CLI never trusts the answer's shape enough to throw on it.
const json& At(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// A scalar as text: strings as they are, numbers and booleans as JSON, null as `absent`.
std::string Text(const json& v, const std::string& absent = "-") {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return absent;
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) out += (out.empty() ? "" : ", ") + Text(e, "");
    return out.empty() ? absent : out;
  }
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Text(const json& j, const char* key, const std::string& absent = "-") {
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

// The bytes of a body as the API carries them: a JSON string, base64 when "base64" is true.
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

// Prints the failed items of an ack/nack/extend answer; returns the exit code.
int ReportBatch(Context& ctx, const json& answer, const char* verb) {
  if (ctx.settings.json) ctx.PrintJson(answer);
  const json& results = Items(answer, "results");
  size_t failed = 0;
  for (const auto& r : results) {
    if (Text(r, "status") == "ok") continue;
    ++failed;
    const json& e = At(r, "error");
    std::fprintf(stderr, "error: %s: %s: %s\n", Printable(Text(r, "receipt")).c_str(),
                 Printable(Text(e, "code")).c_str(), Printable(Text(e, "message", "")).c_str());
  }
  if (!ctx.settings.json) {
    size_t ok = results.size() - failed;
    if (failed == 0) {
      std::printf("%s %zu\n", verb, ok);
    } else {
      std::printf("%s %zu of %zu\n", verb, ok, results.size());
    }
  }
  return failed == 0 ? kExitOk : kExitServerError;
}

void Flatten(const json& j, const std::string& prefix, Details* d) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object()) {
      Flatten(*it, key, d);
    } else {
      d->Add(key, Text(*it));
    }
  }
}

void PrintQueue(const json& q) {
  Details d;
  d.Add("name", Text(q, "name"));
  d.Add("kind", Text(q, "kind"));
  const json& depth = At(q, "depth");
  d.Add("ready", Text(depth, "ready"));
  d.Add("delayed", Text(depth, "delayed"));
  d.Add("leased", Text(depth, "leased"));
  d.Add("dead-lettered", Text(depth, "deadLettered"));
  d.Add("created at", Text(q, "createdAt"));
  d.Add("updated at", Text(q, "updatedAt"));
  const json& attributes = At(q, "attributes");
  if (attributes.is_object()) Flatten(attributes, "", &d);
  d.Print(stdout);
}

Status ReadAll(std::FILE* in, std::string* out) {
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), in)) > 0) out->append(buf, n);
  if (std::ferror(in)) return Invalid(std::string("read failed: ") + std::strerror(errno));
  return Status::Ok();
}

Status ReadFileBytes(const std::string& path, std::string* out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Invalid("cannot read " + path + ": " + std::strerror(errno));
  Status st = ReadAll(f, out);
  std::fclose(f);
  if (!st.ok()) return Invalid("cannot read " + path + ": " + st.message());
  return Status::Ok();
}

long LongPollTimeout(const std::string& wait) {
  DurationMs ms = 0;
  if (!wait.empty()) {
    auto d = ParseDuration(wait);
    if (d.ok()) ms = d.value();
  }
  return static_cast<long>(ms) + Client::kDefaultTimeoutMs;
}

// Checks a duration flag with the server's own parser, so a typo is a usage error (exit 2).
const CLI::Validator& DurationCheck() {
  static const CLI::Validator v(
      [](std::string& s) -> std::string {
        auto d = ParseDuration(s);
        return d.ok() ? std::string() : d.status().message();
      },
      "DURATION", "duration");
  return v;
}

TimeMs NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A point in time: an RFC 3339 UTC time as the API takes it, or a duration with a unit meaning
// that long ago ("2h"). Rewrites the flag's value to the API's form (FormatTime), so an exact
// time also compares exactly in a filter.
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

// A JSON-pointer comparison with `value` as a JSON string literal: /reason eq "rejected".
std::string Clause(const char* pointer, const char* op, const std::string& value) {
  return std::string(pointer) + " " + op + " " +
         json(value).dump(-1, ' ', false, json::error_handler_t::replace);
}

// The non-empty parts joined with "and"; `user` (a --filter, which may hold "or") is
// parenthesised when anything is added to it.
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

// Sets j[path[0]][path[1]]... = value, making objects on the way.
void SetPath(json& j, std::initializer_list<const char*> path, json value) {
  json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object()) *cur = json::object();
    cur = &(*cur)[key];
  }
  *cur = std::move(value);
}

}  // namespace

// ------------------------------------------------------------------ flags

struct ClientCommands::Flags {
  GlobalOptions global;
  std::string name;  // tenant, queue
  // token
  std::string label;
  std::vector<std::string> scopes;
  std::string token_id;
  std::string expires_in;
  std::string overlap;
  // tenant quotas (set-quota), in API field names; `unset` holds quotas to reset to the default
  json quota_flags = json::object();
  std::vector<std::string> unset;
  bool force = false;
  bool server = false;  // audit ls: the server-wide log
  // queue attributes: the flags write straight into this object, in API field names
  json attribute_flags = json::object();
  std::string attributes_json;
  // messages
  std::string queue;
  std::string body;
  std::string file;
  std::vector<std::string> attrs;
  std::string key;
  std::string delay;
  bool base64 = false;
  int max = 1;
  std::string wait;
  std::string visibility_timeout;
  bool ack = false;
  bool body_only = false;
  std::vector<std::string> receipts;
  std::string reason;
  std::string error;
  bool dead_letter = false;
  // dead letters: which ones
  std::string dlq;
  std::string origin;
  std::string dlq_reason;
  std::string filter;
  std::string group;
  std::string since;  // RFC 3339, already normalised by TimeCheck()
  std::string until;
  std::vector<std::string> ids;
  // dead letters: listing and paging (also audit)
  std::string fields;
  std::string sort;
  bool total = false;
  int limit = 0;
  std::string cursor;
  std::string id;  // a dead letter or a job
  // dead letters: actions
  std::string to;
  bool yes = false;
  // redrive jobs
  double rate = -1;  // < 0: not given
  int canary = 0;    // 0: not given
  std::string canary_wait;
  double canary_max_failure = -1;  // < 0: not given
  bool dry_run = false;
  bool wait_job = false;
};

namespace {

using Flags = ClientCommands::Flags;

void AddGlobalOptions(CLI::App* cmd, GlobalOptions* g) {
  const char* kGroup = "Connection";
  cmd->add_option("--url", g->url, "Server URL (env REDRIVE_URL; default http://127.0.0.1:8080)")
      ->group(kGroup);
  cmd->add_option("--token", g->token, "Bearer token (env REDRIVE_TOKEN)")->group(kGroup);
  cmd->add_option("--token-file", g->token_file, "File holding the token (env REDRIVE_TOKEN_FILE)")
      ->group(kGroup);
  cmd->add_option("--tenant", g->tenant, "Tenant (env REDRIVE_TENANT)")->group(kGroup);
  cmd->add_option("--ca-file", g->ca_file,
                  "PEM file of the CAs to trust for an https URL (env REDRIVE_CA_FILE)")
      ->group(kGroup);
  cmd->add_option("--config", g->config,
                  "CLI config file, TOML (default $XDG_CONFIG_HOME/redrive/cli.toml)")
      ->group(kGroup);
  cmd->add_flag("--json", g->json, "Print the server's JSON answer instead of a table")
      ->group(kGroup);
}

void AddQueueAttributeOptions(CLI::App* cmd, Flags* f) {
  json* a = &f->attribute_flags;
  auto duration = [&](const char* flag, std::initializer_list<const char*> path, const char* help) {
    std::vector<const char*> p(path);
    cmd->add_option_function<std::string>(
           flag,
           [a, p](const std::string& v) {
             json* cur = a;
             for (const char* k : p) cur = &(*cur)[k];
             *cur = v;
           },
           help)
        ->check(DurationCheck());
  };
  duration("--visibility-timeout", {"visibilityTimeout"}, "How long a receive hides a message");
  duration("--backoff-initial", {"retryPolicy", "backoff", "initial"},
           "Delay before the first retry");
  duration("--backoff-max", {"retryPolicy", "backoff", "max"}, "Longest delay between retries");
  duration("--message-ttl", {"messageTtl"},
           "Messages unconsumed this long take the exhausted action (0 = never)");
  duration("--retention", {"retention"},
           "Delete messages older than this (0 = keep until consumed)");
  duration("--delivery-delay", {"deliveryDelay"}, "Hide new messages this long");
  cmd->add_option_function<int64_t>(
      "--max-deliveries",
      [a](const int64_t& n) {
        SetPath(*a, {"retryPolicy", "maxDeliveries"}, n);
      },
      "Deliveries before the exhausted action (-1 = forever)");
  cmd->add_option_function<double>(
      "--backoff-multiplier",
      [a](const double& m) {
        SetPath(*a, {"retryPolicy", "backoff", "multiplier"}, m);
      },
      "Factor between successive retry delays");
  cmd->add_option_function<std::string>(
         "--on-exhausted",
         [a](const std::string& v) {
           SetPath(*a, {"retryPolicy", "onExhausted"}, v);
         },
         "What happens after the last delivery fails")
      ->check(CLI::IsMember({"dead-letter", "drop"}));
  cmd->add_option_function<int64_t>(
      "--max-length", [a](const int64_t& n) { SetPath(*a, {"maxLength"}, n); },
      "Most messages the queue holds (0 = unlimited)");
  cmd->add_option_function<std::string>(
         "--overflow", [a](const std::string& v) { SetPath(*a, {"overflow"}, v); },
         "What a full queue does")
      ->check(CLI::IsMember({"reject-publish", "dead-letter-oldest"}));
  cmd->add_option_function<int64_t>(
      "--max-message-size", [a](const int64_t& n) { SetPath(*a, {"maxMessageSize"}, n); },
      "Largest body in bytes");
  cmd->add_option_function<std::string>(
      "--dead-letter-queue", [a](const std::string& v) { SetPath(*a, {"deadLetterQueue"}, v); },
      "Where this queue's dead letters go");
  cmd->add_option("--attributes", f->attributes_json,
                  "Raw JSON object of attributes; the flags above override it");
}

// --attributes merged under the attribute flags.
Result<json> QueueAttributes(const Flags& f) {
  json merged = json::object();
  if (!f.attributes_json.empty()) {
    merged = json::parse(f.attributes_json, nullptr, false);
    if (merged.is_discarded() || !merged.is_object()) {
      return Invalid("--attributes must be a JSON object, like '{\"dedupWindow\":\"1m\"}'");
    }
  }
  merged.merge_patch(f.attribute_flags);
  return merged;
}

// ------------------------------------------------------------------ tenant

int TenantCreate(Context& ctx, const Flags& f) {
  auto r = ctx.client.Post("/v1/tenants", {{"name", f.name}});
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    std::printf("created tenant %s\n", Printable(Text(r.value(), "name")).c_str());
  }
  return kExitOk;
}

int TenantList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get("/v1/tenants");
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"name", "created at"});
  for (const auto& item : Items(r.value(), "tenants")) {
    t.AddRow({Text(item, "name"), Text(item, "createdAt")});
  }
  t.Print(stdout);
  return kExitOk;
}

std::string TenantPathOf(const std::string& name) { return "/v1/tenants/" + UrlEscape(name); }

void PrintTenant(const json& t) {
  Details d;
  d.Add("name", Text(t, "name"));
  d.Add("state", Text(t, "state"));
  d.Add("created at", Text(t, "createdAt"));
  const json& usage = At(t, "usage");
  const json& quotas = At(t, "quotas");
  const json& overrides = At(t, "quotaOverrides");
  // One line per quota: the limit (0 = unlimited), where it comes from, and the usage.
  struct Row {
    const char* field;
    const char* label;
    const char* usage;
  };
  for (const Row& row :
       {Row{"maxQueues", "max queues", "queues"}, Row{"maxMessages", "max messages", "messages"},
        Row{"maxBytes", "max bytes", "bytes"}, Row{"requestRate", "request rate", ""},
        Row{"requestBurst", "request burst", ""}}) {
    const json& limit = At(quotas, row.field);
    bool burst = std::string_view(row.field) == "requestBurst";
    std::string text = limit == 0 ? (burst ? "the request rate" : "unlimited") : Text(limit);
    text += overrides.contains(row.field) ? " (tenant)" : " (default)";
    if (*row.usage) text += ", using " + Text(usage, row.usage);
    d.Add(row.label, text);
  }
  d.Print(stdout);
}

int TenantShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(TenantPathOf(f.name));
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    PrintTenant(r.value());
  }
  return kExitOk;
}

int TenantSetQuota(Context& ctx, const Flags& f) {
  json quotas = f.quota_flags;
  for (const auto& u : f.unset) {
    if (quotas.contains(u)) return Usage("--unset " + u + " and a value for it exclude each other");
    quotas[u] = nullptr;
  }
  if (quotas.empty()) {
    return Usage("nothing to set: give at least one quota flag or --unset");
  }
  auto r = ctx.client.Patch(TenantPathOf(f.name), {{"quotas", quotas}});
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    PrintTenant(r.value());
  }
  return kExitOk;
}

int TenantRemove(Context& ctx, const Flags& f) {
  std::string path = TenantPathOf(f.name) + (f.force ? "?force=true" : "");
  auto r = ctx.client.Delete(path);
  if (!r.ok()) {
    int rc = ctx.Fail(r.error());
    if (r.error().code == "tenant-not-empty") {
      std::fprintf(stderr,
                   "hint: --force deletes the tenant with its queues, messages, dead letters, "
                   "tokens and audit log\n");
    }
    return rc;
  }
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    std::printf("deleted tenant %s\n", Printable(f.name).c_str());
  }
  return kExitOk;
}

// ------------------------------------------------------------------ token

// A new token's answer (create, rotate): every field, the secret last, and the warning.
int PrintNewToken(Context& ctx, const json& t) {
  if (ctx.settings.json) {
    ctx.PrintJson(t);
    return kExitOk;
  }
  Details d;
  d.Add("id", Text(t, "id"));
  d.Add("tenant", Text(t, "tenant"));
  d.Add("label", Text(t, "label"));
  d.Add("scopes", Text(t, "scopes"));
  d.Add("expires at", Text(t, "expiresAt", "never"));
  const json& replaces = At(t, "replaces");
  if (replaces.is_object()) {
    d.Add("replaces", Text(replaces, "id") + ", accepted until " + Text(replaces, "expiresAt"));
  }
  d.Add("token", Text(t, "token"));
  d.Print(stdout);
  std::printf("\nThis is the only time the token is shown: the server keeps just its hash.\n");
  return kExitOk;
}

int PrintTokens(Context& ctx, const json& answer) {
  if (ctx.settings.json) {
    ctx.PrintJson(answer);
    return kExitOk;
  }
  Table t({"id", "label", "scopes", "state", "created at", "expires at", "last used at"});
  for (const auto& item : Items(answer, "tokens")) {
    t.AddRow({Text(item, "id"), Text(item, "label"), Text(item, "scopes"), Text(item, "state"),
              Text(item, "createdAt"), Text(item, "expiresAt"), Text(item, "lastUsedAt")});
  }
  t.Print(stdout);
  return kExitOk;
}

// A rotation's body: the flags given, else no body (the server's default overlap).
json RotationBody(const Flags& f) {
  json body = json::object();
  if (!f.overlap.empty()) body["overlap"] = f.overlap;
  if (!f.expires_in.empty()) body["expiresIn"] = f.expires_in;
  return body;
}

int TokenCreate(Context& ctx, const Flags& f) {
  json body = {{"label", f.label}};
  if (!f.scopes.empty()) body["scopes"] = f.scopes;
  if (!f.expires_in.empty()) body["expiresIn"] = f.expires_in;
  auto r = ctx.client.Post(ctx.TenantPath() + "/tokens", body);
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintNewToken(ctx, r.value());
}

int TokenList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/tokens");
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintTokens(ctx, r.value());
}

int TokenRotate(Context& ctx, const Flags& f) {
  auto r = ctx.client.Post(ctx.TenantPath() + "/tokens/" + UrlEscape(f.token_id) + "/rotate",
                           RotationBody(f));
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintNewToken(ctx, r.value());
}

int OperatorTokenCreate(Context& ctx, const Flags& f) {
  json body = {{"label", f.label}};
  if (!f.expires_in.empty()) body["expiresIn"] = f.expires_in;
  auto r = ctx.client.Post("/v1/operator-tokens", body);
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintNewToken(ctx, r.value());
}

int OperatorTokenList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get("/v1/operator-tokens");
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintTokens(ctx, r.value());
}

int OperatorTokenRevoke(Context& ctx, const Flags& f) {
  auto r = ctx.client.Delete("/v1/operator-tokens/" + UrlEscape(f.token_id));
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    std::printf("revoked operator token %s\n", Printable(f.token_id).c_str());
  }
  return kExitOk;
}

int OperatorTokenRotate(Context& ctx, const Flags& f) {
  auto r =
      ctx.client.Post("/v1/operator-tokens/" + UrlEscape(f.token_id) + "/rotate", RotationBody(f));
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintNewToken(ctx, r.value());
}

int TokenRevoke(Context& ctx, const Flags& f) {
  auto r = ctx.client.Delete(ctx.TenantPath() + "/tokens/" + UrlEscape(f.token_id));
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    std::printf("revoked token %s\n", Printable(f.token_id).c_str());
  }
  return kExitOk;
}

// ------------------------------------------------------------------ queue

// Answers with a queue: the JSON with --json, else the queue view.
template <typename Answer>
int AnswerQueue(Context& ctx, const Answer& r) {
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    PrintQueue(r.value());
  }
  return kExitOk;
}

int QueueCreate(Context& ctx, const Flags& f) {
  auto attributes = QueueAttributes(f);
  if (!attributes.ok()) return Usage(attributes.status().message());
  json body = {{"name", f.name}};
  if (!attributes->empty()) body["attributes"] = attributes.value();
  auto r = ctx.client.Post(ctx.TenantPath() + "/queues", body);
  return AnswerQueue(ctx, r);
}

int QueueUpdate(Context& ctx, const Flags& f) {
  auto attributes = QueueAttributes(f);
  if (!attributes.ok()) return Usage(attributes.status().message());
  if (attributes->empty()) {
    return Usage("nothing to update: give at least one attribute flag or --attributes");
  }
  auto r = ctx.client.Patch(ctx.QueuePath(f.name), {{"attributes", attributes.value()}});
  return AnswerQueue(ctx, r);
}

int QueueList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/queues");
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"name", "kind", "ready", "delayed", "leased", "dead-lettered"});
  for (const auto& q : Items(r.value(), "queues")) {
    const json& depth = At(q, "depth");
    t.AddRow({Text(q, "name"), Text(q, "kind"), Text(depth, "ready"), Text(depth, "delayed"),
              Text(depth, "leased"), Text(depth, "deadLettered")});
  }
  t.Print(stdout);
  return kExitOk;
}

int QueueShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(ctx.QueuePath(f.name));
  return AnswerQueue(ctx, r);
}

int QueueRemove(Context& ctx, const Flags& f) {
  auto r = ctx.client.Delete(ctx.QueuePath(f.name));
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    std::printf("deleted queue %s\n", Printable(f.name).c_str());
  }
  return kExitOk;
}

// ------------------------------------------------------------------ messages

int Send(Context& ctx, const Flags& f, bool body_given) {
  std::string bytes;
  if (body_given && !f.file.empty()) return Usage("give BODY or --file, not both");
  if (!f.file.empty()) {
    Status st = ReadFileBytes(f.file, &bytes);
    if (!st.ok()) return Usage(st.message());
  } else if (body_given) {
    bytes = f.body;
  } else {
    if (isatty(STDIN_FILENO)) {
      std::fprintf(stderr, "reading the message body from stdin (end it with Ctrl-D)\n");
    }
    Status st = ReadAll(stdin, &bytes);
    if (!st.ok()) return Usage("stdin: " + st.message());
  }

  json message = json::object();
  // Bodies are bytes; JSON strings carry only UTF-8, so anything else travels as base64.
  if (f.base64 || !IsValidUtf8(bytes)) {
    message["body"] = Base64Encode(bytes);
    message["base64"] = true;
  } else {
    message["body"] = bytes;
  }
  if (!f.attrs.empty()) {
    json attributes = json::object();
    for (const auto& kv : f.attrs) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Usage("--attr takes KEY=VALUE, got '" + Printable(kv) + "'");
      }
      std::string k = kv.substr(0, eq);
      if (attributes.contains(k)) return Usage("--attr '" + Printable(k) + "' given twice");
      attributes[k] = kv.substr(eq + 1);
    }
    message["attributes"] = attributes;
  }
  if (!f.key.empty()) message["idempotencyKey"] = f.key;
  if (!f.delay.empty()) message["delay"] = f.delay;

  auto r =
      ctx.client.Post(ctx.QueuePath(f.queue) + "/messages", {{"messages", json::array({message})}});
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  const json& items = Items(r.value(), "messages");
  if (items.empty()) {
    return ctx.Fail({CallError::Kind::kBadResponse, 0, "", "the server returned no message id"});
  }
  const json& m = items.front();
  if (At(m, "duplicate") == true) {
    std::printf("%s (duplicate)\n", Printable(Text(m, "id")).c_str());
  } else {
    std::printf("%s\n", Printable(Text(m, "id")).c_str());
  }
  return kExitOk;
}

int Receive(Context& ctx, const Flags& f) {
  if (f.max < 1) return Usage("--max must be at least 1");
  json body = {{"maxMessages", f.max}};
  if (!f.wait.empty()) body["wait"] = f.wait;
  if (!f.visibility_timeout.empty()) body["visibilityTimeout"] = f.visibility_timeout;
  auto r = ctx.client.Post(ctx.QueuePath(f.queue) + "/receive", body, LongPollTimeout(f.wait));
  if (!r.ok()) return ctx.Fail(r.error());
  const json& messages = Items(r.value(), "messages");

  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else if (f.body_only) {
    for (const auto& m : messages) {
      auto bytes = BodyBytes(m);
      if (!bytes.ok()) {
        return ctx.Fail({CallError::Kind::kBadResponse, 0, "",
                         "message " + Text(m, "id") + ": " + bytes.status().message()});
      }
      std::fwrite(bytes->data(), 1, bytes->size(), stdout);
    }
  } else {
    bool first = true;
    for (const auto& m : messages) {
      if (!first) std::printf("\n");
      first = false;
      Details d;
      d.Add("id", Text(m, "id"));
      d.Add("deliveries", Text(m, "deliveryCount"));
      d.Add("receipt", Text(m, "receipt"));
      d.Add("lease expires at", Text(m, "leaseExpiresAt"));
      d.Add("idempotency key", Text(m, "idempotencyKey"));
      d.Add("attributes", CompactJson(At(m, "attributes")));
      AddBody(&d, m);
      d.Print(stdout);
    }
    if (messages.empty()) std::fprintf(stderr, "no messages\n");
  }
  std::fflush(stdout);

  if (!f.ack || messages.empty()) return kExitOk;
  std::vector<std::string> receipts;
  for (const auto& m : messages) receipts.push_back(Text(m, "receipt", ""));
  auto acked = ctx.client.Post(ctx.QueuePath(f.queue) + "/ack", {{"receipts", receipts}});
  if (!acked.ok()) return ctx.Fail(acked.error());
  int failed = 0;
  for (const auto& item : Items(acked.value(), "results")) {
    if (Text(item, "status") == "ok") continue;
    ++failed;
    const json& e = At(item, "error");
    std::fprintf(stderr, "error: %s: %s: %s\n", Printable(Text(item, "receipt")).c_str(),
                 Printable(Text(e, "code")).c_str(), Printable(Text(e, "message", "")).c_str());
  }
  if (!ctx.settings.json && !f.body_only) {
    std::fprintf(stderr, "acked %zu of %zu\n", messages.size() - failed, messages.size());
  }
  return failed == 0 ? kExitOk : kExitServerError;
}

int Ack(Context& ctx, const Flags& f) {
  auto r = ctx.client.Post(ctx.QueuePath(f.queue) + "/ack", {{"receipts", f.receipts}});
  if (!r.ok()) return ctx.Fail(r.error());
  return ReportBatch(ctx, r.value(), "acked");
}

int Nack(Context& ctx, const Flags& f) {
  json nacks = json::array();
  for (const auto& receipt : f.receipts) {
    json n = {{"receipt", receipt}};
    if (!f.reason.empty()) n["reason"] = f.reason;
    if (!f.error.empty()) n["error"] = f.error;
    if (!f.delay.empty()) n["delay"] = f.delay;
    if (f.dead_letter) n["deadLetter"] = true;
    nacks.push_back(std::move(n));
  }
  auto r = ctx.client.Post(ctx.QueuePath(f.queue) + "/nack", {{"nacks", nacks}});
  if (!r.ok()) return ctx.Fail(r.error());
  return ReportBatch(ctx, r.value(), f.dead_letter ? "rejected" : "nacked");
}

int Extend(Context& ctx, const Flags& f) {
  auto r = ctx.client.Post(ctx.QueuePath(f.queue) + "/extend",
                           {{"receipts", f.receipts}, {"visibilityTimeout", f.visibility_timeout}});
  if (!r.ok()) return ctx.Fail(r.error());
  return ReportBatch(ctx, r.value(), "extended");
}

// ------------------------------------------------------------------ dead letters

constexpr size_t kCauseWidth = 60;
constexpr size_t kDetailWidth = 80;

// An integer field, 0 when absent or not an integer.
int64_t Int(const json& j, const char* key) {
  const json& v = At(j, key);
  return v.is_number_integer() ? v.get<int64_t>() : 0;
}

std::string IntText(const json& j, const char* key) { return std::to_string(Int(j, key)); }

// The entries of a _fields value, trimmed, without a leading '/'.
std::vector<std::string> FieldList(const std::string& fields) {
  std::vector<std::string> out;
  std::string entry;
  std::istringstream in(fields);
  while (std::getline(in, entry, ',')) {
    size_t a = entry.find_first_not_of(' '), b = entry.find_last_not_of(' ');
    if (a == std::string::npos) continue;
    entry = entry.substr(a, b - a + 1);
    if (entry[0] == '/') entry.erase(0, 1);
    if (!entry.empty() && std::find(out.begin(), out.end(), entry) == out.end()) {
      out.push_back(entry);
    }
  }
  return out;
}

// The value at a JSON pointer without its leading '/' ("attributes/region", "~1" for '/',
// "~0" for '~'), or null when there is none.
const json& AtPointer(const json& doc, const std::string& pointer) {
  static const json kNull;
  const json* cur = &doc;
  std::string token;
  std::istringstream in(pointer);
  while (std::getline(in, token, '/')) {
    std::string decoded;
    for (size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
        decoded += token[++i] == '0' ? '~' : '/';
      } else {
        decoded += token[i];
      }
    }
    if (cur->is_object()) {
      auto it = cur->find(decoded);
      if (it == cur->end()) return kNull;
      cur = &*it;
    } else if (cur->is_array() && !decoded.empty() &&
               decoded.find_first_not_of("0123456789") == std::string::npos &&
               decoded.size() < 10 && std::stoul(decoded) < cur->size()) {
      cur = &(*cur)[std::stoul(decoded)];
    } else {
      return kNull;
    }
  }
  return *cur;
}

// Prints "next cursor: C" when the answer has a next page.
void PrintNextCursor(const json& answer) {
  const json& next = At(answer, "pagedResultsCookie");
  if (next.is_string()) {
    std::printf("next cursor: %s\n", Printable(next.get<std::string>()).c_str());
  }
}

int DlqList(Context& ctx, const Flags& f) {
  std::string filter =
      AndFilter(f.filter, {f.dlq_reason.empty() ? "" : Clause("/reason", "eq", f.dlq_reason),
                           f.since.empty() ? "" : Clause("/deadLetteredAt", "ge", f.since),
                           f.until.empty() ? "" : Clause("/deadLetteredAt", "lt", f.until)});
  QueryParams query = {{"_queryFilter", filter},
                       {"_fields", f.fields},
                       {"_sortKeys", f.sort},
                       {"_pageSize", f.limit > 0 ? std::to_string(f.limit) : ""},
                       {"_pagedResultsCookie", f.cursor},
                       {"_totalPagedResultsPolicy", f.total ? "EXACT" : ""},
                       {"queue", f.dlq},
                       {"origin", f.origin}};
  std::string path = ctx.TenantPath() + "/dead-letters";
  if (!f.group.empty()) {
    path = ctx.TenantPath() + "/failure-groups/" + UrlEscape(f.group) + "/dead-letters";
  }
  auto r = ctx.client.Get(path, query);
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  const json& items = Items(r.value(), "result");
  size_t rows = 0;
  if (f.fields.empty()) {
    Table t({"id", "origin", "reason", "deliveries", "dead-lettered at", "group", "cause"});
    for (const auto& d : items) {
      t.AddRow({Text(d, "id"), Text(d, "origin"), Text(d, "reason"), Text(d, "deliveryCount"),
                Text(d, "deadLetteredAt"), Text(d, "group"),
                Truncate(Printable(Text(d, "cause", "")), kCauseWidth)});
    }
    rows = t.rows();
    if (rows > 0) t.Print(stdout);
  } else {
    // The columns are what was asked for, id first (the server always keeps it).
    std::vector<std::string> columns = {"id"};
    for (const auto& field : FieldList(f.fields)) {
      if (field != "id") columns.push_back(field);
    }
    Table t(columns);
    for (const auto& d : items) {
      std::vector<std::string> cells;
      for (const auto& c : columns) {
        cells.push_back(Truncate(Printable(Text(AtPointer(d, c))), kCauseWidth));
      }
      t.AddRow(std::move(cells));
    }
    rows = t.rows();
    if (rows > 0) t.Print(stdout);
  }
  if (rows == 0) std::fprintf(stderr, "no dead letters\n");
  const json& total = At(r.value(), "totalPagedResults");
  if (rows > 0 && total.is_number_integer() && total.get<int64_t>() >= 0) {
    std::printf("total: %lld\n", static_cast<long long>(total.get<int64_t>()));
  }
  PrintNextCursor(r.value());
  return kExitOk;
}

int DlqShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/dead-letters/" + UrlEscape(f.id));
  if (!r.ok()) return ctx.Fail(r.error());
  const json& d = r.value();
  if (ctx.settings.json) {
    ctx.PrintJson(d);
    return kExitOk;
  }
  Details details;
  details.Add("id", Text(d, "id"));
  details.Add("dead-letter queue", Text(d, "deadLetterQueue"));
  details.Add("origin", Text(d, "origin"));
  details.Add("reason", Text(d, "reason"));
  details.AddMultiline("cause", Text(d, "cause", ""));
  details.Add("group", Text(d, "group"));
  details.Add("signature", Text(d, "signature"));
  details.Add("deliveries", Text(d, "deliveryCount"));
  details.Add("idempotency key", Text(d, "idempotencyKey"));
  details.Add("published at", Text(d, "publishedAt"));
  details.Add("first delivered at", Text(d, "firstDeliveredAt"));
  details.Add("last delivered at", Text(d, "lastDeliveredAt"));
  details.Add("dead-lettered at", Text(d, "deadLetteredAt"));
  details.Add("expires at", Text(d, "expiresAt"));
  const json& lineage = At(d, "lineage");
  details.Add("original queue", Text(lineage, "originalQueue"));
  details.Add("redrives", Text(lineage, "redriveCount", "0"));
  details.Add("last redriven at", Text(lineage, "lastRedrivenAt"));
  details.Add("last redriven by", Text(lineage, "lastRedrivenBy"));
  details.AddMultiline("redrive error", Text(d, "redriveError"));
  details.Add("attributes", CompactJson(At(d, "attributes")));
  AddBody(&details, d);
  details.Print(stdout);

  const json& attempts = Items(d, "attempts");
  std::string title = "attempts (" + std::to_string(attempts.size());
  std::string omitted = Text(d, "attemptsOmitted", "0");
  if (omitted != "0") title += ", and " + omitted + " in between not kept";
  std::printf("\n%s):\n", title.c_str());
  Table t({"at", "outcome", "consumer", "reason", "error"});
  for (const auto& a : attempts) {
    t.AddRow({Text(a, "at"), Text(a, "outcome"), Text(a, "consumer"), Text(a, "reason", ""),
              Text(a, "error", "")});
  }
  t.Print(stdout);
  return kExitOk;
}

int DlqGroups(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/failure-groups", {{"queue", f.dlq}});
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"group", "count", "origin", "reason", "last seen", "signature"});
  for (const auto& g : Items(r.value(), "groups")) {
    // The signature is "origin | reason | normalised cause"; the first two have their columns.
    std::string signature = Text(g, "signature", "");
    std::string prefix = Text(g, "origin", "") + " | " + Text(g, "reason", "") + " | ";
    if (signature.rfind(prefix, 0) == 0) signature.erase(0, prefix.size());
    t.AddRow({Text(g, "id"), Text(g, "count"), Text(g, "origin"), Text(g, "reason"),
              Text(g, "lastSeen"), Truncate(Printable(signature), kCauseWidth)});
  }
  if (t.rows() == 0) {
    std::fprintf(stderr, "no failure groups\n");
  } else {
    t.Print(stdout);
  }
  return kExitOk;
}

int DlqStats(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/dead-letter-stats", {{"queue", f.dlq}});
  if (!r.ok()) return ctx.Fail(r.error());
  const json& s = r.value();
  if (ctx.settings.json) {
    ctx.PrintJson(s);
    return kExitOk;
  }
  std::printf("total: %s\n", IntText(s, "total").c_str());
  // One table per breakdown: largest first, or in time order (with a bar) for the hours.
  auto section = [&](const char* key, const char* title, bool hours) {
    const json& counts = At(s, key);
    if (!counts.is_object() || counts.empty()) return;
    std::vector<std::pair<std::string, int64_t>> rows;
    int64_t most = 0;
    for (auto it = counts.begin(); it != counts.end(); ++it) {
      int64_t n = it->is_number_integer() ? it->get<int64_t>() : 0;
      rows.emplace_back(it.key(), n);
      most = std::max(most, n);
    }
    if (!hours) {
      std::stable_sort(rows.begin(), rows.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
    }
    Table t = hours ? Table({title, "count", ""}) : Table({title, "count"});
    constexpr int64_t kBarWidth = 40;
    for (const auto& [k, n] : rows) {
      int64_t bar = most > 0 ? std::max<int64_t>(n > 0 ? 1 : 0, n * kBarWidth / most) : 0;
      t.AddRow({k, std::to_string(n), std::string(static_cast<size_t>(bar), '#')});
    }
    std::printf("\n");
    t.Print(stdout);
  };
  section("byOrigin", "origin", false);
  section("byReason", "reason", false);
  section("byGroup", "group", false);
  section("byHour", "hour", true);
  return kExitOk;
}

// Adds what selects dead letters (all but ids) to a bulk-action or job body: the filter (with
// --reason and --origin ANDed in), the group, the dead-letter queue and the time window.
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

// The target of rm, restore and reroute: the IDs, or the selection flags (not both).
Result<json> TargetBody(const Flags& f) {
  json body = json::object();
  AddSelection(f, &body);
  if (!f.ids.empty()) {
    if (!body.empty()) {
      return Invalid(
          "give dead letter IDs or selection flags (--filter, --group, --reason, --origin, "
          "--queue, --since, --until), not both");
    }
    // Each id once: the server would count a repeat as matched, then skipped as not-found.
    std::vector<std::string> ids;
    for (const auto& id : f.ids) {
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
    body["ids"] = ids;
    return body;
  }
  if (!body.contains("filter") && !body.contains("group")) {
    return Invalid(
        "say which dead letters: IDs, or --filter, --group, --reason or --origin "
        "(--filter true selects every one; 'dlq purge' empties a dead-letter queue)");
  }
  return body;
}

// Prints an action's result (matched, done, skipped) on stdout, or the answer with --json, and
// each skipped dead letter on stderr. The call succeeded, so skips do not change the exit code.
int ReportAction(Context& ctx, const json& answer, const char* verb) {
  if (ctx.settings.json) {
    ctx.PrintJson(answer);
  } else {
    std::printf("matched %s, %s %s, skipped %s\n", IntText(answer, "matched").c_str(), verb,
                IntText(answer, "done").c_str(), IntText(answer, "skipped").c_str());
  }
  const json& items = Items(answer, "skippedItems");
  for (const auto& s : items) {
    std::string detail = Text(s, "detail", "");
    std::fprintf(stderr, "skipped %s: %s%s\n", Printable(Text(s, "id")).c_str(),
                 Printable(Text(s, "reason")).c_str(),
                 detail.empty() ? "" : Printable(" (" + detail + ")").c_str());
  }
  int64_t unlisted = Int(answer, "skipped") - static_cast<int64_t>(items.size());
  if (unlisted > 0) {
    std::fprintf(stderr, "... and %lld more skipped (the server lists the first %zu)\n",
                 static_cast<long long>(unlisted), items.size());
  }
  return kExitOk;
}

// Bulk actions can touch many rows in one call; give them longer than a browse.
constexpr long kActionTimeoutMs = 600'000;

int DlqAction(Context& ctx, const Flags& f, const std::string& action, const char* verb) {
  auto body = TargetBody(f);
  if (!body.ok()) return Usage(body.status().message());
  if (action == "reroute") (*body)["destination"] = f.to;
  auto r =
      ctx.client.Post(ctx.TenantPath() + "/dead-letters/" + action, body.value(), kActionTimeoutMs);
  if (!r.ok()) return ctx.Fail(r.error());
  return ReportAction(ctx, r.value(), verb);
}

int DlqRemove(Context& ctx, const Flags& f) { return DlqAction(ctx, f, "delete", "deleted"); }
int DlqRestore(Context& ctx, const Flags& f) { return DlqAction(ctx, f, "restore", "restored"); }
int DlqReroute(Context& ctx, const Flags& f) { return DlqAction(ctx, f, "reroute", "rerouted"); }

int DlqPurge(Context& ctx, const Flags& f) {
  if (!f.yes) {
    // Say what it would do, with the count when the server tells it.
    std::string what = "every dead letter";
    auto stats = ctx.client.Get(ctx.TenantPath() + "/dead-letter-stats", {{"queue", f.dlq}});
    if (stats.ok() && At(stats.value(), "total").is_number_integer()) {
      what = "all " + IntText(stats.value(), "total") + " dead letters";
    }
    std::fprintf(stderr, "purge would delete %s in '%s', for good\n", what.c_str(),
                 Printable(f.dlq).c_str());
    return Usage("nothing purged: add --yes to purge");
  }
  auto r = ctx.client.Post(ctx.TenantPath() + "/dead-letter-queues/" + UrlEscape(f.dlq) + "/purge",
                           {{"confirm", f.dlq}}, kActionTimeoutMs);
  if (!r.ok()) return ctx.Fail(r.error());
  return ReportAction(ctx, r.value(), "purged");
}

// ------------------------------------------------------------------ redrive jobs

std::string JobPath(const Context& ctx, const std::string& id) {
  return ctx.TenantPath() + "/redrive-jobs/" + UrlEscape(id);
}

bool IsFinished(const std::string& state) {
  return state == "completed" || state == "cancelled" || state == "failed" || state == "halted";
}

// "moved M of T, skipped S" from a job's progress.
std::string ProgressText(const json& job) {
  const json& p = At(job, "progress");
  return "moved " + IntText(p, "moved") + " of " + IntText(p, "toMove") + ", skipped " +
         IntText(p, "skipped");
}

// "45s", "3m05s", "2h10m".
std::string ShortDuration(double seconds) {
  long long s = std::llround(std::max(0.0, seconds));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%llds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  }
  return buf;
}

void PrintJob(const json& j) {
  Details d;
  d.Add("id", Text(j, "id"));
  d.Add("state", Text(j, "state"));
  d.Add("phase", Text(j, "phase"));
  const json& spec = At(j, "spec");
  d.Add("dead-letter queue", Text(spec, "deadLetterQueue"));
  d.Add("filter", Text(spec, "filter"));
  d.Add("group", Text(spec, "group"));
  d.Add("since", Text(spec, "since"));
  d.Add("until", Text(spec, "until"));
  d.Add("destination", Text(spec, "destination", "each message's origin"));
  const json& rate = At(spec, "rate");
  d.Add("rate", rate.is_number() && rate.get<double>() > 0 ? Text(rate) + " msg/s" : "unthrottled");
  const json& canary = At(spec, "canary");
  if (canary.is_object()) {
    const json& max_failure = At(canary, "maxFailure");
    char share[32] = "?";
    if (max_failure.is_number()) {
      std::snprintf(share, sizeof(share), "%g%%", max_failure.get<double>() * 100);
    }
    d.Add("canary", Text(canary, "count") + " messages, watched for " + Text(canary, "wait") +
                        "; halt if more than " + share + " fail again");
  } else {
    d.Add("canary", "none");
  }
  const json& p = At(j, "progress");
  d.Add("to move", IntText(p, "toMove"));
  d.Add("moved", IntText(p, "moved"));
  d.Add("skipped", IntText(p, "skipped"));
  d.Add("failed again", IntText(p, "failedAgain"));
  d.AddMultiline("halt reason", Text(j, "haltReason"));
  d.AddMultiline("error", Text(j, "error"));
  d.Add("created by", Text(j, "createdBy"));
  d.Add("created at", Text(j, "createdAt"));
  d.Add("updated at", Text(j, "updatedAt"));
  d.Add("finished at", Text(j, "finishedAt"));
  d.Print(stdout);
}

// The outcome of a finished (or halted) job: a summary line on stdout (the job with --json),
// why it did not complete on stderr. Exit 0 only when it completed.
int ReportJobEnd(Context& ctx, const json& job) {
  std::string id = Printable(Text(job, "id"));
  std::string state = Text(job, "state", "");
  if (ctx.settings.json) {
    ctx.PrintJson(job);
  } else {
    std::printf("%s %s: %s, failed again %s\n", id.c_str(), Printable(state).c_str(),
                ProgressText(job).c_str(), IntText(At(job, "progress"), "failedAgain").c_str());
  }
  if (state == "completed") return kExitOk;
  if (state == "halted") {
    std::fprintf(stderr, "error: job %s halted: %s\n", id.c_str(),
                 Printable(Text(job, "haltReason")).c_str());
    std::fprintf(stderr,
                 "hint: 'redrive jobs resume %s' moves the rest; 'redrive jobs cancel %s' stops "
                 "it\n",
                 id.c_str(), id.c_str());
  } else if (state == "failed") {
    std::fprintf(stderr, "error: job %s failed: %s\n", id.c_str(),
                 Printable(Text(job, "error")).c_str());
  } else {
    std::fprintf(stderr, "error: job %s was %s\n", id.c_str(), Printable(state).c_str());
  }
  return kExitServerError;
}

constexpr auto kPollInterval = std::chrono::milliseconds(500);

// Ctrl-C while a bar is drawn: end its line, then die of SIGINT as usual. Only watching stops;
// the job runs on in the server.
extern "C" void EndBarOnInterrupt(int sig) {
  ssize_t ignored = write(STDERR_FILENO, "\n", 1);
  (void)ignored;
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Polls the job until it is finished or halted. Progress goes to stderr: a bar redrawn in place
// when stderr is a terminal, else a line each time the state, phase or counts change.
int WatchJob(Context& ctx, const std::string& id) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (tty) std::signal(SIGINT, EndBarOnInterrupt);
  const auto started = std::chrono::steady_clock::now();
  int64_t first_moved = -1;
  std::string last_line;
  bool bar_drawn = false;
  json job;
  for (;;) {
    auto r = ctx.client.Get(JobPath(ctx, id));
    if (!r.ok()) {
      if (bar_drawn) std::fputc('\n', stderr);
      return ctx.Fail(r.error());
    }
    job = std::move(r).value();
    std::string state = Printable(Text(job, "state", ""));
    std::string phase = Printable(Text(job, "phase", ""));
    const json& p = At(job, "progress");
    int64_t to_move = Int(p, "toMove"), moved = Int(p, "moved"), skipped = Int(p, "skipped");
    if (first_moved < 0) first_moved = moved;
    if (tty) {
      constexpr int kWidth = 30;
      double done =
          to_move > 0
              ? std::min(1.0, static_cast<double>(moved + skipped) / static_cast<double>(to_move))
              : (state == "completed" ? 1.0 : 0.0);
      int filled = static_cast<int>(done * kWidth);
      std::string line = "[" + std::string(static_cast<size_t>(filled), '#') +
                         std::string(static_cast<size_t>(kWidth - filled), '-') + "] " +
                         std::to_string(moved) + "/" + std::to_string(to_move) + " " +
                         std::to_string(static_cast<int>(done * 100)) + "%";
      if (skipped > 0) line += "  skipped " + std::to_string(skipped);
      double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (elapsed >= 1.0 && !IsFinished(state)) {
        double rate = static_cast<double>(moved - first_moved) / elapsed;
        char buf[64];
        std::snprintf(buf, sizeof(buf), "  %.1f msg/s", rate);
        line += buf;
        int64_t left = to_move - moved - skipped;
        if (rate > 0 && left > 0) {
          line += "  eta " + ShortDuration(static_cast<double>(left) / rate);
        }
      }
      line += "  " + state + (phase.empty() || phase == "done" ? "" : " (" + phase + ")");
      std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
      std::fflush(stderr);
      bar_drawn = true;
    } else {
      std::string line = Printable(id) + " " + state +
                         (phase.empty() || phase == "done" ? "" : " (" + phase + ")") + ": " +
                         ProgressText(job);
      if (line != last_line) {
        std::fprintf(stderr, "%s\n", line.c_str());
        std::fflush(stderr);
        last_line = line;
      }
    }
    if (IsFinished(state)) break;
    std::this_thread::sleep_for(kPollInterval);
  }
  if (bar_drawn) std::fputc('\n', stderr);
  return ReportJobEnd(ctx, job);
}

int JobStart(Context& ctx, const Flags& f) {
  json body = json::object();
  AddSelection(f, &body);
  if (!f.to.empty()) body["destination"] = f.to;
  if (f.rate >= 0) body["rate"] = f.rate;
  if (f.canary > 0) {
    json canary = {{"count", f.canary}};
    if (!f.canary_wait.empty()) canary["wait"] = f.canary_wait;
    if (f.canary_max_failure >= 0) canary["maxFailure"] = f.canary_max_failure;
    body["canary"] = canary;
  }
  if (f.dry_run) body["dryRun"] = true;
  auto r = ctx.client.Post(ctx.TenantPath() + "/redrive-jobs", body);
  if (!r.ok()) {
    int rc = ctx.Fail(r.error());
    if (r.error().code == "job-active") {
      std::fprintf(stderr,
                   "hint: 'redrive jobs ls' shows it; wait for it or 'redrive jobs cancel' it\n");
    }
    return rc;
  }
  const json& answer = r.value();
  if (f.dry_run) {
    if (ctx.settings.json) {
      ctx.PrintJson(answer);
      return kExitOk;
    }
    std::printf("would move: %s\n", IntText(answer, "toMove").c_str());
    const json& destinations = At(answer, "destinations");
    if (destinations.is_object() && !destinations.empty()) {
      Table t({"destination", "count"});
      for (auto it = destinations.begin(); it != destinations.end(); ++it) {
        t.AddRow({it.key(), Text(*it)});
      }
      std::printf("\n");
      t.Print(stdout);
    }
    const json& sample = Items(answer, "sample");
    if (!sample.empty()) {
      Table t({"sample"});
      for (const auto& id : sample) t.AddRow({Text(id)});
      std::printf("\n");
      t.Print(stdout);
    }
    std::fprintf(stderr, "dry run: nothing was moved\n");
    return kExitOk;
  }
  std::string id = Text(answer, "id", "");
  if (!f.wait_job) {
    if (ctx.settings.json) {
      ctx.PrintJson(answer);
    } else {
      std::printf("%s\n", Printable(id).c_str());
    }
    return kExitOk;
  }
  if (!ctx.settings.json) std::printf("%s\n", Printable(id).c_str());
  std::fflush(stdout);
  return WatchJob(ctx, id);
}

int JobList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/redrive-jobs");
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"id", "state", "phase", "dead-letter queue", "moved", "skipped", "destination",
           "created at"});
  for (const auto& j : Items(r.value(), "jobs")) {
    const json& p = At(j, "progress");
    const json& spec = At(j, "spec");
    t.AddRow({Text(j, "id"), Text(j, "state"), Text(j, "phase"), Text(spec, "deadLetterQueue"),
              IntText(p, "moved") + "/" + IntText(p, "toMove"), IntText(p, "skipped"),
              Text(spec, "destination", "(origin)"), Text(j, "createdAt")});
  }
  if (t.rows() == 0) {
    std::fprintf(stderr, "no redrive jobs\n");
  } else {
    t.Print(stdout);
  }
  return kExitOk;
}

int JobShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(JobPath(ctx, f.id));
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    PrintJob(r.value());
  }
  return kExitOk;
}

int JobTransition(Context& ctx, const Flags& f, const char* action) {
  auto r = ctx.client.Post(JobPath(ctx, f.id) + "/" + action, json::object());
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    std::printf("job %s is %s\n", Printable(Text(r.value(), "id")).c_str(),
                Printable(Text(r.value(), "state")).c_str());
  }
  return kExitOk;
}

int JobCancel(Context& ctx, const Flags& f) { return JobTransition(ctx, f, "cancel"); }
int JobResume(Context& ctx, const Flags& f) { return JobTransition(ctx, f, "resume"); }
int JobWatch(Context& ctx, const Flags& f) { return WatchJob(ctx, f.id); }

// ------------------------------------------------------------------ audit

// An audit entry's detail on one line, what was acted on first: "key=value" pairs with the
// job, target, queue and destination leading, an action's result as its counts, then the rest
// as compact JSON. A detail that is not an object is shown as JSON.
std::string AuditDetail(const json& detail) {
  if (!detail.is_object()) return CompactJson(detail);
  std::vector<std::string> order = {"tenant",          "token",       "queue",  "job",   "target",
                                    "deadLetterQueue", "destination", "toMove", "result"};
  for (auto it = detail.begin(); it != detail.end(); ++it) {
    if (std::find(order.begin(), order.end(), it.key()) == order.end()) order.push_back(it.key());
  }
  std::string out;
  auto add = [&](const std::string& key, const json& v) {
    out += (out.empty() ? "" : " ") + key + "=" +
           (v.is_string() ? v.get<std::string>() : CompactJson(v));
  };
  for (const auto& key : order) {
    auto it = detail.find(key);
    if (it == detail.end()) continue;
    if (key == "result" && it->is_object()) {
      for (const char* k : {"matched", "done", "skipped"}) {
        if (it->contains(k)) add(k, (*it)[k]);
      }
    } else {
      add(key, *it);
    }
  }
  return out;
}

int AuditList(Context& ctx, const Flags& f) {
  QueryParams query = {{"_queryFilter", f.filter},
                       {"_pageSize", f.limit > 0 ? std::to_string(f.limit) : ""},
                       {"_pagedResultsCookie", f.cursor}};
  if (!f.server && ctx.settings.tenant.empty()) {
    return Usage(
        "no tenant: pass --tenant, set REDRIVE_TENANT, or set tenant in the config file (or "
        "--server for the server-wide log)");
  }
  auto r = ctx.client.Get(f.server ? "/v1/audit" : ctx.TenantPath() + "/audit", query);
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"id", "at", "actor", "action", "detail"});
  for (const auto& e : Items(r.value(), "result")) {
    t.AddRow({Text(e, "id"), Text(e, "at"), Text(e, "actor"), Text(e, "action"),
              Truncate(Printable(AuditDetail(At(e, "detail"))), kDetailWidth)});
  }
  if (t.rows() == 0) {
    std::fprintf(stderr, "no audit entries\n");
  } else {
    t.Print(stdout);
  }
  PrintNextCursor(r.value());
  return kExitOk;
}

}  // namespace

// ------------------------------------------------------------------ registration

void ClientCommands::AddLeaf(CLI::App* app, bool needs_tenant, std::function<int(Context&)> run) {
  AddGlobalOptions(app, &flags_->global);
  leaves_.push_back({app, std::move(run), needs_tenant});
}

ClientCommands::ClientCommands(CLI::App& app) : flags_(std::make_unique<Flags>()) {
  Flags* f = flags_.get();
  auto with = [f](int (*fn)(Context&, const Flags&)) {
    return [f, fn](Context& ctx) { return fn(ctx, *f); };
  };

  // tenant
  auto* tenant = app.add_subcommand("tenant", "Create and list tenants (operator token)");
  tenant->require_subcommand(1);
  auto* tenant_create = tenant->add_subcommand("create", "Create a tenant");
  tenant_create->add_option("NAME", f->name, "Tenant name")->required();
  AddLeaf(tenant_create, false, with(TenantCreate));
  AddLeaf(tenant->add_subcommand("ls", "List tenants"), false, with(TenantList));
  auto* tenant_show =
      tenant->add_subcommand("show", "Show a tenant's quotas and what it uses of them");
  tenant_show->add_option("NAME", f->name, "Tenant name")->required();
  AddLeaf(tenant_show, false, with(TenantShow));
  auto* tenant_quota =
      tenant->add_subcommand("set-quota", "Override the default quotas of a tenant (operator)");
  tenant_quota->add_option("NAME", f->name, "Tenant name")->required();
  for (const auto& [flag, field, help] : std::vector<std::array<const char*, 3>>{
           {"--max-queues", "maxQueues", "Most standard queues (0 = unlimited)"},
           {"--max-messages", "maxMessages",
            "Most stored messages, dead letters included (0 = unlimited)"},
           {"--max-bytes", "maxBytes", "Most body bytes of those messages (0 = unlimited)"},
           {"--request-rate", "requestRate", "Requests per second (0 = unlimited)"},
           {"--request-burst", "requestBurst", "Requests at once (0 = the rate)"}}) {
    json* q = &f->quota_flags;
    std::string name = field;
    tenant_quota
        ->add_option_function<int64_t>(
            flag, [q, name](const int64_t& v) { (*q)[name] = v; }, help)
        ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()));
  }
  tenant_quota
      ->add_option("--unset", f->unset,
                   "Back to the server default for this quota (repeatable): maxQueues, "
                   "maxMessages, maxBytes, requestRate, requestBurst")
      ->check(
          CLI::IsMember({"maxQueues", "maxMessages", "maxBytes", "requestRate", "requestBurst"}))
      ->allow_extra_args(false);
  AddLeaf(tenant_quota, false, with(TenantSetQuota));
  auto* tenant_rm = tenant->add_subcommand("rm", "Delete a tenant (operator)");
  tenant_rm->add_option("NAME", f->name, "Tenant name")->required();
  tenant_rm->add_flag("--force", f->force,
                      "Also when it has queues: delete everything it holds, for good");
  AddLeaf(tenant_rm, false, with(TenantRemove));

  // token
  auto* token = app.add_subcommand("token", "Create, list and revoke the tenant's tokens");
  token->require_subcommand(1);
  auto* token_create = token->add_subcommand("create", "Create a token; prints its secret once");
  token_create->add_option("--label", f->label, "What the token is for")->required();
  token_create
      ->add_option("--scope", f->scopes,
                   "A scope (repeatable): publish, consume, dlq:read, dlq:write, dlq:export, "
                   "admin; default all")
      ->allow_extra_args(false);
  token_create->add_option("--expires-in", f->expires_in, "Refuse the token after this long")
      ->check(DurationCheck());
  AddLeaf(token_create, true, with(TokenCreate));
  AddLeaf(token->add_subcommand("ls", "List tokens"), true, with(TokenList));
  auto* token_revoke = token->add_subcommand("revoke", "Revoke a token");
  token_revoke->add_option("ID", f->token_id, "Token id (tok_...)")->required();
  AddLeaf(token_revoke, true, with(TokenRevoke));
  // The rotate subcommand of `token` and `operator-token`.
  auto add_rotate = [f](CLI::App* parent) {
    auto* rotate = parent->add_subcommand(
        "rotate", "Issue a replacement with the same scopes; the old one works for --overlap");
    rotate->add_option("ID", f->token_id, "Token id (tok_...)")->required();
    rotate
        ->add_option("--overlap", f->overlap,
                     "How long the old token stays valid (default 24h, at most 30d; 0s = now)")
        ->check(DurationCheck());
    rotate->add_option("--expires-in", f->expires_in, "Refuse the new token after this long")
        ->check(DurationCheck());
    return rotate;
  };
  AddLeaf(add_rotate(token), true, with(TokenRotate));

  // operator-token
  auto* op_token = app.add_subcommand(
      "operator-token", "Create, list, rotate and revoke operator tokens (operator token)");
  op_token->require_subcommand(1);
  auto* op_create =
      op_token->add_subcommand("create", "Create an operator token; prints its secret once");
  op_create->add_option("--label", f->label, "What the token is for")->required();
  op_create->add_option("--expires-in", f->expires_in, "Refuse the token after this long")
      ->check(DurationCheck());
  AddLeaf(op_create, false, with(OperatorTokenCreate));
  AddLeaf(op_token->add_subcommand("ls", "List operator tokens"), false, with(OperatorTokenList));
  auto* op_revoke =
      op_token->add_subcommand("revoke", "Revoke an operator token (never the last active one)");
  op_revoke->add_option("ID", f->token_id, "Token id (tok_...)")->required();
  AddLeaf(op_revoke, false, with(OperatorTokenRevoke));
  AddLeaf(add_rotate(op_token), false, with(OperatorTokenRotate));

  // queue
  auto* queue = app.add_subcommand("queue", "Create, change, list, show and delete queues");
  queue->require_subcommand(1);
  auto* queue_create = queue->add_subcommand("create", "Create a queue");
  queue_create->add_option("NAME", f->name, "Queue name")->required();
  AddQueueAttributeOptions(queue_create, f);
  AddLeaf(queue_create, true, with(QueueCreate));
  auto* queue_update = queue->add_subcommand("update", "Change a queue's attributes");
  queue_update->add_option("NAME", f->name, "Queue name")->required();
  AddQueueAttributeOptions(queue_update, f);
  AddLeaf(queue_update, true, with(QueueUpdate));
  AddLeaf(queue->add_subcommand("ls", "List queues with their depths"), true, with(QueueList));
  auto* queue_show = queue->add_subcommand("show", "Show a queue's depths and attributes");
  queue_show->add_option("NAME", f->name, "Queue name")->required();
  AddLeaf(queue_show, true, with(QueueShow));
  auto* queue_rm = queue->add_subcommand("rm", "Delete a queue and its messages");
  queue_rm->add_option("NAME", f->name, "Queue name")->required();
  AddLeaf(queue_rm, true, with(QueueRemove));

  // send
  auto* send = app.add_subcommand("send", "Publish one message");
  send->add_option("QUEUE", f->queue, "Queue name")->required();
  auto* body_opt = send->add_option("BODY", f->body, "Message body (default: --file or stdin)");
  send->add_option("--file", f->file, "Read the body from this file");
  send->add_option("--attr", f->attrs, "Attribute KEY=VALUE (repeatable)")->allow_extra_args(false);
  send->add_option("--key", f->key, "Idempotency key");
  send->add_option("--delay", f->delay, "Hide the message this long")->check(DurationCheck());
  send->add_flag("--base64", f->base64,
                 "Send the body base64-encoded (automatic when it is not UTF-8)");
  AddLeaf(send, true, [f, body_opt](Context& ctx) { return Send(ctx, *f, body_opt->count() > 0); });

  // receive
  auto* receive = app.add_subcommand("receive", "Receive (lease) messages and print them");
  receive->add_option("QUEUE", f->queue, "Queue name")->required();
  receive->add_option("--max", f->max, "Most messages to receive (default 1)");
  receive->add_option("--wait", f->wait, "Long-poll up to this long for a first message")
      ->check(DurationCheck());
  receive
      ->add_option("--visibility-timeout", f->visibility_timeout,
                   "Lease length (default: the queue's)")
      ->check(DurationCheck());
  receive->add_flag("--ack", f->ack, "Ack the messages after printing them");
  receive->add_flag("--body-only", f->body_only,
                    "Print only the bodies, as raw bytes (decoded from base64)");
  AddLeaf(receive, true, with(Receive));

  // ack, nack, extend
  auto* ack = app.add_subcommand("ack", "Ack received messages: they are done");
  ack->add_option("QUEUE", f->queue, "Queue name")->required();
  ack->add_option("RECEIPT", f->receipts, "Receipts from receive")->required();
  AddLeaf(ack, true, with(Ack));
  auto* nack = app.add_subcommand("nack", "Nack received messages: retry later or dead-letter");
  nack->add_option("QUEUE", f->queue, "Queue name")->required();
  nack->add_option("RECEIPT", f->receipts, "Receipts from receive")->required();
  nack->add_option("--reason", f->reason, "Short reason, kept in the attempt journal");
  nack->add_option("--error", f->error, "Error text, kept in the attempt journal");
  auto* nack_delay = nack->add_option("--delay", f->delay,
                                      "Retry after this long (default: "
                                      "the queue's backoff)")
                         ->check(DurationCheck());
  nack->add_flag("--dead-letter", f->dead_letter, "Dead-letter now (reason 'rejected')")
      ->excludes(nack_delay);
  AddLeaf(nack, true, with(Nack));
  auto* extend = app.add_subcommand("extend", "Extend the leases of received messages");
  extend->add_option("QUEUE", f->queue, "Queue name")->required();
  extend->add_option("RECEIPT", f->receipts, "Receipts from receive")->required();
  extend->add_option("--visibility-timeout", f->visibility_timeout, "New lease length from now")
      ->required()
      ->check(DurationCheck());
  AddLeaf(extend, true, with(Extend));

  // dlq
  auto* dlq = app.add_subcommand("dlq", "Browse, group, delete, restore and reroute dead letters");
  dlq->require_subcommand(1);
  auto* dlq_ls = dlq->add_subcommand("ls", "List dead letters (query, project, sort, page)");
  dlq_ls->add_option("--filter", f->filter,
                     "Query filter, e.g. '/reason eq \"rejected\" and /attributes/region sw "
                     "\"eu\"'");
  dlq_ls->add_option("--reason", f->dlq_reason,
                     "Only this reason (max-deliveries, rejected, expired, overflow); ANDed "
                     "with --filter");
  dlq_ls->add_option("--since", f->since, "Dead-lettered at or after: RFC 3339 time or 2h (ago)")
      ->transform(TimeCheck());
  dlq_ls->add_option("--until", f->until, "Dead-lettered before: RFC 3339 time or 2h (ago)")
      ->transform(TimeCheck());
  dlq_ls->add_option("--queue", f->dlq, "Only this dead-letter queue");
  dlq_ls->add_option("--origin", f->origin, "Only those that came from this queue");
  dlq_ls->add_option("--group", f->group, "Only this failure group (see dlq groups)");
  dlq_ls->add_option("--fields", f->fields,
                     "Comma list of fields to return and show, e.g. id,attributes/region");
  dlq_ls->add_option("--sort", f->sort,
                     "Sort keys, e.g. -deadLetteredAt,origin (default: arrival)");
  dlq_ls->add_option("--limit", f->limit, "Page size (server default 100, at most 1000)")
      ->check(CLI::Range(1, 1000));
  dlq_ls->add_option("--cursor", f->cursor, "Continue after a previous page (its next cursor)");
  dlq_ls->add_flag("--total", f->total, "Count every match, even when that needs a full scan");
  AddLeaf(dlq_ls, true, with(DlqList));
  auto* dlq_show = dlq->add_subcommand("show", "Show one dead letter with its attempt journal");
  dlq_show->add_option("ID", f->id, "Dead letter id")->required();
  AddLeaf(dlq_show, true, with(DlqShow));
  auto* dlq_groups = dlq->add_subcommand(
      "groups", "List failure groups: dead letters with one cause, largest first");
  dlq_groups->add_option("--queue", f->dlq, "Only this dead-letter queue");
  AddLeaf(dlq_groups, true, with(DlqGroups));
  auto* dlq_stats =
      dlq->add_subcommand("stats", "Count dead letters by origin, reason, group, hour");
  dlq_stats->add_option("--queue", f->dlq, "Only this dead-letter queue");
  AddLeaf(dlq_stats, true, with(DlqStats));
  // The selection flags of rm, restore, reroute and jobs start.
  auto add_selection = [f](CLI::App* cmd) {
    cmd->add_option("--filter", f->filter, "Query filter ('true' selects every dead letter)");
    cmd->add_option("--group", f->group, "A failure group (see dlq groups)");
    cmd->add_option("--reason", f->dlq_reason, "Only this reason; ANDed with --filter");
    cmd->add_option("--origin", f->origin, "Only those from this queue; ANDed with --filter");
    cmd->add_option("--queue", f->dlq, "Only this dead-letter queue");
    cmd->add_option("--since", f->since, "Dead-lettered at or after: RFC 3339 time or 2h (ago)")
        ->transform(TimeCheck());
    cmd->add_option("--until", f->until, "Dead-lettered before: RFC 3339 time or 2h (ago)")
        ->transform(TimeCheck());
  };
  auto add_action = [&](const char* name, const char* help, int (*fn)(Context&, const Flags&)) {
    auto* cmd = dlq->add_subcommand(name, help);
    cmd->add_option("ID", f->ids, "Dead letter ids (or select with the flags)");
    add_selection(cmd);
    AddLeaf(cmd, true, with(fn));
    return cmd;
  };
  add_action("rm", "Delete dead letters for good", DlqRemove);
  add_action("restore", "Move dead letters back to the queues they came from", DlqRestore);
  auto* dlq_reroute = add_action("reroute", "Move dead letters to another queue", DlqReroute);
  dlq_reroute->add_option("--to", f->to, "The queue to move them to")->required();
  auto* dlq_purge = dlq->add_subcommand("purge", "Delete every dead letter of a dead-letter queue");
  dlq_purge->add_option("DLQ", f->dlq, "Dead-letter queue name")->required();
  dlq_purge->add_flag("--yes", f->yes, "Really purge (without it, say what would go and exit 2)");
  AddLeaf(dlq_purge, true, with(DlqPurge));

  // jobs
  auto* jobs = app.add_subcommand("jobs", "Redrive jobs: move dead letters back in the background");
  jobs->require_subcommand(1);
  auto* jobs_start = jobs->add_subcommand("start", "Start a redrive job (or --dry-run it)");
  add_selection(jobs_start);
  jobs_start->add_option("--to", f->to, "Move them here (default: each one's origin queue)");
  jobs_start->add_option("--rate", f->rate, "Most messages per second (0 = unthrottled)")
      ->check(CLI::NonNegativeNumber);
  auto* canary = jobs_start
                     ->add_option("--canary", f->canary,
                                  "Move this many first, wait, and halt if too many fail again")
                     ->check(CLI::Range(1, 100000));
  jobs_start->add_option("--canary-wait", f->canary_wait, "How long to watch the canary (30s)")
      ->check(DurationCheck())
      ->needs(canary);
  jobs_start
      ->add_option("--canary-max-failure", f->canary_max_failure,
                   "Halt when a larger share of the canary fails again (0.1)")
      ->check(CLI::Range(0.0, 1.0))
      ->needs(canary);
  auto* dry_run = jobs_start->add_flag("--dry-run", f->dry_run,
                                       "Count what would move, and where; move nothing");
  jobs_start->add_flag("--wait", f->wait_job, "Show progress until the job finishes or halts")
      ->excludes(dry_run);
  AddLeaf(jobs_start, true, with(JobStart));
  AddLeaf(jobs->add_subcommand("ls", "List redrive jobs"), true, with(JobList));
  auto add_job = [&](const char* name, const char* help, int (*fn)(Context&, const Flags&)) {
    auto* cmd = jobs->add_subcommand(name, help);
    cmd->add_option("ID", f->id, "Job id (job_...)")->required();
    AddLeaf(cmd, true, with(fn));
  };
  add_job("show", "Show a job's spec and progress", JobShow);
  add_job("cancel", "Cancel a running or halted job", JobCancel);
  add_job("resume", "Resume a halted job", JobResume);
  add_job("watch", "Show a job's progress until it finishes or halts", JobWatch);

  // audit
  auto* audit =
      app.add_subcommand("audit", "The audit log: dead-letter actions and administrative changes");
  audit->require_subcommand(1);
  auto* audit_ls = audit->add_subcommand("ls", "List audit entries, oldest first");
  audit_ls->add_option("--filter", f->filter, "Query filter, e.g. '/action sw \"job.\"'");
  audit_ls->add_option("--limit", f->limit, "Page size (server default 100, at most 1000)")
      ->check(CLI::Range(1, 1000));
  audit_ls->add_option("--cursor", f->cursor, "Continue after a previous page (its next cursor)");
  audit_ls->add_flag("--server", f->server,
                     "The server-wide log (tenants, operator tokens, quotas; operator token)");
  AddLeaf(audit_ls, false, with(AuditList));
}

ClientCommands::~ClientCommands() = default;

bool ClientCommands::Selected() const {
  for (const auto& leaf : leaves_) {
    if (leaf.app->parsed()) return true;
  }
  return false;
}

int ClientCommands::Run(const EnvLookup& env) {
  for (auto& leaf : leaves_) {
    if (!leaf.app->parsed()) continue;
    auto settings = ResolveSettings(flags_->global, env);
    if (!settings.ok()) return Usage(settings.status().message());
    if (leaf.needs_tenant && settings->tenant.empty()) {
      return Usage(
          "no tenant: pass --tenant, set REDRIVE_TENANT, or set tenant in the config file");
    }
    // The last line of defence: nothing below should throw, but a throw must not abort.
    try {
      Context ctx(std::move(settings).value());
      return leaf.run(ctx);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: internal: %s\n", e.what());
      return kExitServerError;
    }
  }
  return Usage("no command");
}

}  // namespace redrive::cli
