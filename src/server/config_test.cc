#include "server/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace redrive::server {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    path_ = ::testing::TempDir() + "/redrive-config-" + std::to_string(getpid()) + ".toml";
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { std::remove(path_.c_str()); }
  std::string path_;
};

TEST_F(ConfigTest, ReadsServerSettingsTenantsAndQueues) {
  ServerConfig c;
  auto st = LoadConfigFile(Write(R"(
[server]
listen = "0.0.0.0:9090"
data_dir = "/var/lib/redrive"
request_timeout = "10s"
max_connections = 64

[limits]
max_batch = 200
dead_letter_retention = "14d"

[[tenants]]
name = "acme"
  [[tenants.queues]]
  name = "orders"
  visibilityTimeout = "45s"
  retryPolicy = { maxDeliveries = 3, backoff = { initial = "2s" }, onExhausted = "drop" }
)"),
                           &c);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(c.http.host, "0.0.0.0");
  EXPECT_EQ(c.http.port, 9090);
  EXPECT_EQ(c.data_dir, "/var/lib/redrive");
  EXPECT_EQ(c.http.request_timeout_ms, 10'000);
  EXPECT_EQ(c.http.max_connections, 64);
  EXPECT_EQ(c.engine.max_batch, 200);
  EXPECT_EQ(c.engine.dead_letter_retention, 14 * 86'400'000LL);
  EXPECT_EQ(c.StoreUri(), "sqlite:/var/lib/redrive/redrive.db");
  ASSERT_EQ(c.tenants.size(), 1u);
  ASSERT_EQ(c.tenants[0].queues.size(), 1u);
  EXPECT_EQ(c.tenants[0].queues[0].name, "orders");
  EXPECT_EQ(c.tenants[0].queues[0].attributes["retryPolicy"]["maxDeliveries"], 3);
  EXPECT_FALSE(c.tenants[0].queues[0].attributes.contains("name"));
}

TEST_F(ConfigTest, RejectsUnknownKeysWithTheirName) {
  ServerConfig c;
  auto st = LoadConfigFile(Write("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n"), &c);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("server.lisen"), std::string::npos) << st.message();
}

TEST_F(ConfigTest, ReportsSyntaxErrorsWithTheLine) {
  ServerConfig c;
  auto st = LoadConfigFile(Write("[server]\n\nlisten = = 3\n"), &c);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find(":3:"), std::string::npos) << st.message();
}

TEST_F(ConfigTest, RejectsBadValues) {
  for (const char* text :
       {"[server]\nlisten = \"host:notaport\"\n", "[server]\nrequest_timeout = \"soon\"\n",
        "[server]\nmax_connections = 0\n", "[limits]\nmax_batch = \"x\"\n",
        "[[tenants]]\nqueues = []\n"}) {
    ServerConfig c;
    EXPECT_EQ(LoadConfigFile(Write(text), &c).code(), ErrorCode::kInvalidArgument) << text;
  }
}

TEST_F(ConfigTest, RejectsValuesOfTheWrongType) {
  for (const char* text :
       {"[server]\nlisten = 8080\n", "[server]\ndata_dir = 1\n", "[server]\nlog_level = true\n",
        "[limits]\ndead_letter_retention = 7\n"}) {
    ServerConfig c;
    EXPECT_EQ(LoadConfigFile(Write(text), &c).code(), ErrorCode::kInvalidArgument) << text;
  }
}

// Found by config_fuzz: a float for an integer setting went through toml++'s float-to-integer
// conversion, which casts before it checks the range (undefined behaviour for 1e33).
TEST_F(ConfigTest, RefusesFloatsForIntegerSettings) {
  for (const char* text : {"[limits]\nmax_batch = 1e33\n", "[limits]\nmax_batch = 1000.0\n",
                           "[server]\nmax_connections = -1e300\n",
                           "[server]\nmax_body_bytes = nan\n", "[limits]\nmax_receive = inf\n"}) {
    ServerConfig c;
    auto st = LoadConfigFile(Write(text), &c);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(st.message().find("must be an integer"), std::string::npos) << st.message();
    EXPECT_EQ(c.engine.max_batch, ServerConfig().engine.max_batch) << text;
  }
}

TEST_F(ConfigTest, ValidatesTheCombinedResult) {
  ServerConfig c;
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.log_level = "loud";
  EXPECT_EQ(ValidateConfig(c).code(), ErrorCode::kInvalidArgument);
}

TEST_F(ConfigTest, EnvironmentOverridesTheFile) {
  ServerConfig c;
  ASSERT_TRUE(LoadConfigFile(Write("[server]\nlisten = \"127.0.0.1:1000\"\n"), &c).ok());
  setenv("REDRIVE_LISTEN", "127.0.0.1:2000", 1);
  setenv("REDRIVE_DATA_DIR", "/tmp/x", 1);
  ASSERT_TRUE(ApplyEnvironment(&c).ok());
  unsetenv("REDRIVE_LISTEN");
  unsetenv("REDRIVE_DATA_DIR");
  EXPECT_EQ(c.http.port, 2000);
  EXPECT_EQ(c.data_dir, "/tmp/x");
}

TEST_F(ConfigTest, TlsTakesACertificateAndItsKeyTogether) {
  ServerConfig c;
  auto st = LoadConfigFile(Write("[tls]\ncert_file = \"/etc/redrive/cert.pem\"\n"
                                 "min_version = \"1.3\"\n"),
                           &c);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(c.http.tls.cert_file, "/etc/redrive/cert.pem");
  EXPECT_EQ(c.http.tls.min_version, "1.3");
  st = ValidateConfig(c);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("tls.key_file"), std::string::npos) << st.message();

  setenv("REDRIVE_TLS_KEY_FILE", "/etc/redrive/key.pem", 1);
  st = ApplyEnvironment(&c);
  unsetenv("REDRIVE_TLS_KEY_FILE");
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(c.http.tls.key_file, "/etc/redrive/key.pem");
  EXPECT_TRUE(ValidateConfig(c).ok());

  c.http.tls.min_version = "1.1";
  EXPECT_EQ(ValidateConfig(c).code(), ErrorCode::kInvalidArgument);
  ServerConfig typo;
  st = LoadConfigFile(Write("[tls]\ncert = \"x.pem\"\n"), &typo);
  EXPECT_NE(st.message().find("tls.cert"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace redrive::server

namespace redrive::server {
namespace {

TEST_F(ConfigTest, QuotasComeFromTheFileTheEnvironmentAndFlagsInThatOrder) {
  ServerConfig c;
  auto st = LoadConfigFile(Write(R"(
[quotas]
max_queues = 10
max_messages = 1000
request_rate = 50
retry_after = "2s"
)"),
                           &c);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(c.engine.default_quotas.max_queues, 10);
  EXPECT_EQ(c.engine.default_quotas.max_messages, 1000);
  EXPECT_EQ(c.engine.default_quotas.max_bytes, 0);
  EXPECT_EQ(c.engine.default_quotas.request_rate, 50);
  EXPECT_EQ(c.engine.quota_retry_after, 2000);
  setenv("REDRIVE_QUOTA_MAX_MESSAGES", "2000", 1);
  st = ApplyEnvironment(&c);
  unsetenv("REDRIVE_QUOTA_MAX_MESSAGES");
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(c.engine.default_quotas.max_messages, 2000);
  ASSERT_TRUE(ApplyQuota("max_messages", "3000", &c).ok());
  EXPECT_EQ(c.engine.default_quotas.max_messages, 3000);
  EXPECT_EQ(c.engine.default_quotas.max_queues, 10);
}

TEST_F(ConfigTest, BadQuotasAreRefusedWithTheirName) {
  for (const char* text :
       {"[quotas]\nmax_queues = -1\n", "[quotas]\nmax_queue = 1\n",
        "[quotas]\nrequest_rate = 2000000000\n", "[quotas]\nmax_bytes = \"1GiB\"\n",
        "[quotas]\nretry_after = \"0s\"\n", "quotas = 5\n"}) {
    ServerConfig c;
    auto st = LoadConfigFile(Write(text), &c);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(st.message().find("quotas"), std::string::npos) << st.message();
  }
  ServerConfig c;
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"max_messages", "-5"},
                                                        {"max_messages", "12x"},
                                                        {"max_messages", ""},
                                                        {"retry_after", "5"},
                                                        {"nope", "1"}}) {
    auto st = ApplyQuota(key, value, &c);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << key << "=" << value;
  }
  EXPECT_EQ(c.engine.default_quotas.max_messages, 0) << "nothing changed";
  setenv("REDRIVE_QUOTA_REQUEST_RATE", "fast", 1);
  auto st = ApplyEnvironment(&c);
  unsetenv("REDRIVE_QUOTA_REQUEST_RATE");
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("request_rate"), std::string::npos) << st.message();
}

TEST(ListenTest, TakesIpv4AndBracketedIpv6) {
  ServerConfig c;
  ASSERT_TRUE(ApplyListen("[::1]:8080", &c).ok());
  EXPECT_EQ(c.http.host, "::1");
  EXPECT_EQ(c.http.port, 8080);
  ASSERT_TRUE(ApplyListen("[::]:0", &c).ok());
  EXPECT_EQ(c.http.host, "::");
  ASSERT_TRUE(ApplyListen("0.0.0.0:9", &c).ok());
  EXPECT_EQ(c.http.host, "0.0.0.0");
  ASSERT_TRUE(ApplyListen(":7", &c).ok());  // keeps the host
  EXPECT_EQ(c.http.host, "0.0.0.0");
  EXPECT_EQ(c.http.port, 7);
}

TEST(ListenTest, RefusesUnbracketedIpv6AndChangesNothing) {
  ServerConfig c;
  auto st = ApplyListen("::1:8080", &c);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("brackets"), std::string::npos) << st.message();
  EXPECT_EQ(c.http.host, "127.0.0.1");
  EXPECT_EQ(c.http.port, 8080);
}

TEST_F(ConfigTest, ThreadCountsAreReadAndBounded) {
  ServerConfig c;
  ASSERT_TRUE(LoadConfigFile(Write("[server]\nio_threads = 3\nhandler_threads = 16\n"), &c).ok());
  EXPECT_EQ(c.http.io_threads, 3);
  EXPECT_EQ(c.http.handler_threads, 16);
  ServerConfig d;
  EXPECT_EQ(LoadConfigFile(Write("[server]\nhandler_threads = 0\n"), &d).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(d.http.handler_threads, 64);
}

// A declared queue's script, inline or from a file beside the config file (read at load).
TEST_F(ConfigTest, AQueueTakesItsScriptInlineOrFromAFileBesideTheConfig) {
  std::string dir = ::testing::TempDir() + "/redrive-config-scripts-" + std::to_string(getpid());
  std::filesystem::create_directories(dir + "/scripts");
  std::ofstream(dir + "/scripts/orders.lua") << "-- orders\ndrop()\n";
  std::ofstream(dir + "/scripts/latin1.lua") << "-- caf\xe9\ndrop()\n";
  const std::string config_path = dir + "/redrive.toml";
  auto load = [&](const std::string& text, ServerConfig* c) {
    std::ofstream(config_path, std::ios::trunc) << text;
    return LoadConfigFile(config_path, c);
  };
  ServerConfig c;
  Status st = load(R"toml([[tenants]]
name = "acme"
  [[tenants.queues]]
  name = "orders"
  retryPolicy = { onExhausted = "script", script_file = "scripts/orders.lua" }
  [[tenants.queues]]
  name = "inline"
  retryPolicy = { onExhausted = "script", script = "deadLetter()" }
)toml",
                   &c);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(c.tenants[0].queues.size(), 2u);
  const auto& orders = c.tenants[0].queues[0];
  EXPECT_EQ(orders.attributes["retryPolicy"]["script"], "-- orders\ndrop()\n");
  EXPECT_FALSE(orders.attributes["retryPolicy"].contains("script_file"));
  EXPECT_EQ(orders.script_file, dir + "/scripts/orders.lua");
  EXPECT_EQ(c.tenants[0].queues[1].attributes["retryPolicy"]["script"], "deadLetter()");
  EXPECT_EQ(c.tenants[0].queues[1].script_file, "");

  struct Case {
    std::string retry;
    std::string says;
  };
  const std::vector<Case> cases = {
      {R"(script_file = "scripts/missing.lua")",
       "'tenants[0].queues[0].retryPolicy.script_file' cannot read " + dir +
           "/scripts/missing.lua"},
      {R"(script_file = "scripts")", "not a regular file"},
      {R"(script_file = "scripts/latin1.lua")", "is not UTF-8 text"},
      {R"(script_file = 3)", "must be the path of a Lua file"},
      {R"x(script_file = "scripts/orders.lua", script = "drop()")x", "exclude each other"},
  };
  for (const auto& k : cases) {
    ServerConfig bad;
    st = load(
        "[[tenants]]\nname = \"acme\"\n[[tenants.queues]]\nname = \"orders\"\n"
        "retryPolicy = { onExhausted = \"script\", " +
            k.retry + " }\n",
        &bad);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << k.retry;
    EXPECT_EQ(st.message().rfind("config: ", 0), 0u) << st.message();
    EXPECT_NE(st.message().find(k.says), std::string::npos) << st.message();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace redrive::server
