#include "cli/commands.h"

#include <cstdio>
#include <exception>

#include "cli/commands_common.h"

namespace redrive::cli {
namespace {

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

}  // namespace

void ClientCommands::AddLeaf(CLI::App* app, bool needs_tenant, Command run) {
  AddGlobalOptions(app, &flags_->global);
  leaves_.push_back({app, std::move(run), needs_tenant});
}

ClientCommands::ClientCommands(CLI::App& app) : flags_(std::make_unique<Flags>()) {
  Flags* f = flags_.get();
  const AddLeafFn add_leaf = [this](CLI::App* leaf, bool needs_tenant, Command run) {
    AddLeaf(leaf, needs_tenant, std::move(run));
  };
  AddTenancyCommands(app, f, add_leaf);
  AddQueueCommands(app, f, add_leaf);
  AddTopicCommands(app, f, add_leaf);
  AddMessageCommands(app, f, add_leaf);
  AddDeadLetterCommands(app, f, add_leaf);
  AddJobCommands(app, f, add_leaf);
  AddExportCommands(app, f, add_leaf);
  AddTicketCommands(app, f, add_leaf);
  AddAuditCommands(app, f, add_leaf);
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
      return leaf.run(ctx, *flags_);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: internal: %s\n", e.what());
      return kExitServerError;
    }
  }
  return Usage("no command");
}

}  // namespace redrive::cli
