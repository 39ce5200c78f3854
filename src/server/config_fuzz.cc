// libFuzzer target for the config file loader (scripts/fuzz.sh config_fuzz SECONDS). An input is
// the text of a TOML config file. It goes through what `redrive serve --config` does before
// serving: LoadConfigFile (toml++ and every key's reader), ValidateConfig, and for each declared
// queue the attribute decoder and validation that creating it runs (ApplyQueueConfigJson,
// ValidateQueueConfig).
//
// Checks, beyond "no crash, no sanitizer report": a refused file is refused with
// invalid-argument and a message that starts with "config"; an accepted file gives settings
// inside the documented ranges; a declared queue's accepted attributes survive their JSON form
// (what `serve` compares on restart to decide whether to update the queue).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/queue_config.h"
#include "server/config.h"

namespace {

using redrive::ErrorCode;
using redrive::Status;
using redrive::server::ServerConfig;

[[noreturn]] void Die(const char* what, const std::string& detail, const std::string& text) {
  std::fprintf(stderr, "fuzz check failed: %s\n%s\nconfig:\n%s\n", what, detail.c_str(),
               text.c_str());
  std::abort();
}

const std::string& ConfigPath() {
  static const std::string path = [] {
    std::string base = std::filesystem::is_directory("/dev/shm") && access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : std::filesystem::temp_directory_path().string();
    return base + "/redrive-config-fuzz-" + std::to_string(getpid()) + ".toml";
  }();
  static const bool cleanup = [] {
    std::atexit([] { std::remove(ConfigPath().c_str()); });
    return true;
  }();
  (void)cleanup;
  return path;
}

void CheckRange(const char* key, int64_t v, int64_t lo, int64_t hi, const std::string& text) {
  if (v < lo || v > hi) {
    Die("an accepted setting outside its documented range",
        std::string(key) + " = " + std::to_string(v), text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  {
    std::ofstream out(ConfigPath(), std::ios::binary | std::ios::trunc);
    out << text;
  }
  ServerConfig config;
  Status st = redrive::server::LoadConfigFile(ConfigPath(), &config);
  if (!st.ok()) {
    if (st.code() != ErrorCode::kInvalidArgument || st.message().rfind("config", 0) != 0) {
      Die("a refused config file without invalid-argument and a 'config' message", st.ToString(),
          text);
    }
    return 0;
  }
  CheckRange("server.max_connections", config.http.max_connections, 1, 100'000, text);
  CheckRange("server.max_body_bytes", static_cast<int64_t>(config.http.max_body_bytes), 1024,
             int64_t{256} << 20, text);
  CheckRange("server.max_header_bytes", static_cast<int64_t>(config.http.max_header_bytes), 1024,
             int64_t{1} << 20, text);
  CheckRange("server.request_timeout", config.http.request_timeout_ms, 0, 86'400'000, text);
  CheckRange("server.idle_timeout", config.http.idle_timeout_ms, 0, 86'400'000, text);
  CheckRange("server.drain_timeout", config.drain_timeout_ms, 0, 86'400'000, text);
  CheckRange("listen port", config.http.port, 0, 65535, text);
  CheckRange("limits.max_batch", config.engine.max_batch, 1, 10'000, text);
  CheckRange("limits.max_receive", config.engine.max_receive, 1, 10'000, text);
  CheckRange("limits.max_attributes", config.engine.max_attributes, 0, 1000, text);
  CheckRange("limits.dead_letter_retention", config.engine.dead_letter_retention, 0,
             int64_t{100} * 365 * 86'400'000, text);
  const auto& quotas = config.engine.default_quotas;
  CheckRange("quotas.max_queues", quotas.max_queues, 0, INT64_MAX, text);
  CheckRange("quotas.max_messages", quotas.max_messages, 0, INT64_MAX, text);
  CheckRange("quotas.max_bytes", quotas.max_bytes, 0, INT64_MAX, text);
  CheckRange("quotas.request_rate", quotas.request_rate, 0, 1'000'000'000, text);
  CheckRange("quotas.request_burst", quotas.request_burst, 0, 1'000'000'000, text);
  CheckRange("quotas.retry_after", config.engine.quota_retry_after, 1000, 3'600'000, text);

  Status valid = redrive::server::ValidateConfig(config);
  if (!valid.ok() && valid.code() != ErrorCode::kInvalidArgument) {
    Die("ValidateConfig refused without invalid-argument", valid.ToString(), text);
  }

  for (const auto& tenant : config.tenants) {
    for (const auto& queue : tenant.queues) {
      redrive::engine::QueueConfig qc;
      Status applied = redrive::engine::ApplyQueueConfigJson(queue.attributes, &qc);
      if (applied.ok()) applied = redrive::engine::ValidateQueueConfig(qc);
      if (!applied.ok()) {
        ErrorCode c = applied.code();
        if (c != ErrorCode::kInvalidArgument && c != ErrorCode::kUnknownField &&
            c != ErrorCode::kInvalidDuration && c != ErrorCode::kInvalidName) {
          Die("queue attributes refused with an unexpected code", applied.ToString(), text);
        }
        continue;
      }
      nlohmann::json form = redrive::engine::QueueConfigToJson(qc);
      redrive::engine::QueueConfig again;
      Status back = redrive::engine::ApplyQueueConfigJson(form, &again);
      if (!back.ok())
        Die("a queue's JSON form is refused", back.ToString() + "\n" + form.dump(), text);
      if (redrive::engine::QueueConfigToJson(again) != form) {
        Die("a queue's JSON form does not read back the same",
            form.dump() + "\n" + redrive::engine::QueueConfigToJson(again).dump(), text);
      }
    }
  }
  return 0;
}
