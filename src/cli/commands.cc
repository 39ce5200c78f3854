#include "cli/commands.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

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
  std::optional<std::string> url, token, token_file, tenant;
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
    } else {
      return Invalid("config file " + path + ": unknown key '" + k +
                     "' (known: url, token, token_file, tenant)");
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
              .base_dir = {}};
  Source environment{.name = "environment",
                     .url = env("REDRIVE_URL"),
                     .token = env("REDRIVE_TOKEN"),
                     .token_file = env("REDRIVE_TOKEN_FILE"),
                     .tenant = env("REDRIVE_TENANT"),
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
  explicit Context(Settings s) : settings(std::move(s)), client(settings.url, settings.token) {}

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
  // dead letters
  std::string dlq;
  std::string origin;
  std::string dlq_reason;
  int limit = 0;
  std::string cursor;
  std::string id;
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

// ------------------------------------------------------------------ token

int TokenCreate(Context& ctx, const Flags& f) {
  json body = {{"label", f.label}};
  if (!f.scopes.empty()) body["scopes"] = f.scopes;
  auto r = ctx.client.Post(ctx.TenantPath() + "/tokens", body);
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Details d;
  d.Add("id", Text(r.value(), "id"));
  d.Add("tenant", Text(r.value(), "tenant"));
  d.Add("label", Text(r.value(), "label"));
  d.Add("scopes", Text(r.value(), "scopes"));
  d.Add("token", Text(r.value(), "token"));
  d.Print(stdout);
  std::printf("\nThis is the only time the token is shown: the server keeps just its hash.\n");
  return kExitOk;
}

int TokenList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/tokens");
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"id", "label", "scopes", "created at", "revoked at"});
  for (const auto& item : Items(r.value(), "tokens")) {
    t.AddRow({Text(item, "id"), Text(item, "label"), Text(item, "scopes"), Text(item, "createdAt"),
              Text(item, "revokedAt")});
  }
  t.Print(stdout);
  return kExitOk;
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

int QueueCreate(Context& ctx, const Flags& f) {
  auto attributes = QueueAttributes(f);
  if (!attributes.ok()) return Usage(attributes.status().message());
  json body = {{"name", f.name}};
  if (!attributes->empty()) body["attributes"] = attributes.value();
  auto r = ctx.client.Post(ctx.TenantPath() + "/queues", body);
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    PrintQueue(r.value());
  }
  return kExitOk;
}

int QueueUpdate(Context& ctx, const Flags& f) {
  auto attributes = QueueAttributes(f);
  if (!attributes.ok()) return Usage(attributes.status().message());
  if (attributes->empty()) {
    return Usage("nothing to update: give at least one attribute flag or --attributes");
  }
  auto r = ctx.client.Patch(ctx.QueuePath(f.name), {{"attributes", attributes.value()}});
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    PrintQueue(r.value());
  }
  return kExitOk;
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
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else {
    PrintQueue(r.value());
  }
  return kExitOk;
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

int DlqList(Context& ctx, const Flags& f) {
  QueryParams query = {{"queue", f.dlq},
                       {"origin", f.origin},
                       {"reason", f.dlq_reason},
                       {"limit", f.limit > 0 ? std::to_string(f.limit) : ""},
                       {"cursor", f.cursor}};
  auto r = ctx.client.Get(ctx.TenantPath() + "/dead-letters", query);
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"id", "origin", "reason", "deliveries", "dead-lettered at", "cause"});
  for (const auto& d : Items(r.value(), "deadLetters")) {
    t.AddRow({Text(d, "id"), Text(d, "origin"), Text(d, "reason"), Text(d, "deliveryCount"),
              Text(d, "deadLetteredAt"), Truncate(Printable(Text(d, "cause", "")), kCauseWidth)});
  }
  if (t.rows() == 0) {
    std::fprintf(stderr, "no dead letters\n");
  } else {
    t.Print(stdout);
  }
  const json& next = At(r.value(), "nextCursor");
  if (next.is_string()) {
    std::printf("next cursor: %s\n", Printable(next.get<std::string>()).c_str());
  }
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
  details.Add("deliveries", Text(d, "deliveryCount"));
  details.Add("idempotency key", Text(d, "idempotencyKey"));
  details.Add("published at", Text(d, "publishedAt"));
  details.Add("first delivered at", Text(d, "firstDeliveredAt"));
  details.Add("last delivered at", Text(d, "lastDeliveredAt"));
  details.Add("dead-lettered at", Text(d, "deadLetteredAt"));
  details.Add("expires at", Text(d, "expiresAt"));
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
  AddLeaf(token_create, true, with(TokenCreate));
  AddLeaf(token->add_subcommand("ls", "List tokens"), true, with(TokenList));
  auto* token_revoke = token->add_subcommand("revoke", "Revoke a token");
  token_revoke->add_option("ID", f->token_id, "Token id (tok_...)")->required();
  AddLeaf(token_revoke, true, with(TokenRevoke));

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
  auto* dlq = app.add_subcommand("dlq", "Browse dead letters");
  dlq->require_subcommand(1);
  auto* dlq_ls = dlq->add_subcommand("ls", "List dead letters, oldest first");
  dlq_ls->add_option("--queue", f->dlq, "Only this dead-letter queue");
  dlq_ls->add_option("--origin", f->origin, "Only those that came from this queue");
  dlq_ls->add_option("--reason", f->dlq_reason,
                     "Only this reason: max-deliveries, rejected, expired, overflow");
  dlq_ls->add_option("--limit", f->limit, "Page size (server default 100, at most 1000)")
      ->check(CLI::Range(1, 1000));
  dlq_ls->add_option("--cursor", f->cursor, "Continue after a previous page");
  AddLeaf(dlq_ls, true, with(DlqList));
  auto* dlq_show = dlq->add_subcommand("show", "Show one dead letter with its attempt journal");
  dlq_show->add_option("ID", f->id, "Dead letter id")->required();
  AddLeaf(dlq_show, true, with(DlqShow));
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
