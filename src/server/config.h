// ServerConfig: what `redrive serve` runs with. Built from defaults, then the TOML config file,
// then environment variables, then command-line flags (each overriding the one before).
// Tenants and queues declared in the file are created (or updated) on start.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"
#include "http/server.h"

namespace redrive::server {

struct DeclaredQueue {
  std::string name;
  nlohmann::json attributes;  // the REST API's attribute object
  // The file retryPolicy.script was read from (retryPolicy.script_file, resolved); empty when
  // the script, if any, was given inline.
  std::string script_file;
};

// A topic and its subscriptions; a subscription is declared like a queue (its attributes may
// add `filter` and `push`).
struct DeclaredTopic {
  std::string name;
  nlohmann::json attributes;  // the REST API's topic attributes
  std::vector<DeclaredQueue> subscriptions;
};

struct DeclaredTenant {
  std::string name;
  std::vector<DeclaredQueue> queues;
  std::vector<DeclaredTopic> topics;
};

struct ServerConfig {
  std::string data_dir = "./data";
  std::string store;  // default: sqlite:<data_dir>/redrive.db
  std::string log_level = "info";
  http::ServerOptions http;
  engine::EngineOptions engine;
  int drain_timeout_ms = 25'000;
  std::vector<DeclaredTenant> tenants;
  // [notifications] public_url: how users reach this server (answer links); empty = the
  // listening address.
  std::string public_url;

  std::string StoreUri() const;
};

// Reads a TOML file into `*config` (only the keys it has). A declared queue's
// retryPolicy.script_file is read now, relative to the file's folder, into retryPolicy.script.
// Errors: kInvalidArgument naming the key, with the file's line for syntax errors.
Status LoadConfigFile(const std::string& path, ServerConfig* config);
// Parses "HOST:PORT" or ":PORT" or "PORT" into config->http.
Status ApplyListen(const std::string& listen, ServerConfig* config);
// REDRIVE_LISTEN, REDRIVE_DATA_DIR, REDRIVE_STORE, REDRIVE_LOG_LEVEL, REDRIVE_TLS_CERT_FILE,
// REDRIVE_TLS_KEY_FILE, REDRIVE_QUOTA_{MAX_QUEUES,MAX_MESSAGES,MAX_BYTES,REQUEST_RATE,
// REQUEST_BURST}, REDRIVE_PUBLIC_URL, REDRIVE_SMTP_URL, REDRIVE_SMTP_FROM, REDRIVE_SMTP_USERNAME,
// REDRIVE_SMTP_PASSWORD.
Status ApplyEnvironment(ServerConfig* config);
// Sets one default tenant quota from text: `key` is a [quotas] key (max_queues, max_messages,
// max_bytes, request_rate, request_burst). Errors: kInvalidArgument naming the key.
Status ApplyQuota(const std::string& key, const std::string& value, ServerConfig* config);
// Checks the combined result (after file, environment and flags): among others, a TLS
// certificate and key come together. Errors: kInvalidArgument. The TLS files themselves are
// read when the server starts.
Status ValidateConfig(const ServerConfig& config);

}  // namespace redrive::server
