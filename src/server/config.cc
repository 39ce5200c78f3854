#include "server/config.h"

#include <toml++/toml.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "common/text.h"

namespace redrive::server {
namespace {

using nlohmann::json;

Status Bad(const std::string& key, const std::string& why) {
  return Status(ErrorCode::kInvalidArgument, "config: '" + key + "' " + why);
}

// TOML values to the JSON the REST API takes, so queue attributes have one decoder.
json ToJson(const toml::node& node) {
  if (auto t = node.as_table()) {
    json j = json::object();
    for (const auto& [k, v] : *t) j[std::string(k.str())] = ToJson(v);
    return j;
  }
  if (auto a = node.as_array()) {
    json j = json::array();
    for (const auto& v : *a) j.push_back(ToJson(v));
    return j;
  }
  if (auto s = node.as_string()) return s->get();
  if (auto i = node.as_integer()) return i->get();
  if (auto f = node.as_floating_point()) return f->get();
  if (auto b = node.as_boolean()) return b->get();
  return nullptr;
}

Status ReadDurationKey(const toml::table& t, const char* key, const std::string& where,
                       int* out_ms) {
  auto node = t.get(key);
  if (!node) return Status::Ok();
  auto s = node->value<std::string>();
  if (!s) return Bad(where + key, "must be a duration string like \"30s\"");
  auto d = ParseDuration(*s);
  if (!d.ok()) return Bad(where + key, d.status().message());
  if (d.value() > 86'400'000) return Bad(where + key, "must be at most 1d");
  *out_ms = static_cast<int>(d.value());
  return Status::Ok();
}

template <typename T>
Status ReadIntKey(const toml::table& t, const char* key, const std::string& where, int64_t lo,
                  int64_t hi, T* out) {
  auto node = t.get(key);
  if (!node) return Status::Ok();
  // Integers only: toml++'s float-to-integer conversion casts before it checks the range
  // (undefined for 1e33), and a setting like max_batch = 1.5 is a mistake worth naming.
  auto v = node->is_integer() ? node->value<int64_t>() : std::nullopt;
  if (!v || *v < lo || *v > hi) {
    return Bad(where + key,
               "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  *out = static_cast<T>(*v);
  return Status::Ok();
}

Status ReadStringKey(const toml::table& t, const char* key, const std::string& where,
                     std::string* out) {
  auto node = t.get(key);
  if (!node) return Status::Ok();
  auto v = node->value<std::string>();
  if (!v) return Bad(where + key, "must be a string");
  *out = *v;
  return Status::Ok();
}

// The default tenant quotas: [quotas] keys, REDRIVE_QUOTA_* variables and --quota-* flags.
struct QuotaKey {
  const char* key;
  const char* env;
  int64_t engine::TenantQuotas::*field;
  int64_t max;
};
constexpr QuotaKey kQuotaKeys[] = {
    {"max_queues", "REDRIVE_QUOTA_MAX_QUEUES", &engine::TenantQuotas::max_queues, INT64_MAX},
    {"max_messages", "REDRIVE_QUOTA_MAX_MESSAGES", &engine::TenantQuotas::max_messages, INT64_MAX},
    {"max_bytes", "REDRIVE_QUOTA_MAX_BYTES", &engine::TenantQuotas::max_bytes, INT64_MAX},
    {"request_rate", "REDRIVE_QUOTA_REQUEST_RATE", &engine::TenantQuotas::request_rate,
     1'000'000'000},
    {"request_burst", "REDRIVE_QUOTA_REQUEST_BURST", &engine::TenantQuotas::request_burst,
     1'000'000'000},
};

Status OnlyKeys(const toml::table& t, std::initializer_list<std::string_view> allowed,
                const std::string& where) {
  for (const auto& [k, v] : t) {
    bool ok = false;
    for (auto a : allowed) ok = ok || k.str() == a;
    if (!ok) return Bad(where + std::string(k.str()), "is not a known setting");
  }
  return Status::Ok();
}

// Larger script files are refused unread; the engine refuses a script over 64 KiB anyway.
constexpr size_t kMaxScriptFileBytes = 1024 * 1024;

// retryPolicy.script_file, the config file's own way to give a queue's script: the file is read
// now, relative to the config file's folder, into retryPolicy.script, the attribute the API
// takes. `*resolved` is the path read.
Status ReadScriptFile(const std::string& config_path, const std::string& where, json* attributes,
                      std::string* resolved) {
  auto retry = attributes->find("retryPolicy");
  if (retry == attributes->end() || !retry->is_object()) return Status::Ok();
  auto file = retry->find("script_file");
  if (file == retry->end()) return Status::Ok();
  const std::string key = where + "retryPolicy.script_file";
  if (!file->is_string() || file->get_ref<const std::string&>().empty()) {
    return Bad(key, "must be the path of a Lua file");
  }
  if (retry->contains("script")) {
    return Bad(key,
               "and 'retryPolicy.script' exclude each other: give the script inline or "
               "in a file");
  }
  std::filesystem::path path(file->get<std::string>());
  if (path.is_relative()) path = std::filesystem::path(config_path).parent_path() / path;
  *resolved = path.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Bad(key, "cannot read " + *resolved + ": " +
                        (ec ? ec.message() : std::string("not a regular file")));
  }
  std::FILE* f = std::fopen(resolved->c_str(), "rb");
  if (f == nullptr) return Bad(key, "cannot read " + *resolved + ": " + std::strerror(errno));
  std::string text;
  char buf[65536];
  size_t n;
  while (text.size() <= kMaxScriptFileBytes && (n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    text.append(buf, n);
  }
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return Bad(key, "cannot read " + *resolved);
  if (text.size() > kMaxScriptFileBytes) {
    return Bad(key, *resolved + " is over 1 MiB; a script is at most 64 KiB");
  }
  if (!IsValidUtf8(text)) return Bad(key, *resolved + " is not UTF-8 text");
  retry->erase("script_file");
  (*retry)["script"] = std::move(text);
  return Status::Ok();
}

}  // namespace

std::string ServerConfig::StoreUri() const {
  return store.empty() ? "sqlite:" + data_dir + "/redrive.db" : store;
}

Status ApplyListen(const std::string& listen, ServerConfig* c) {
  std::string host = c->http.host;
  std::string port = listen;
  auto colon = listen.rfind(':');
  if (colon != std::string::npos) {
    if (colon > 0) host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  // An IPv6 address is written in brackets: [::1]:8080.
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return Bad("listen", "an IPv6 address goes in brackets, like [::1]:8080");
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) {
    return Bad("listen", "must look like 127.0.0.1:8080 or [::1]:8080");
  }
  c->http.host = host;
  c->http.port = static_cast<int>(p);
  return Status::Ok();
}

Status LoadConfigFile(const std::string& path, ServerConfig* c) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Status(ErrorCode::kInvalidArgument, "config " + path + ":" +
                                                   std::to_string(e.source().begin.line) + ": " +
                                                   std::string(e.description()));
  }
  REDRIVE_RETURN_IF_ERROR(OnlyKeys(
      root, {"server", "store", "limits", "tenants", "tls", "quotas", "exports", "notifications"},
      ""));
  if (auto server = root["server"].as_table()) {
    REDRIVE_RETURN_IF_ERROR(
        OnlyKeys(*server,
                 {"listen", "data_dir", "store", "log_level", "max_connections", "request_timeout",
                  "idle_timeout", "drain_timeout", "max_body_bytes", "max_header_bytes",
                  "io_threads", "handler_threads"},
                 "server."));
    std::string listen;
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*server, "listen", "server.", &listen));
    if (!listen.empty()) REDRIVE_RETURN_IF_ERROR(ApplyListen(listen, c));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*server, "data_dir", "server.", &c->data_dir));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*server, "store", "server.", &c->store));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*server, "log_level", "server.", &c->log_level));
    REDRIVE_RETURN_IF_ERROR(
        ReadIntKey(*server, "max_connections", "server.", 1, 100'000, &c->http.max_connections));
    REDRIVE_RETURN_IF_ERROR(
        ReadIntKey(*server, "io_threads", "server.", 0, 64, &c->http.io_threads));
    REDRIVE_RETURN_IF_ERROR(
        ReadIntKey(*server, "handler_threads", "server.", 1, 1024, &c->http.handler_threads));
    REDRIVE_RETURN_IF_ERROR(ReadIntKey(*server, "max_body_bytes", "server.", 1024,
                                       int64_t{256} << 20, &c->http.max_body_bytes));
    REDRIVE_RETURN_IF_ERROR(ReadIntKey(*server, "max_header_bytes", "server.", 1024,
                                       int64_t{1} << 20, &c->http.max_header_bytes));
    REDRIVE_RETURN_IF_ERROR(
        ReadDurationKey(*server, "request_timeout", "server.", &c->http.request_timeout_ms));
    REDRIVE_RETURN_IF_ERROR(
        ReadDurationKey(*server, "idle_timeout", "server.", &c->http.idle_timeout_ms));
    REDRIVE_RETURN_IF_ERROR(
        ReadDurationKey(*server, "drain_timeout", "server.", &c->drain_timeout_ms));
  } else if (root.contains("server")) {
    return Bad("server", "must be a table");
  }
  // [store] url: where the state lives (the same as server.store, which it overrides).
  if (auto store = root["store"].as_table()) {
    REDRIVE_RETURN_IF_ERROR(OnlyKeys(*store, {"url"}, "store."));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*store, "url", "store.", &c->store));
  }
  if (auto limits = root["limits"].as_table()) {
    REDRIVE_RETURN_IF_ERROR(
        OnlyKeys(*limits, {"max_batch", "max_receive", "max_attributes", "dead_letter_retention"},
                 "limits."));
    REDRIVE_RETURN_IF_ERROR(
        ReadIntKey(*limits, "max_batch", "limits.", 1, 10'000, &c->engine.max_batch));
    REDRIVE_RETURN_IF_ERROR(
        ReadIntKey(*limits, "max_receive", "limits.", 1, 10'000, &c->engine.max_receive));
    REDRIVE_RETURN_IF_ERROR(
        ReadIntKey(*limits, "max_attributes", "limits.", 0, 1000, &c->engine.max_attributes));
    std::string retention;
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*limits, "dead_letter_retention", "limits.", &retention));
    if (!retention.empty()) {
      auto d = ParseDuration(retention);
      if (!d.ok()) return Bad("limits.dead_letter_retention", d.status().message());
      c->engine.dead_letter_retention = d.value();
    }
  }
  if (auto quotas = root["quotas"].as_table()) {
    REDRIVE_RETURN_IF_ERROR(OnlyKeys(
        *quotas,
        {"max_queues", "max_messages", "max_bytes", "request_rate", "request_burst", "retry_after"},
        "quotas."));
    for (const auto& q : kQuotaKeys) {
      REDRIVE_RETURN_IF_ERROR(
          ReadIntKey(*quotas, q.key, "quotas.", 0, q.max, &(c->engine.default_quotas.*q.field)));
    }
    std::string retry_after;
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*quotas, "retry_after", "quotas.", &retry_after));
    if (!retry_after.empty()) {
      auto d = ParseDuration(retry_after);
      if (!d.ok()) return Bad("quotas.retry_after", d.status().message());
      if (d.value() < 1000 || d.value() > 3'600'000) {
        return Bad("quotas.retry_after", "must be between 1s and 1h");
      }
      c->engine.quota_retry_after = d.value();
    }
  } else if (root.contains("quotas")) {
    return Bad("quotas", "must be a table");
  }
  if (auto exports = root["exports"].as_table()) {
    REDRIVE_RETURN_IF_ERROR(OnlyKeys(*exports, {"retention"}, "exports."));
    std::string retention;
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*exports, "retention", "exports.", &retention));
    if (!retention.empty()) {
      auto d = ParseDuration(retention);
      if (!d.ok()) return Bad("exports.retention", d.status().message());
      if (d.value() < 3'600'000 || d.value() > 365LL * 86'400'000) {
        return Bad("exports.retention", "must be between 1h and 365d");
      }
      c->engine.export_retention = d.value();
    }
  } else if (root.contains("exports")) {
    return Bad("exports", "must be a table");
  }
  if (auto n = root["notifications"].as_table()) {
    REDRIVE_RETURN_IF_ERROR(OnlyKeys(*n,
                                     {"public_url", "smtp_url", "smtp_from", "smtp_username",
                                      "smtp_password", "smtp_require_tls"},
                                     "notifications."));
    const char* where = "notifications.";
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*n, "public_url", where, &c->public_url));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*n, "smtp_url", where, &c->engine.smtp.url));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*n, "smtp_from", where, &c->engine.smtp.from));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*n, "smtp_username", where, &c->engine.smtp.username));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*n, "smtp_password", where, &c->engine.smtp.password));
    if (auto v = (*n)["smtp_require_tls"]; v) {
      if (!v.is_boolean()) return Bad("notifications.smtp_require_tls", "must be true or false");
      c->engine.smtp.require_tls = v.value<bool>().value_or(false);
    }
  } else if (root.contains("notifications")) {
    return Bad("notifications", "must be a table");
  }
  if (auto tls = root["tls"].as_table()) {
    REDRIVE_RETURN_IF_ERROR(OnlyKeys(*tls, {"cert_file", "key_file", "min_version"}, "tls."));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*tls, "cert_file", "tls.", &c->http.tls.cert_file));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*tls, "key_file", "tls.", &c->http.tls.key_file));
    REDRIVE_RETURN_IF_ERROR(ReadStringKey(*tls, "min_version", "tls.", &c->http.tls.min_version));
  } else if (root.contains("tls")) {
    return Bad("tls", "must be a table");
  }
  if (auto tenants = root["tenants"].as_array()) {
    for (size_t i = 0; i < tenants->size(); ++i) {
      std::string where = "tenants[" + std::to_string(i) + "].";
      auto t = (*tenants)[i].as_table();
      if (!t) return Bad(where, "must be a table");
      REDRIVE_RETURN_IF_ERROR(OnlyKeys(*t, {"name", "queues", "topics"}, where));
      DeclaredTenant dt;
      auto name = (*t)["name"].value<std::string>();
      if (!name) return Bad(where + "name", "is required");
      dt.name = *name;
      if (auto queues = (*t)["queues"].as_array()) {
        for (size_t k = 0; k < queues->size(); ++k) {
          auto q = (*queues)[k].as_table();
          std::string qwhere = where + "queues[" + std::to_string(k) + "].";
          if (!q) return Bad(qwhere, "must be a table");
          auto qname = (*q)["name"].value<std::string>();
          if (!qname) return Bad(qwhere + "name", "is required");
          json attrs = ToJson(*q);
          attrs.erase("name");
          std::string script_file;
          REDRIVE_RETURN_IF_ERROR(ReadScriptFile(path, qwhere, &attrs, &script_file));
          dt.queues.push_back(DeclaredQueue{*qname, attrs, script_file});
        }
      }
      if (auto topics = (*t)["topics"].as_array()) {
        for (size_t k = 0; k < topics->size(); ++k) {
          auto tt = (*topics)[k].as_table();
          std::string twhere = where + "topics[" + std::to_string(k) + "].";
          if (!tt) return Bad(twhere, "must be a table");
          auto tname = (*tt)["name"].value<std::string>();
          if (!tname) return Bad(twhere + "name", "is required");
          DeclaredTopic topic;
          topic.name = *tname;
          topic.attributes = ToJson(*tt);
          topic.attributes.erase("name");
          topic.attributes.erase("subscriptions");
          if (auto subs = (*tt)["subscriptions"].as_array()) {
            for (size_t j = 0; j < subs->size(); ++j) {
              auto sub = (*subs)[j].as_table();
              std::string swhere = twhere + "subscriptions[" + std::to_string(j) + "].";
              if (!sub) return Bad(swhere, "must be a table");
              auto sname = (*sub)["name"].value<std::string>();
              if (!sname) return Bad(swhere + "name", "is required");
              json attrs = ToJson(*sub);
              attrs.erase("name");
              std::string script_file;
              REDRIVE_RETURN_IF_ERROR(ReadScriptFile(path, swhere, &attrs, &script_file));
              topic.subscriptions.push_back(DeclaredQueue{*sname, attrs, script_file});
            }
          } else if (tt->contains("subscriptions")) {
            return Bad(twhere + "subscriptions", "must be an array of tables");
          }
          dt.topics.push_back(std::move(topic));
        }
      } else if (t->contains("topics")) {
        return Bad(where + "topics", "must be an array of tables");
      }
      c->tenants.push_back(std::move(dt));
    }
  }
  return Status::Ok();
}

Status ValidateConfig(const ServerConfig& c) {
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  bool known = false;
  for (const char* l : kLevels) known = known || c.log_level == l;
  if (!known) {
    return Bad("log_level", "must be one of trace, debug, info, warn, error, critical, off");
  }
  if (c.data_dir.empty()) return Bad("data_dir", "must not be empty");
  const auto& smtp = c.engine.smtp;
  if (!smtp.url.empty() && smtp.url.rfind("smtp://", 0) != 0 &&
      smtp.url.rfind("smtps://", 0) != 0) {
    return Bad("notifications.smtp_url", "must be smtp://host:port or smtps://host:port");
  }
  if (!smtp.url.empty() && smtp.from.empty()) {
    return Bad("notifications.smtp_from", "is required with notifications.smtp_url");
  }
  if (!c.public_url.empty() && c.public_url.rfind("http://", 0) != 0 &&
      c.public_url.rfind("https://", 0) != 0) {
    return Bad("notifications.public_url", "must be an http:// or https:// URL");
  }
  const auto& tls = c.http.tls;
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return Bad(tls.cert_file.empty() ? "tls.cert_file" : "tls.key_file",
               "is missing: TLS needs both a certificate (tls.cert_file, REDRIVE_TLS_CERT_FILE, "
               "--tls-cert) and its key (tls.key_file, REDRIVE_TLS_KEY_FILE, --tls-key)");
  }
  if (tls.min_version != "1.2" && tls.min_version != "1.3") {
    return Bad("tls.min_version", "must be \"1.2\" or \"1.3\"");
  }
  return Status::Ok();
}

Status ApplyEnvironment(ServerConfig* c) {
  if (const char* v = std::getenv("REDRIVE_LISTEN"); v && *v) {
    REDRIVE_RETURN_IF_ERROR(ApplyListen(v, c));
  }
  if (const char* v = std::getenv("REDRIVE_DATA_DIR"); v && *v) c->data_dir = v;
  if (const char* v = std::getenv("REDRIVE_STORE"); v && *v) c->store = v;
  if (const char* v = std::getenv("REDRIVE_PUBLIC_URL"); v && *v) c->public_url = v;
  if (const char* v = std::getenv("REDRIVE_SMTP_URL"); v && *v) c->engine.smtp.url = v;
  if (const char* v = std::getenv("REDRIVE_SMTP_FROM"); v && *v) c->engine.smtp.from = v;
  if (const char* v = std::getenv("REDRIVE_SMTP_USERNAME"); v && *v) c->engine.smtp.username = v;
  if (const char* v = std::getenv("REDRIVE_SMTP_PASSWORD"); v && *v) c->engine.smtp.password = v;
  if (const char* v = std::getenv("REDRIVE_LOG_LEVEL"); v && *v) c->log_level = v;
  if (const char* v = std::getenv("REDRIVE_TLS_CERT_FILE"); v && *v) c->http.tls.cert_file = v;
  if (const char* v = std::getenv("REDRIVE_TLS_KEY_FILE"); v && *v) c->http.tls.key_file = v;
  for (const auto& q : kQuotaKeys) {
    if (const char* v = std::getenv(q.env); v && *v) {
      REDRIVE_RETURN_IF_ERROR(ApplyQuota(q.key, v, c));
    }
  }
  return Status::Ok();
}

Status ApplyQuota(const std::string& key, const std::string& value, ServerConfig* c) {
  for (const auto& q : kQuotaKeys) {
    if (key != q.key) continue;
    int64_t n = -1;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || p != value.data() + value.size() || n < 0 || n > q.max) {
      return Bad(std::string("quotas.") + q.key, "must be an integer from 0 (unlimited) to " +
                                                     std::to_string(q.max) + ", not '" + value +
                                                     "'");
    }
    c->engine.default_quotas.*q.field = n;
    return Status::Ok();
  }
  return Bad("quotas." + key, "is not a known quota");
}

}  // namespace redrive::server
