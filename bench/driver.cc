// MakeDriver: picks the driver by name and refuses any address that is not this machine's
// loopback, for every system (the benchmark never talks to another host), and for redrive for
// every URL of a --url list.
#include "driver.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace bench {
namespace {

bool LoopbackHost(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

bool LocalUrl(const std::string& url) {
  for (const char* prefix : {"http://127.0.0.1", "http://localhost"}) {
    size_t n = std::strlen(prefix);
    if (url.compare(0, n, prefix) == 0 && (url.size() == n || url[n] == ':' || url[n] == '/')) {
      return true;
    }
  }
  return false;
}

// Every host and hostaddr of a libpq connection string (a comma-separated list each) must be
// the loopback or a Unix-socket directory. Where the string names none, libpq takes PGHOST /
// PGHOSTADDR from the environment, so those are checked instead; with neither, libpq uses its
// default socket directory.
bool LocalConninfo(const std::string& conninfo, std::string* error) {
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (options == nullptr) {
    *error = "--pg-conninfo: " +
             std::string(parse_error != nullptr ? parse_error : "cannot parse (out of memory)");
    PQfreemem(parse_error);
    return false;
  }
  bool ok = true;
  for (PQconninfoOption* o = options; o->keyword != nullptr && ok; ++o) {
    bool is_host = std::strcmp(o->keyword, "host") == 0;
    if (!is_host && std::strcmp(o->keyword, "hostaddr") != 0) continue;
    const char* value = o->val != nullptr ? o->val : std::getenv(is_host ? "PGHOST" : "PGHOSTADDR");
    if (value == nullptr) continue;
    std::string list = value;
    size_t start = 0;
    while (ok && start <= list.size()) {
      size_t comma = list.find(',', start);
      if (comma == std::string::npos) comma = list.size();
      std::string host = list.substr(start, comma - start);
      bool socket_dir = is_host && (host.empty() || host[0] == '/');
      if (!socket_dir && !LoopbackHost(host)) {
        *error = "--pg-conninfo: " + std::string(o->keyword) + "=" + host +
                 " is not 127.0.0.1, localhost, ::1 or a Unix-socket directory";
        ok = false;
      }
      start = comma + 1;
    }
  }
  PQconninfoFree(options);
  return ok;
}

std::unique_ptr<Driver> MakeCheckedDriver(const DriverOptions& options, std::string* error) {
  const std::string& system = options.system;
  if (system == "redrive") {
    std::vector<std::string> urls = SplitUrls(options.url);
    if (urls.empty()) {
      *error = "--url is empty";
      return nullptr;
    }
    for (const std::string& url : urls) {
      if (!LocalUrl(url)) {
        *error =
            "--url must be http://127.0.0.1[:port] or http://localhost[:port] (each of a "
            "comma-separated list), not " +
            url;
        return nullptr;
      }
    }
    if (options.token.empty()) {
      *error = "--token or --token-file is required for --system redrive";
      return nullptr;
    }
    return MakeRedriveDriver(options);
  }
  if (system == "rabbitmq-classic" || system == "rabbitmq-quorum") {
    if (!LoopbackHost(options.amqp_host)) {
      *error = "the AMQP host must be 127.0.0.1, localhost or ::1, not " + options.amqp_host;
      return nullptr;
    }
    return MakeRabbitMqDriver(options, system == "rabbitmq-quorum");
  }
  if (system == "postgres-queue") {
    if (!LocalConninfo(options.pg_conninfo, error)) return nullptr;
    return MakePostgresDriver(options);
  }
  *error = "unknown system '" + system +
           "' (redrive, rabbitmq-classic, rabbitmq-quorum or postgres-queue)";
  return nullptr;
}

}  // namespace

std::vector<std::string> SplitUrls(const std::string& urls) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= urls.size()) {
    size_t comma = urls.find(',', start);
    if (comma == std::string::npos) comma = urls.size();
    if (comma > start) out.push_back(urls.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

std::unique_ptr<Driver> MakeDriver(const DriverOptions& options, std::string* error) {
  error->clear();
  std::unique_ptr<Driver> driver = MakeCheckedDriver(options, error);
  if (driver == nullptr && error->empty()) {
    *error = "the " + options.system + " driver is not available in this build";
  }
  return driver;
}

}  // namespace bench
