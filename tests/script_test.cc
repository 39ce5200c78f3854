// Exhausted-message scripts (onExhausted "script") through the real binary: the queue attribute
// over HTTP, what an exhausted message becomes and the metric, a script declared in the config
// file (inline or from a file), and the client's --script-file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/harness.h"

namespace redrive::testing {
namespace {

// The ```lua block that follows "<!-- example: NAME -->" in docs/scripts.md, so that the page's
// examples are what runs here.
std::string DocExample(const std::string& name) {
  std::ifstream in(std::string(REDRIVE_SOURCE_DIR) + "/docs/scripts.md");
  std::stringstream page;
  page << in.rdbuf();
  std::string doc = page.str();
  size_t marker = doc.find("<!-- example: " + name + " -->");
  if (marker == std::string::npos) return "";
  size_t start = doc.find("```lua\n", marker);
  size_t end = doc.find("```\n", start + 7);
  if (start == std::string::npos || end == std::string::npos) return "";
  return doc.substr(start + 7, end - start - 7);
}

const std::string kRerouteByRegion = DocExample("reroute-by-region");

std::string Q(const std::string& queue, const std::string& tail = "") {
  return "/v1/tenants/acme/queues/" + queue + tail;
}

json ScriptQueue(const std::string& script, int max_deliveries = 1) {
  return {{"retryPolicy",
           {{"maxDeliveries", max_deliveries}, {"onExhausted", "script"}, {"script", script}}}};
}

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// A metric's line value ("name{labels} value"), or -1 when the line is missing.
int64_t Metric(const std::string& metrics, const std::string& series) {
  std::istringstream lines(metrics);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stoll(line.substr(series.size() + 1));
  }
  return -1;
}

class ScriptTest : public ::testing::Test {
 protected:
  void Boot(std::vector<std::string> args = {}) {
    server_ = std::make_unique<ServerProcess>("", std::move(args));
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    op_ = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
  }
  void SetUp() override {
    Boot();
    CreateTenant(*op_, "acme");
  }
  // Publishes one message with `attributes`, receives it and nacks it: with maxDeliveries 1 it
  // is exhausted. Returns its id.
  std::string PublishAndFail(const std::string& queue, const json& attributes) {
    json m = {{"body", "x"}};
    if (!attributes.empty()) m["attributes"] = attributes;
    auto sent = op_->Post(Q(queue, "/messages"), {{"messages", {m}}});
    EXPECT_EQ(sent.status, 201) << sent.body;
    auto got = op_->Post(Q(queue, "/receive"), {{"maxMessages", 1}});
    json messages = got.Json()["messages"];
    EXPECT_EQ(messages.size(), 1u) << got.body;
    if (messages.size() != 1) return "";
    auto nacked =
        op_->Post(Q(queue, "/nack"),
                  {{"nacks", {{{"receipt", messages[0]["receipt"]}, {"error", "HTTP 503"}}}}});
    EXPECT_EQ(nacked.status, 200) << nacked.body;
    return messages[0]["id"];
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> op_;
};

// Bad input gets a clear error and changes nothing: a script that does not compile, a missing
// script, a script without onExhausted "script".
TEST_F(ScriptTest, ABadScriptIsRefusedWith400AndChangesNothing) {
  auto r = op_->Post("/v1/tenants/acme/queues",
                     {{"name", "orders"}, {"attributes", ScriptQueue("if x then\n  drop(\nend")}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.ErrorCode(), "invalid-argument");
  EXPECT_NE(r.body.find("'retryPolicy.script': script does not compile: script:3:"),
            std::string::npos)
      << r.body;
  EXPECT_EQ(op_->Get(Q("orders")).status, 404);
  r = op_->Post(
      "/v1/tenants/acme/queues",
      {{"name", "orders"}, {"attributes", {{"retryPolicy", {{"onExhausted", "script"}}}}}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.ErrorCode(), "invalid-argument");
  EXPECT_EQ(op_->Get(Q("orders")).status, 404);

  r = op_->Post("/v1/tenants/acme/queues",
                {{"name", "orders"}, {"attributes", ScriptQueue("drop()")}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["onExhausted"], "script");
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["script"], "drop()");
  json before = op_->Get(Q("orders")).Json();

  for (const json& attributes :
       {json{{"retryPolicy", {{"script", "drop("}}}},
        json{{"retryPolicy", {{"script", std::string("\x1bLuaT\x00junk", 9)}}}},
        json{{"retryPolicy", {{"onExhausted", "dead-letter"}}}},
        json{{"visibilityTimeout", "1m"}, {"retryPolicy", {{"script", "drop() deadLetter("}}}}}) {
    r = op_->Patch(Q("orders"), {{"attributes", attributes}});
    EXPECT_EQ(r.status, 400) << attributes.dump() << ": " << r.body;
    EXPECT_EQ(r.ErrorCode(), "invalid-argument") << r.body;
    EXPECT_EQ(op_->Get(Q("orders")).Json(), before) << attributes.dump();
  }
  // The queue still decides with its script.
  std::string id = PublishAndFail("orders", json::object());
  EXPECT_EQ(op_->Get("/v1/tenants/acme/dead-letters/" + id).status, 404);

  // Leaving scripts: another action, and null for the script.
  r = op_->Patch(
      Q("orders"),
      {{"attributes", {{"retryPolicy", {{"onExhausted", "dead-letter"}, {"script", nullptr}}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.Json()["attributes"]["retryPolicy"]["script"].is_null());
}

TEST_F(ScriptTest, AnExhaustedMessageGoesWhereTheScriptSaysAndTheMetricCountsIt) {
  ASSERT_FALSE(kRerouteByRegion.empty()) << "docs/scripts.md lost its reroute-by-region example";
  ASSERT_EQ(op_->Post("/v1/tenants/acme/queues", {{"name", "eu-retry"}}).status, 201);
  auto r = op_->Post("/v1/tenants/acme/queues",
                     {{"name", "orders"}, {"attributes", ScriptQueue(kRerouteByRegion)}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["script"], kRerouteByRegion);

  std::string eu = PublishAndFail("orders", {{"region", "eu"}});
  auto moved = op_->Post(Q("eu-retry", "/receive"), {{"maxMessages", 10}}).Json()["messages"];
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0]["id"], eu);

  std::string none = PublishAndFail("orders", json::object());
  json dl = op_->Get("/v1/tenants/acme/dead-letters/" + none).Json();
  EXPECT_EQ(dl["reason"], "max-deliveries");
  EXPECT_EQ(dl["cause"], "HTTP 503");

  std::string bad = PublishAndFail("orders", {{"region", "eu west"}});
  dl = op_->Get("/v1/tenants/acme/dead-letters/" + bad).Json();
  EXPECT_EQ(dl["reason"], "script");
  EXPECT_EQ(dl["cause"],
            "script:5: reroute: queue name may contain only letters, digits, '.', '_' and '-'");
  // Dead letters of a failed script are found like any other.
  auto found = op_->Get(
      "/v1/tenants/acme/dead-letters?_queryFilter=%2Freason%20eq%20%22script%22&_fields=id");
  ASSERT_EQ(found.status, 200) << found.body;
  ASSERT_EQ(found.Json()["result"].size(), 1u) << found.body;
  EXPECT_EQ(found.Json()["result"][0]["id"], bad);

  std::string metrics = op_->Get("/metrics").body;
  EXPECT_EQ(Metric(metrics, "redrive_script_decisions_total{decision=\"reroute\"}"), 1) << metrics;
  EXPECT_EQ(Metric(metrics, "redrive_script_decisions_total{decision=\"dead-letter\"}"), 1);
  EXPECT_EQ(Metric(metrics, "redrive_script_decisions_total{decision=\"failed\"}"), 1);
  EXPECT_EQ(Metric(metrics, "redrive_script_decisions_total{decision=\"drop\"}"), 0);
  EXPECT_EQ(Metric(metrics, "redrive_script_decisions_total{decision=\"retry\"}"), 0);
  EXPECT_EQ(Metric(metrics, "redrive_messages_dead_lettered_total{reason=\"script\"}"), 1);
  EXPECT_EQ(Metric(metrics, "redrive_messages_dead_lettered_total{reason=\"max-deliveries\"}"), 1);
  EXPECT_EQ(Metric(metrics, "redrive_messages_rerouted_total"), 1);
}

// The other two examples of docs/scripts.md, as a queue's scripts in a real server.
TEST_F(ScriptTest, TheDocumentedExamplesDecideAsDocumented) {
  std::string notify = DocExample("notify"), drop_known_bad = DocExample("drop-known-bad");
  ASSERT_FALSE(notify.empty());
  ASSERT_FALSE(drop_known_bad.empty());
  ASSERT_EQ(op_->Post("/v1/tenants/acme/queues",
                      {{"name", "orders"}, {"attributes", ScriptQueue(notify)}})
                .status,
            201);
  ASSERT_EQ(op_->Post("/v1/tenants/acme/queues",
                      {{"name", "events"}, {"attributes", ScriptQueue(drop_known_bad)}})
                .status,
            201);

  std::string order = PublishAndFail("orders", json::object());
  json dl = op_->Get("/v1/tenants/acme/dead-letters/" + order).Json();
  EXPECT_EQ(dl["reason"], "max-deliveries");
  std::string said = "acme/orders: message " + order + " script: giving up on " + order +
                     " from orders after 1 deliveries: HTTP 503";
  EXPECT_TRUE(Eventually([&] { return server_->log().find(said) != std::string::npos; }))
      << server_->log();
  EXPECT_NE(
      server_->log().find("acme/orders: message " + order + " script: last attempt: nack by "),
      std::string::npos);

  std::string heartbeat = PublishAndFail("events", {{"type", "heartbeat"}});
  std::string created = PublishAndFail("events", {{"type", "order.created"}});
  EXPECT_EQ(op_->Get("/v1/tenants/acme/dead-letters/" + heartbeat).status, 404);
  EXPECT_EQ(op_->Get("/v1/tenants/acme/dead-letters/" + created).Json()["reason"],
            "max-deliveries");
  EXPECT_EQ(op_->Get(Q("events")).Json()["depth"]["ready"], 0);
}

// ------------------------------------------------------------------ the config file

class ScriptConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string WriteConfig(const std::string& queues) {
    std::string path = dir_ + "/redrive.toml";
    WriteFile(path, "[[tenants]]\nname = \"acme\"\n" + queues);
    return path;
  }
  std::string dir_;
};

TEST_F(ScriptConfigTest, ADeclaredQueueTakesItsScriptInlineOrFromAFile) {
  WriteFile(dir_ + "/scripts/orders.lua", kRerouteByRegion);
  std::string config = WriteConfig(R"toml(
  [[tenants.queues]]
  name = "orders"
  retryPolicy = { maxDeliveries = 1, onExhausted = "script", script_file = "scripts/orders.lua" }

  [[tenants.queues]]
  name = "heartbeats"
  retryPolicy = { onExhausted = "script", script = "drop()" }
)toml");
  ServerProcess server("", {"--config", config});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  HttpClient op(server.url(), server.operator_token());
  auto r = op.Get(Q("orders"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["script"], kRerouteByRegion);
  r = op.Get(Q("heartbeats"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["script"], "drop()");
}

// An unreadable script file stops the server as an invalid config file does (exit code 2), one
// that does not compile as an invalid declared queue does (1); each says what is wrong.
TEST_F(ScriptConfigTest, AnUnreadableOrBrokenScriptFileStopsTheStart) {
  WriteFile(dir_ + "/scripts/broken.lua", "if failure.id then\n  drop(\nend\n");
  struct Case {
    std::string file;
    int exit_code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"scripts/missing.lua", 2,
       "'tenants[0].queues[0].retryPolicy.script_file' cannot read " + dir_ +
           "/scripts/missing.lua"},
      {"scripts/broken.lua", 1,
       "config: tenant acme queue orders: 'retryPolicy.script': script does not compile: "
       "script:3: unexpected symbol near 'end' (script read from " +
           dir_ + "/scripts/broken.lua)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    std::string config = WriteConfig(
        "[[tenants.queues]]\nname = \"orders\"\nretryPolicy = { onExhausted = \"script\", "
        "script_file = \"" +
        c.file + "\" }\n");
    ServerProcess server("", {"--config", config});
    std::string error;
    ASSERT_FALSE(server.Start(&error));
    EXPECT_EQ(server.start_exit_code(), c.exit_code) << error;
    EXPECT_NE(error.find(c.says), std::string::npos) << error;
  }
}

// ------------------------------------------------------------------ the client

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `redrive args...` with a clean environment, its output in files (it is small).
CliResult RunClient(const std::vector<std::string>& args, const std::string& home) {
  std::string out = home + "/stdout", err = home + "/stderr";
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr) ||
        !freopen("/dev/null", "r", stdin)) {
      _exit(126);
    }
    std::vector<std::string> argv_s = {RedriveBinary()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string home_env = "HOME=" + home;
    char path_env[] = "PATH=/usr/bin:/bin";
    char* envp[] = {home_env.data(), path_env, nullptr};
    execve(argv[0], argv.data(), envp);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  return r;
}

TEST_F(ScriptTest, TheClientSendsTheScriptFileInline) {
  std::string home = MakeTempDir();
  WriteFile(home + "/orders.lua", kRerouteByRegion);
  WriteFile(home + "/broken.lua", "drop(\n");
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--url", server_->url(), "--token", server_->operator_token(),
                             "--tenant", "acme"});
    return RunClient(args, home);
  };
  CliResult created = cli({"queue", "create", "orders", "--max-deliveries", "1", "--on-exhausted",
                           "script", "--script-file", home + "/orders.lua"});
  ASSERT_EQ(created.exit_code, 0) << created.out << created.err;
  EXPECT_NE(created.out.find("retryPolicy.onExhausted:"), std::string::npos) << created.out;
  // The script is shown with its lines, under its name.
  EXPECT_NE(created.out.find("retryPolicy.script:"), std::string::npos) << created.out;
  EXPECT_NE(created.out.find("  reroute(region .. \"-retry\")\n"), std::string::npos)
      << created.out;
  EXPECT_EQ(op_->Get(Q("orders")).Json()["attributes"]["retryPolicy"]["script"], kRerouteByRegion);

  CliResult broken =
      cli({"queue", "update", "orders", "--script-file", home + "/broken.lua", "--json"});
  EXPECT_EQ(broken.exit_code, 1) << broken.out << broken.err;
  EXPECT_NE(broken.err.find("invalid-argument"), std::string::npos) << broken.err;
  EXPECT_NE(broken.err.find("script:2:"), std::string::npos) << broken.err;
  EXPECT_EQ(op_->Get(Q("orders")).Json()["attributes"]["retryPolicy"]["script"], kRerouteByRegion);

  CliResult missing = cli({"queue", "update", "orders", "--script-file", home + "/nothing.lua"});
  EXPECT_EQ(missing.exit_code, 2) << missing.out << missing.err;
  EXPECT_NE(missing.err.find("cannot read --script-file " + home + "/nothing.lua"),
            std::string::npos)
      << missing.err;
  std::filesystem::remove_all(home);
}

}  // namespace
}  // namespace redrive::testing
