// Where a client command's settings come from: flags, the environment, the CLI config file.
#include <toml++/toml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/commands_common.h"

namespace redrive::cli {

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

// One source of settings; unset keys are nullopt.
struct Source {
  std::string name;  // for messages: "command line", "environment", "config file X"
  std::optional<std::string> url, token, token_file, tenant, ca_file;
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
    } else if (k == "ca_file") {
      slot = &src.ca_file;
    } else {
      return Invalid("config file " + path + ": unknown key '" + k +
                     "' (known: url, token, token_file, tenant, ca_file)");
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
              .ca_file = NonEmpty(flags.ca_file),
              .base_dir = {}};
  Source environment{.name = "environment",
                     .url = env("REDRIVE_URL"),
                     .token = env("REDRIVE_TOKEN"),
                     .token_file = env("REDRIVE_TOKEN_FILE"),
                     .tenant = env("REDRIVE_TENANT"),
                     .ca_file = env("REDRIVE_CA_FILE"),
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
    if (s->ca_file) {
      fs::path p(*s->ca_file);
      if (p.is_relative() && !s->base_dir.empty()) p = s->base_dir / p;
      if (!std::ifstream(p)) {
        return Invalid("cannot read CA file " + p.string() + ": " + std::strerror(errno));
      }
      settings.ca_file = p.string();
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

}  // namespace redrive::cli
