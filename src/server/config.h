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
};

struct DeclaredTenant {
  std::string name;
  std::vector<DeclaredQueue> queues;
};

struct ServerConfig {
  std::string data_dir = "./data";
  std::string store;  // default: sqlite:<data_dir>/redrive.db
  std::string log_level = "info";
  http::ServerOptions http;
  engine::EngineOptions engine;
  int drain_timeout_ms = 25'000;
  std::vector<DeclaredTenant> tenants;

  std::string StoreUri() const;
};

// Reads a TOML file into `*config` (only the keys it has). Errors: kInvalidArgument naming the
// key, with the file's line for syntax errors.
Status LoadConfigFile(const std::string& path, ServerConfig* config);
// Parses "HOST:PORT" or ":PORT" or "PORT" into config->http.
Status ApplyListen(const std::string& listen, ServerConfig* config);
// REDRIVE_LISTEN, REDRIVE_DATA_DIR, REDRIVE_STORE, REDRIVE_LOG_LEVEL.
Status ApplyEnvironment(ServerConfig* config);
// Checks the combined result (after file, environment and flags). Errors: kInvalidArgument.
Status ValidateConfig(const ServerConfig& config);

}  // namespace redrive::server
