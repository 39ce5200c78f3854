// Serve: the body of `redrive serve`, and the one header of the server that the binary's command
// line sees. It names no engine, store or HTTP type, so main.cc and the client are compiled
// without them (the module walls, cmake/redrive.cmake).
//
// Serve builds the configuration (defaults, then the config file, then the environment, then the
// flags) and checks it. Then it opens the store, finishes tenant deletions a crash cut short,
// applies declared tenants and queues, writes the operator token when none is active (first
// start), serves until SIGTERM/SIGINT, then drains in-flight requests (long polls end early) and
// returns. With TLS configured, SIGHUP reloads the certificate and key (a failure is logged and
// counted; the previous pair keeps serving); without, SIGHUP is logged and ignored.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace redrive::server {

// What `redrive serve` was given on its command line (the flags of the same names, and
// REDRIVE_CONFIG); an empty field was not given.
struct ServeFlags {
  std::string config_path;
  std::string listen;  // HOST:PORT, :PORT or PORT
  std::string data_dir;
  std::string store;
  std::string log_level;
  std::vector<std::string> quotas;  // default tenant quotas, each KEY=VALUE
  std::string tls_cert;             // needs tls_key, and the other way round
  std::string tls_key;
  // When not empty, receives the bound port once the server listens (for tests and scripts that
  // start the server on port 0).
  std::string port_file;
};

// Errors: kInvalidArgument when the configuration is refused, with a message for the user;
// nothing was started or written. Otherwise the process exit code once the server stopped: 0
// after a drain, 1 when it could not start.
Result<int> Serve(const ServeFlags& flags);

}  // namespace redrive::server
