// `redrive`: the server (`redrive serve`) and the command-line client in one binary.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "server/serve.h"

int main(int argc, char** argv) {
  CLI::App app{"redrive: a message queue whose centre is what happens when delivery fails"};
  app.require_subcommand(1);
  std::string config_path, listen, data_dir, store, log_level, port_file, tls_cert, tls_key;
  auto* serve = app.add_subcommand("serve", "Run the server");
  serve->add_option("-c,--config", config_path, "TOML config file")->envname("REDRIVE_CONFIG");
  serve->add_option("--listen", listen, "HOST:PORT to listen on (default 127.0.0.1:8080)");
  serve->add_option("--data-dir", data_dir, "Data directory (default ./data)");
  serve->add_option("--store", store, "Store URI (default sqlite:<data-dir>/redrive.db)");
  serve->add_option("--log-level", log_level, "trace, debug, info, warn, error");
  serve->add_option("--port-file", port_file, "Write the bound port to this file");
  std::vector<std::string> quotas;
  serve
      ->add_option("--quota", quotas,
                   "A default tenant quota, KEY=VALUE (repeatable): max_queues, max_messages, "
                   "max_bytes, request_rate, request_burst; 0 = unlimited")
      ->allow_extra_args(false);
  serve->add_option("--tls-cert", tls_cert,
                    "TLS certificate (PEM, chain after it); needs --tls-key");
  serve->add_option("--tls-key", tls_key, "TLS private key (PEM, unencrypted)");
  redrive::cli::ClientCommands client(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    // --help and --version exit 0; every usage error, of serve or the client, exits 2.
    return rc == 0 ? 0 : redrive::cli::kExitUsage;
  }
  if (serve->parsed()) {
    // Defaults, then the file, then the environment, then flags.
    redrive::server::ServerConfig config;
    redrive::Status st;
    if (!config_path.empty()) st = redrive::server::LoadConfigFile(config_path, &config);
    if (st.ok()) st = redrive::server::ApplyEnvironment(&config);
    if (st.ok() && !listen.empty()) st = redrive::server::ApplyListen(listen, &config);
    if (!st.ok()) {
      std::fprintf(stderr, "redrive: %s\n", st.message().c_str());
      return redrive::cli::kExitUsage;
    }
    if (!data_dir.empty()) config.data_dir = data_dir;
    if (!store.empty()) config.store = store;
    if (!log_level.empty()) config.log_level = log_level;
    for (const auto& q : quotas) {
      auto eq = q.find('=');
      st = eq == std::string::npos
               ? redrive::Status(
                     redrive::ErrorCode::kInvalidArgument,
                     "--quota wants KEY=VALUE, like max_messages=100000, not '" + q + "'")
               : redrive::server::ApplyQuota(q.substr(0, eq), q.substr(eq + 1), &config);
      if (!st.ok()) {
        std::fprintf(stderr, "redrive: %s\n", st.message().c_str());
        return redrive::cli::kExitUsage;
      }
    }
    if (!tls_cert.empty()) config.http.tls.cert_file = tls_cert;
    if (!tls_key.empty()) config.http.tls.key_file = tls_key;
    st = redrive::server::ValidateConfig(config);
    if (!st.ok()) {
      std::fprintf(stderr, "redrive: %s\n", st.message().c_str());
      return redrive::cli::kExitUsage;
    }
    return redrive::server::RunServer(config, port_file);
  }
  if (client.Selected()) return client.Run();
  return 0;
}
