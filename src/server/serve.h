// RunServer: the body of `redrive serve`. Opens the store, finishes tenant deletions a crash cut
// short, applies declared tenants and queues, writes the operator token when none is active
// (first start), serves until SIGTERM/SIGINT, then drains in-flight
// requests (long polls end early) and exits. With TLS configured, SIGHUP reloads the certificate
// and key (a failure is logged and counted; the previous pair keeps serving); without, SIGHUP
// is logged and ignored. Returns the process exit code.
#pragma once

#include "server/config.h"

namespace redrive::server {

// `port_file`, when not empty, receives the bound port once the server listens (for tests and
// scripts that start the server on port 0).
int RunServer(const ServerConfig& config, const std::string& port_file);

}  // namespace redrive::server
