#include "server/serve.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "api/api.h"
#include "common/clock.h"
#include "server/config.h"
#include "store/postgres/pg_coordinator.h"
#include "store/store.h"

namespace redrive::server {
namespace {

// The store's URI as it may be printed: without the password of a postgres:// URI.
std::string PrintableStoreUri(const std::string& uri) {
  if (!store::IsPostgresUri(uri)) return uri;
  size_t scheme = uri.find("://") + 3;
  size_t at = uri.find('@', scheme);
  size_t slash = uri.find('/', scheme);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) return uri;
  size_t colon = uri.find(':', scheme);
  if (colon == std::string::npos || colon > at) return uri;
  return uri.substr(0, colon + 1) + "***" + uri.substr(at);
}

// This node's id among the nodes sharing a store: host, process and a random suffix, so that
// a node started again is a new holder of claims (its old claims expire).
std::string MakeNodeId(Random& random) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string suffix;
  for (unsigned char c : random.Bytes(3)) {
    suffix += kHex[c >> 4];
    suffix += kHex[c & 15];
  }
  return std::string(host) + "-" + std::to_string(getpid()) + "-" + suffix;
}

Status WriteSecretFile(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status(ErrorCode::kInternal, "cannot write " + tmp);
  std::string line = content + "\n";
  bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = ok && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    return Status(ErrorCode::kInternal, "cannot write " + path);
  }
  return Status::Ok();
}

// A declared topic and its subscriptions, as ApplyDeclarations does for queues. A push
// subscription keeps its secrets (unless the file gives `secret`) and its endpoint's state
// (disabled or not): those are the server's, not the file's.
Status ApplyDeclaredTopic(const engine::Principal& actor, const std::string& tenant,
                          const DeclaredTopic& topic, engine::Engine& engine) {
  auto where = [&](const std::string& what) {
    return "config: tenant " + tenant + " topic " + topic.name + what + ": ";
  };
  engine::TopicConfig tc;
  Status st = engine::ApplyTopicConfigJson(topic.attributes, &tc);
  if (!st.ok()) return Status(st.code(), where("") + st.message());
  auto current = engine.topics().GetTopic(tenant, topic.name);
  if (current.ok()) {
    if (engine::TopicConfigToJson(current->config) != engine::TopicConfigToJson(tc)) {
      REDRIVE_RETURN_IF_ERROR(engine.topics().UpdateTopic(actor, tenant, topic.name, tc).status());
      spdlog::info("updated topic {}/{} from config", tenant, topic.name);
    }
  } else if (current.status().code() == ErrorCode::kTopicNotFound) {
    REDRIVE_RETURN_IF_ERROR(engine.topics().CreateTopic(actor, tenant, topic.name, tc).status());
    spdlog::info("created topic {}/{} (declared in config)", tenant, topic.name);
  } else {
    return current.status();
  }
  for (const auto& sub : topic.subscriptions) {
    engine::QueueConfig qc;
    st = engine::ApplyQueueConfigJson(sub.attributes, &qc);
    if (!st.ok()) return Status(st.code(), where(" subscription " + sub.name) + st.message());
    auto existing = engine.topics().GetSubscription(tenant, topic.name, sub.name);
    if (existing.ok()) {
      const auto& was = existing->config.push;
      if (qc.push && was) {
        bool declared_secret = sub.attributes.contains("push") &&
                               sub.attributes["push"].is_object() &&
                               sub.attributes["push"].contains("secret");
        if (!declared_secret) qc.push->secrets = was->secrets;
        qc.push->disabled = was->disabled;
        qc.push->disabled_reason = was->disabled_reason;
        qc.push->disabled_at = was->disabled_at;
      }
      if (engine::QueueConfigToJson(existing->config, true) !=
          engine::QueueConfigToJson(qc, true)) {
        REDRIVE_RETURN_IF_ERROR(
            engine.topics().UpdateSubscription(actor, tenant, topic.name, sub.name, qc).status());
        spdlog::info("updated subscription {}/{}:{} from config", tenant, topic.name, sub.name);
      }
    } else if (existing.status().code() == ErrorCode::kSubscriptionNotFound) {
      auto made = engine.topics().CreateSubscription(actor, tenant, topic.name, sub.name, qc);
      if (!made.ok()) {
        return Status(made.status().code(),
                      where(" subscription " + sub.name) + made.status().message());
      }
      spdlog::info("created subscription {}/{}:{} (declared in config)", tenant, topic.name,
                   sub.name);
    } else {
      return existing.status();
    }
  }
  return Status::Ok();
}

// Creates the declared tenants and queues; updates declared queues whose attributes differ.
// The audit log names the config file as their actor.
Status ApplyDeclarations(const ServerConfig& config, engine::Engine& engine) {
  const engine::Principal kConfig{"config", "", {}};
  for (const auto& t : config.tenants) {
    auto existing = engine.tenancy().GetTenant(t.name);
    if (!existing.ok()) {
      if (existing.status().code() != ErrorCode::kTenantNotFound) return existing.status();
      REDRIVE_RETURN_IF_ERROR(engine.tenancy().CreateTenant(kConfig, t.name).status());
      spdlog::info("created tenant {} (declared in config)", t.name);
    }
    for (const auto& q : t.queues) {
      engine::QueueConfig qc;
      Status st = engine::ApplyQueueConfigJson(q.attributes, &qc);
      if (!st.ok()) {
        bool script =
            !q.script_file.empty() && st.message().find("retryPolicy.script") != std::string::npos;
        std::string from = script ? " (script read from " + q.script_file + ")" : "";
        return Status(st.code(),
                      "config: tenant " + t.name + " queue " + q.name + ": " + st.message() + from);
      }
      auto current = engine.queues().GetQueue(t.name, q.name);
      if (current.ok()) {
        if (engine::QueueConfigToJson(current->config) != engine::QueueConfigToJson(qc)) {
          REDRIVE_RETURN_IF_ERROR(
              engine.queues().UpdateQueue(kConfig, t.name, q.name, qc).status());
          spdlog::info("updated queue {}/{} from config", t.name, q.name);
        }
      } else if (current.status().code() == ErrorCode::kQueueNotFound) {
        REDRIVE_RETURN_IF_ERROR(engine.queues().CreateQueue(kConfig, t.name, q.name, qc).status());
        spdlog::info("created queue {}/{} (declared in config)", t.name, q.name);
      } else {
        return current.status();
      }
    }
    for (const auto& topic : t.topics) {
      REDRIVE_RETURN_IF_ERROR(ApplyDeclaredTopic(kConfig, t.name, topic, engine));
    }
  }
  return Status::Ok();
}

// A tenant deletion cut short (a crash, a kill) left the tenant marked `deleting`: finish it.
Status FinishTenantDeletions(engine::Engine& engine) {
  REDRIVE_ASSIGN_OR_RETURN(auto tenants, engine.tenancy().ListTenants());
  for (const auto& t : tenants) {
    if (!t.deleting) continue;
    spdlog::warn("finishing the deletion of tenant {}", t.name);
    REDRIVE_RETURN_IF_ERROR(
        engine.tenancy().DeleteTenant(engine::Principal{"system", "", {}}, t.name, true));
  }
  return Status::Ok();
}

void LogCertificate(const char* what, const http::TlsOptions& tls,
                    const http::CertificateInfo& cert) {
  spdlog::info("{} TLS certificate {}: subject {}, serial {}, notAfter {}", what, tls.cert_file,
               cert.subject, cert.serial, cert.not_after);
  if (cert.not_after_unix < static_cast<int64_t>(std::time(nullptr))) {
    spdlog::warn("TLS certificate {} expired at {}; clients will refuse it", tls.cert_file,
                 cert.not_after);
  }
}

std::string TlsMetrics(const http::Server& server) {
  auto line = [](const char* name, const char* type, const char* help, int64_t v) {
    return std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + std::to_string(v) + "\n";
  };
  return line("redrive_tls_reload_failures_total", "counter",
              "SIGHUP reloads of the TLS certificate and key that failed (the old pair stays).",
              server.tls_reload_failures()) +
         line("redrive_tls_handshake_failures_total", "counter",
              "TLS handshakes that failed or timed out, plain HTTP on the TLS port included.",
              server.tls_handshake_failures()) +
         line("redrive_tls_certificate_expiry_timestamp_seconds", "gauge",
              "notAfter of the certificate new connections get, in seconds since the epoch.",
              server.tls_certificate().not_after_unix);
}

// Defaults, then the file, then the environment, then flags.
Status BuildConfig(const ServeFlags& flags, ServerConfig* config) {
  if (!flags.config_path.empty()) {
    REDRIVE_RETURN_IF_ERROR(LoadConfigFile(flags.config_path, config));
  }
  REDRIVE_RETURN_IF_ERROR(ApplyEnvironment(config));
  if (!flags.listen.empty()) REDRIVE_RETURN_IF_ERROR(ApplyListen(flags.listen, config));
  if (!flags.data_dir.empty()) config->data_dir = flags.data_dir;
  if (!flags.store.empty()) config->store = flags.store;
  if (!flags.log_level.empty()) config->log_level = flags.log_level;
  for (const auto& q : flags.quotas) {
    auto eq = q.find('=');
    if (eq == std::string::npos) {
      return Status(ErrorCode::kInvalidArgument,
                    "--quota wants KEY=VALUE, like max_messages=100000, not '" + q + "'");
    }
    REDRIVE_RETURN_IF_ERROR(ApplyQuota(q.substr(0, eq), q.substr(eq + 1), config));
  }
  if (!flags.tls_cert.empty()) config->http.tls.cert_file = flags.tls_cert;
  if (!flags.tls_key.empty()) config->http.tls.key_file = flags.tls_key;
  return ValidateConfig(*config);
}

int RunServer(const ServerConfig& config, const std::string& port_file) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  // Block the shutdown signals and SIGHUP (TLS reload) in every thread; the main thread waits
  // for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Every connection is a descriptor: allow as many as the hard limit does.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  if (config.http.tls.enabled()) {
    // Before anything is created: a server that cannot serve TLS changes nothing on disk.
    auto tls = http::TlsContext::Load(config.http.tls);
    if (!tls.ok()) {
      spdlog::error("{}", tls.status().ToString());
      return 1;
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    spdlog::error("cannot create data directory {}: {}", config.data_dir, ec.message());
    return 1;
  }
  auto opened = store::OpenStore(config.StoreUri());
  if (!opened.ok()) {
    spdlog::error("{}", opened.status().ToString());
    return 1;
  }
  std::unique_ptr<store::Store> store = std::move(opened).value();
  SystemClock clock;
  SystemRandom random;
  // Nodes sharing a PostgreSQL coordinate through it (LISTEN/NOTIFY, claims); an embedded
  // store is one node's alone (the engine's LocalCoordinator).
  std::unique_ptr<engine::Coordinator> coordinator;
  if (store::IsPostgresUri(config.StoreUri())) {
    coordinator =
        std::make_unique<store::postgres::PgCoordinator>(config.StoreUri(), MakeNodeId(random));
    spdlog::info("node {} on a shared PostgreSQL store", coordinator->node_id());
  }
  engine::EngineOptions engine_options = config.engine;
  engine_options.export_dir = config.data_dir + "/exports";
  engine::Engine engine(*store, clock, random, engine_options, coordinator.get());

  Status st = FinishTenantDeletions(engine);
  if (st.ok()) st = ApplyDeclarations(config, engine);
  if (!st.ok()) {
    spdlog::error("{}", st.ToString());
    return 1;
  }

  std::string token_path = config.data_dir + "/operator.token";
  auto operators = engine.tenancy().ListOperatorTokens();
  if (!operators.ok()) {
    spdlog::error("{}", operators.status().ToString());
    return 1;
  }
  bool any_active = false;
  // Expired operator tokens count as gone: a server whose every operator token expired gets a
  // new one (and a new token file) at its next start.
  for (const auto& t : operators.value()) any_active = any_active || t.state == "active";
  if (!any_active || !std::filesystem::exists(token_path)) {
    if (!any_active) {
      auto token = engine.tenancy().CreateOperatorToken("operator");
      if (!token.ok()) {
        spdlog::error("{}", token.status().ToString());
        return 1;
      }
      st = WriteSecretFile(token_path, token->secret);
      if (!st.ok()) {
        spdlog::error("{}", st.ToString());
        return 1;
      }
      spdlog::warn("no active operator token: created {} and wrote it to {} (mode 0600)",
                   token->info.id, token_path);
    } else {
      spdlog::warn("operator token file {} is missing; the tokens in the store stay valid",
                   token_path);
    }
  }

  api::RestApi rest(engine);
  http::Server server(config.http, [&rest](http::Request req, http::Responder respond) {
    rest.HandleAsync(std::move(req), std::move(respond));
  });
  if (server.tls_enabled()) rest.AddMetrics([&server] { return TlsMetrics(server); });
  st = server.Start();
  if (!st.ok()) {
    spdlog::error("{}", st.ToString());
    return 1;
  }
  if (server.tls_enabled()) LogCertificate("serving", config.http.tls, server.tls_certificate());
  std::string host = config.http.host.find(':') != std::string::npos ? "[" + config.http.host + "]"
                                                                     : config.http.host;
  {
    // Before the engine starts: a digest missed while the server was down runs at once.
    if (config.public_url.empty() && (host == "0.0.0.0" || host == "[::]")) {
      spdlog::warn(
          "notifications.public_url is not set and the server listens on {}: answer "
          "links in notifications will name that address; set public_url",
          host);
    }
    engine.notifications().SetPublicUrl(
        !config.public_url.empty() ? config.public_url
                                   : std::string(server.tls_enabled() ? "https" : "http") + "://" +
                                         host + ":" + std::to_string(server.port()));
  }
  engine.Start();
  if (!port_file.empty()) {
    st = WriteSecretFile(port_file, std::to_string(server.port()));
    if (!st.ok()) spdlog::error("{}", st.ToString());
  }
  std::printf("redrive listening on %s://%s:%d\n", server.tls_enabled() ? "https" : "http",
              host.c_str(), server.port());
  std::printf("store: %s\n", PrintableStoreUri(config.StoreUri()).c_str());
  std::printf("operator token: %s\n", token_path.c_str());
  std::fflush(stdout);

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    if (!server.tls_enabled()) {
      spdlog::info("received SIGHUP; TLS is not configured, nothing to reload");
      continue;
    }
    auto reloaded = server.ReloadTls();
    if (reloaded.ok()) {
      LogCertificate("reloaded", config.http.tls, reloaded.value());
    } else {
      spdlog::error("TLS reload failed, still serving the previous certificate: {}",
                    reloaded.status().message());
    }
  }
  spdlog::info("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  rest.SetReady(false);
  server.StopAccepting();
  engine.Stop();  // ends long polls early
  if (!server.Drain(config.drain_timeout_ms)) {
    // Every acknowledged write is already durable; what is still running gets no answer.
    spdlog::warn("drain timed out with connections still open; closed them");
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace

Result<int> Serve(const ServeFlags& flags) {
  ServerConfig config;
  REDRIVE_RETURN_IF_ERROR(BuildConfig(flags, &config));
  return RunServer(config, flags.port_file);
}

}  // namespace redrive::server
