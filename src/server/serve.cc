#include "server/serve.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "api/api.h"
#include "common/clock.h"
#include "store/store.h"

namespace redrive::server {
namespace {

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

// Creates the declared tenants and queues; updates declared queues whose attributes differ.
Status ApplyDeclarations(const ServerConfig& config, engine::Engine& engine) {
  for (const auto& t : config.tenants) {
    auto existing = engine.GetTenant(t.name);
    if (!existing.ok()) {
      if (existing.status().code() != ErrorCode::kTenantNotFound) return existing.status();
      REDRIVE_RETURN_IF_ERROR(engine.CreateTenant(t.name).status());
      spdlog::info("created tenant {} (declared in config)", t.name);
    }
    for (const auto& q : t.queues) {
      engine::QueueConfig qc;
      Status st = engine::ApplyQueueConfigJson(q.attributes, &qc);
      if (!st.ok()) {
        return Status(st.code(),
                      "config: tenant " + t.name + " queue " + q.name + ": " + st.message());
      }
      auto current = engine.GetQueue(t.name, q.name);
      if (current.ok()) {
        if (engine::QueueConfigToJson(current->config) != engine::QueueConfigToJson(qc)) {
          REDRIVE_RETURN_IF_ERROR(engine.UpdateQueue(t.name, q.name, qc).status());
          spdlog::info("updated queue {}/{} from config", t.name, q.name);
        }
      } else if (current.status().code() == ErrorCode::kQueueNotFound) {
        REDRIVE_RETURN_IF_ERROR(engine.CreateQueue(t.name, q.name, qc).status());
        spdlog::info("created queue {}/{} (declared in config)", t.name, q.name);
      } else {
        return current.status();
      }
    }
  }
  return Status::Ok();
}

}  // namespace

int RunServer(const ServerConfig& config, const std::string& port_file) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  // Block the shutdown signals in every thread; the main thread waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

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
  engine::Engine engine(*store, clock, random, config.engine);

  Status st = ApplyDeclarations(config, engine);
  if (!st.ok()) {
    spdlog::error("{}", st.ToString());
    return 1;
  }

  std::string token_path = config.data_dir + "/operator.token";
  auto operators = engine.ListOperatorTokens();
  if (!operators.ok()) {
    spdlog::error("{}", operators.status().ToString());
    return 1;
  }
  bool any_active = false;
  for (const auto& t : operators.value()) any_active = any_active || t.revoked_at == 0;
  if (!any_active || !std::filesystem::exists(token_path)) {
    if (!any_active) {
      auto token = engine.CreateOperatorToken("operator");
      if (!token.ok()) {
        spdlog::error("{}", token.status().ToString());
        return 1;
      }
      st = WriteSecretFile(token_path, token->secret);
      if (!st.ok()) {
        spdlog::error("{}", st.ToString());
        return 1;
      }
    } else {
      spdlog::warn("operator token file {} is missing; the tokens in the store stay valid",
                   token_path);
    }
  }

  api::RestApi rest(engine);
  http::Server server(config.http, [&rest](http::Request& req) { return rest.Handle(req); });
  st = server.Start();
  if (!st.ok()) {
    spdlog::error("{}", st.ToString());
    return 1;
  }
  engine.Start();
  if (!port_file.empty()) {
    st = WriteSecretFile(port_file, std::to_string(server.port()));
    if (!st.ok()) spdlog::error("{}", st.ToString());
  }
  std::printf("redrive listening on http://%s:%d\n", config.http.host.c_str(), server.port());
  std::printf("store: %s\n", config.StoreUri().c_str());
  std::printf("operator token: %s\n", token_path.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  rest.SetReady(false);
  server.StopAccepting();
  engine.Stop();  // ends long polls early
  if (!server.Drain(config.drain_timeout_ms)) {
    // Every acknowledged write is already durable; what is still running got no answer.
    spdlog::warn("drain timed out with requests still running; exiting without waiting");
    spdlog::shutdown();
    std::_Exit(0);
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace redrive::server
