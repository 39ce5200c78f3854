// `redrive`: the server (`redrive serve`) and the command-line client in one binary.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "server/serve.h"

int main(int argc, char** argv) {
  CLI::App app{"redrive: a message queue whose centre is what happens when delivery fails"};
  app.require_subcommand(1);
  redrive::server::ServeFlags flags;
  auto* serve = app.add_subcommand("serve", "Run the server");
  serve->add_option("-c,--config", flags.config_path, "TOML config file")
      ->envname("REDRIVE_CONFIG");
  serve->add_option("--listen", flags.listen, "HOST:PORT to listen on (default 127.0.0.1:8080)");
  serve->add_option("--data-dir", flags.data_dir, "Data directory (default ./data)");
  serve->add_option("--store", flags.store, "Store URI (default sqlite:<data-dir>/redrive.db)");
  serve->add_option("--log-level", flags.log_level, "trace, debug, info, warn, error");
  serve->add_option("--port-file", flags.port_file, "Write the bound port to this file");
  serve
      ->add_option("--quota", flags.quotas,
                   "A default tenant quota, KEY=VALUE (repeatable): max_queues, max_messages, "
                   "max_bytes, request_rate, request_burst; 0 = unlimited")
      ->allow_extra_args(false);
  serve->add_option("--tls-cert", flags.tls_cert,
                    "TLS certificate (PEM, chain after it); needs --tls-key");
  serve->add_option("--tls-key", flags.tls_key, "TLS private key (PEM, unencrypted)");
  redrive::cli::ClientCommands client(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    // --help and --version exit 0; every usage error, of serve or the client, exits 2.
    return rc == 0 ? 0 : redrive::cli::kExitUsage;
  }
  if (serve->parsed()) {
    auto served = redrive::server::Serve(flags);
    if (!served.ok()) {
      std::fprintf(stderr, "redrive: %s\n", served.status().message().c_str());
      return redrive::cli::kExitUsage;
    }
    return served.value();
  }
  if (client.Selected()) return client.Run();
  return 0;
}
