// The client subcommands of `redrive` (everything but `serve`): tenant (with quotas and
// deletion), token (with rotation), operator-token, queue, send, receive, ack, nack, extend,
// dlq (browse, failure groups, stats, rm, restore, reroute, purge), jobs (redrive jobs) and
// audit (the tenant's, or the server's). Each talks REST to a server through Client; none touches
// the store. docs/cli.md is the user's description of the same.
//
// Output: results go to stdout (a table or "key: value" lines, or with --json the server's JSON
// answer pretty-printed); errors, notices, skipped dead letters and job progress go to stderr.
// Exit codes: kExitOk, kExitServerError (the server answered an error, a batch had failed
// items, or a watched redrive job ended other than completed), kExitUsage (bad flags, unreadable
// files, missing tenant, purge without --yes), kExitUnreachable.
//
// Thread-safety: not thread-safe; built once by main() and run once.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace redrive::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;

inline constexpr char kDefaultUrl[] = "http://127.0.0.1:8080";

// The connection options every client subcommand takes, as given on the command line (empty =
// not given).
struct GlobalOptions {
  std::string url;
  std::string token;
  std::string token_file;
  std::string tenant;
  std::string ca_file;
  std::string config;
  bool json = false;
};

// What a command runs with once the sources are merged.
struct Settings {
  std::string url;
  std::string token;    // may be empty: the server then answers "unauthenticated"
  std::string tenant;   // may be empty: tenant-scoped commands then fail with a usage error
  std::string ca_file;  // may be empty: https servers are checked against the system's CAs
  bool json = false;
  std::string config_path;  // the config file that was read, or "" when none
};

// The state a running command sees: settings, the client and output helpers
// (commands_common.h).
struct Context;

// Reads an environment variable; returns nullopt when it is unset or empty.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
// The process environment.
std::optional<std::string> ProcessEnv(const char* name);

// Merges the sources, each key taking the first of: flag, environment (REDRIVE_URL,
// REDRIVE_TOKEN, REDRIVE_TOKEN_FILE, REDRIVE_TENANT, REDRIVE_CA_FILE), config file, default.
// A token and a token file are one setting: the highest source that gives either wins, and one
// source giving both is an error. The config file is `flags.config` (it must exist) or else the
// default path ($XDG_CONFIG_HOME/redrive/cli.toml, or ~/.config/redrive/cli.toml without
// XDG_CONFIG_HOME) when that file exists; it is TOML with string keys url, token, token_file,
// tenant and ca_file, and a relative token_file or ca_file is relative to the config file's folder.
// Errors: kInvalidArgument (unreadable or malformed config file, unreadable or empty token
// file, both token and token file from one source, unreadable CA file).
Result<Settings> ResolveSettings(const GlobalOptions& flags, const EnvLookup& env);

// The default config file path, whether or not the file exists ("" without HOME).
std::string DefaultConfigPath(const EnvLookup& env);

// Registers every client subcommand on `app`; after app.parse(), Run() executes the one chosen.
class ClientCommands {
 public:
  explicit ClientCommands(CLI::App& app);
  ~ClientCommands();
  ClientCommands(const ClientCommands&) = delete;
  ClientCommands& operator=(const ClientCommands&) = delete;

  // True when the parsed command line chose a client subcommand.
  bool Selected() const;
  // Runs the chosen subcommand and returns its exit code. REQUIRES: Selected().
  int Run(const EnvLookup& env = ProcessEnv);

  // Parsed flags, filled by CLI11; public so the command functions (commands_*.cc) can read
  // them. Defined in commands_common.h.
  struct Flags;

 private:
  struct Leaf {
    CLI::App* app;
    std::function<int(Context&, const Flags&)> run;
    bool needs_tenant;
  };
  void AddLeaf(CLI::App* app, bool needs_tenant, std::function<int(Context&, const Flags&)> run);

  std::unique_ptr<Flags> flags_;
  std::vector<Leaf> leaves_;
};

}  // namespace redrive::cli
