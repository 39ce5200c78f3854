#include "server/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
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

}  // namespace
}  // namespace redrive::server
