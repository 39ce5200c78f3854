// Notifications and tickets against the real `redrive serve` binary: settings over HTTP, a test
// notification and a ticket's notice reaching a real SMTP server (Debian's aiosmtpd, started
// here on 127.0.0.1) and a webhook receiver, the answer link's page and its single use, the
// retry moving the ticket's dead letters back, the audit, and the server log keeping the link's
// secret out.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "push/test_endpoint.h"
#include "tests/harness.h"

namespace redrive::testing {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// Debian's aiosmtpd, writing every message it takes into a Maildir.
class SmtpSink {
 public:
  SmtpSink() : dir_(MakeTempDir() + "/mail"), port_(FreePort()) {}
  ~SmtpSink() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(std::filesystem::path(dir_).parent_path());
  }
  bool Start(std::string* error) {
    pid_ = fork();
    if (pid_ == 0) {
      std::string listen = "127.0.0.1:" + std::to_string(port_);
      execl("/usr/bin/python3", "python3", "-m", "aiosmtpd", "-n", "-l", listen.c_str(), "-c",
            "aiosmtpd.handlers.Mailbox", dir_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    if (Eventually([&] { return Accepts(port_); })) return true;
    *error = "aiosmtpd did not start on port " + std::to_string(port_) +
             " (is python3-aiosmtpd installed? scripts/deps.sh installs it)";
    return false;
  }
  int port() const { return port_; }
  // Every message received so far, raw.
  std::vector<std::string> Messages() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/new", ec)) {
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream s;
      s << in.rdbuf();
      out.push_back(s.str());
    }
    return out;
  }
  // The first message whose text holds `needle`, or "".
  std::string Find(const std::string& needle) const {
    for (const auto& m : Messages()) {
      if (m.find(needle) != std::string::npos) return m;
    }
    return "";
  }

 private:
  std::string dir_;
  int port_;
  pid_t pid_ = -1;
};

class TicketsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(smtp_.Start(&error)) << error;
    ASSERT_TRUE(hook_.Start(&error)) << error;
    config_dir_ = MakeTempDir();
    std::ofstream(config_dir_ + "/redrive.toml")
        << "[notifications]\nsmtp_url = \"smtp://127.0.0.1:" << smtp_.port()
        << "\"\nsmtp_from = \"redrive@example.test\"\n";
    server_ = std::make_unique<ServerProcess>(
        "", std::vector<std::string>{"--config", config_dir_ + "/redrive.toml"});
    ASSERT_TRUE(server_->Start(&error)) << error;
    op_ = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
    CreateTenant(*op_, "acme");
    CreateQueue(*op_, "acme", "orders", {{"retryPolicy", {{"maxDeliveries", 1}}}});
    token_ = CreateToken(*op_, "acme", "ops");
    c_ = std::make_unique<HttpClient>(server_->url(), token_);
  }
  void TearDown() override {
    server_.reset();
    hook_.Stop();
    std::filesystem::remove_all(config_dir_);
  }

  // `n` dead letters of "orders".
  void DeadLetter(int n) {
    json batch = json::array();
    for (int i = 0; i < n; ++i) batch.push_back({{"body", "order-" + std::to_string(i)}});
    ASSERT_EQ(c_->Post(base_ + "/queues/orders/messages", {{"messages", batch}}).status, 201);
    json got = c_->Post(base_ + "/queues/orders/receive", {{"maxMessages", n}}).Json();
    json nacks = json::array();
    for (const auto& m : got["messages"]) {
      nacks.push_back({{"receipt", m["receipt"]}, {"error", "HTTP 503 from the warehouse"}});
    }
    ASSERT_EQ(c_->Post(base_ + "/queues/orders/nack", {{"nacks", nacks}}).status, 200);
  }
  std::vector<json> HookBodies() {
    std::vector<json> out;
    for (const auto& r : hook_.received()) out.push_back(json::parse(r.body, nullptr, false));
    return out;
  }
  bool HookGot(const std::string& type) {
    for (const auto& b : HookBodies()) {
      if (b.is_object() && b.value("type", "") == type) return true;
    }
    return false;
  }

  const std::string base_ = "/v1/tenants/acme";
  SmtpSink smtp_;
  push::testing::TestEndpoint hook_;
  std::string config_dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> op_;
  std::string token_;
  std::unique_ptr<HttpClient> c_;
};

TEST_F(TicketsHttpTest, ADigestTicketReachesEveryChannelAndItsLinkRetriesOnce) {
  json settings = {{"channels",
                    {{{"type", "log"}},
                     {{"type", "webhook"}, {"name", "ops"}, {"url", hook_.url("/notify")}},
                     {{"type", "email"}, {"to", {"oncall@example.test"}}}}},
                   {"tickets", {{"responseWindow", "2d"}}}};
  auto put = c_->Send("PUT", base_ + "/notifications", settings.dump());
  ASSERT_EQ(put.status, 200) << put.body;
  json saved = put.Json();
  EXPECT_EQ(saved["digest"]["schedule"], "0 9 * * 1");
  std::string secret;
  for (const auto& ch : saved["channels"]) {
    if (ch["type"] == "webhook") secret = ch.value("secret", "");
  }
  EXPECT_EQ(secret.rfind("whsec_", 0), 0u) << "the new subscription's secret is shown once";
  EXPECT_FALSE(c_->Get(base_ + "/notifications").Json()["channels"][1].contains("secret"));

  // Bad settings: a clear error, and nothing changes.
  auto bad = c_->Send("PUT", base_ + "/notifications",
                      json{{"digest", {{"schedule", "61 * * * *"}}}}.dump());
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.ErrorCode(), "invalid-argument");
  EXPECT_NE(bad.body.find("digest.schedule"), std::string::npos) << bad.body;
  EXPECT_EQ(c_->Get(base_ + "/notifications").Json()["tickets"]["responseWindow"], "2d");

  // A test notification: e-mail and webhook.
  auto test = c_->Post(base_ + "/notifications/test", json::object());
  ASSERT_EQ(test.status, 200) << test.body;
  EXPECT_NE(smtp_.Find("Subject: [redrive] acme: test notification"), "");
  ASSERT_TRUE(Eventually([&] { return HookGot("redrive.test"); }));
  EXPECT_FALSE(hook_.received()[0].headers["webhook-signature"].empty());

  // Nothing to ticket yet.
  auto none = c_->Post(base_ + "/digest", json::object());
  EXPECT_EQ(none.status, 200);
  EXPECT_TRUE(none.Json()["ticket"].is_null());

  DeadLetter(5);
  auto digest = c_->Post(base_ + "/digest", json::object());
  ASSERT_EQ(digest.status, 201) << digest.body;
  json ticket = digest.Json()["ticket"];
  const std::string id = ticket["id"];
  const std::string link = digest.Json()["answerLink"];
  EXPECT_EQ(ticket["count"], 5);
  EXPECT_EQ(ticket["state"], "open");
  EXPECT_EQ(ticket["summary"]["byOrigin"][0]["origin"], "orders");
  EXPECT_EQ(ticket["summary"]["samples"].size(), 3u);
  ASSERT_EQ(link.rfind(server_->url() + "/v1/ticket-links/rdl_", 0), 0u) << link;

  // The notice: by e-mail (with the link and the deadline) and by webhook.
  ASSERT_TRUE(Eventually([&] { return !smtp_.Find("5 dead letter(s)").empty(); }));
  std::string mail = smtp_.Find("5 dead letter(s)");
  EXPECT_NE(mail.find("To: oncall@example.test"), std::string::npos) << mail;
  EXPECT_NE(mail.find(link), std::string::npos) << mail;
  EXPECT_NE(mail.find("Answer by " + ticket["expiresAt"].get<std::string>()), std::string::npos);
  ASSERT_TRUE(Eventually([&] { return HookGot("redrive.ticket"); }));
  for (const auto& b : HookBodies()) {
    if (b.value("type", "") == "redrive.ticket") EXPECT_EQ(b["ticket"]["id"], id);
  }

  // The ticket's dead letters are found by their ticket.
  json listed = c_->Get(base_ + "/dead-letters?_queryFilter=ticket%20eq%20%22" + id + "%22").Json();
  EXPECT_EQ(listed["result"].size(), 5u);
  EXPECT_EQ(c_->Get(base_ + "/tickets?_queryFilter=state%20eq%20%22open%22").Json()["resultCount"],
            1);

  // The link's page, without a token.
  HttpClient anyone(server_->url());
  const std::string link_path = link.substr(server_->url().size());
  auto page = anyone.Get(link_path);
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(page.Header("x-frame-options"), "DENY");
  EXPECT_NE(page.Header("content-security-policy").find("default-src 'none'"), std::string::npos);
  EXPECT_NE(page.body.find(id), std::string::npos);
  EXPECT_NE(page.body.find("value=\"retry\""), std::string::npos);
  EXPECT_EQ(anyone.Get("/v1/ticket-links/rdl_forged").status, 404);

  // Answered through the link: the dead letters go back to their queue; the link is spent.
  auto answered =
      anyone.Send("POST", link_path, "action=retry", "application/x-www-form-urlencoded");
  EXPECT_EQ(answered.status, 200) << answered.body;
  EXPECT_NE(answered.body.find("5 dead letter(s) back"), std::string::npos) << answered.body;
  ASSERT_TRUE(
      Eventually([&] { return c_->Get(base_ + "/queues/orders").Json()["depth"]["ready"] == 5; }));
  EXPECT_EQ(c_->Get(base_ + "/dead-letters").Json()["result"].size(), 0u);
  EXPECT_EQ(
      anyone.Send("POST", link_path, "action=discard", "application/x-www-form-urlencoded").status,
      409);
  EXPECT_EQ(anyone.Get(link_path).status, 409);
  auto again = c_->Post(base_ + "/tickets/" + id + "/answer", {{"action", "discard"}});
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.ErrorCode(), "ticket-closed");
  EXPECT_EQ(c_->Post(base_ + "/tickets/" + id + "/answer", {{"action", "later"}}).status, 400);
  EXPECT_EQ(c_->Post(base_ + "/tickets/tkt_none/answer", {{"action", "retry"}}).ErrorCode(),
            "ticket-not-found");

  // Closed once its job is done; every step audited.
  ASSERT_TRUE(
      Eventually([&] { return c_->Get(base_ + "/tickets/" + id).Json()["state"] == "answered"; }));
  json t = c_->Get(base_ + "/tickets/" + id).Json();
  EXPECT_EQ(t["answer"]["via"], "link");
  EXPECT_EQ(t["answer"]["moved"], 5);
  std::set<std::string> actions;
  json audit = c_->Get(base_ + "/audit?_pageSize=1000").Json();
  for (const auto& e : audit["result"]) actions.insert(e.value("action", ""));
  for (const char* a : {"notifications.update", "notifications.test", "ticket.open",
                        "ticket.notify", "ticket.answer", "ticket.close"}) {
    EXPECT_TRUE(actions.count(a)) << a << " in " << audit.dump().substr(0, 3000);
  }

  // The server log names the notice but never the link's secret.
  std::string log = server_->log();
  EXPECT_NE(log.find("notification [acme] redrive.ticket"), std::string::npos);
  EXPECT_EQ(log.find(link.substr(link.find("rdl_"))), std::string::npos);
}

TEST_F(TicketsHttpTest, RoutesRefuseBadAnswersAndScopes) {
  DeadLetter(2);
  ASSERT_EQ(c_->Send("PUT", base_ + "/notifications", R"({"channels": [{"type": "log"}]})").status,
            200);
  json ticket = c_->Post(base_ + "/digest", json::object()).Json()["ticket"];
  const std::string id = ticket["id"];
  auto missing = c_->Post(base_ + "/tickets/" + id + "/answer", json::object());
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.ErrorCode(), "missing-field");
  EXPECT_EQ(
      c_->Post(base_ + "/tickets/" + id + "/answer", {{"action", "retry"}, {"x", 1}}).ErrorCode(),
      "unknown-field");
  HttpClient reader(server_->url(), CreateToken(*op_, "acme", "reader", {"dlq:read"}));
  EXPECT_EQ(reader.Get(base_ + "/tickets/" + id).status, 200);
  EXPECT_EQ(reader.Post(base_ + "/tickets/" + id + "/answer", {{"action", "discard"}}).status, 403);
  EXPECT_EQ(reader.Get(base_ + "/notifications").status, 403);
  // Nothing changed: the ticket is open and its dead letters are there.
  EXPECT_EQ(c_->Get(base_ + "/tickets/" + id).Json()["state"], "open");
  auto discarded = c_->Post(base_ + "/tickets/" + id + "/answer", {{"action", "discard"}});
  ASSERT_EQ(discarded.status, 200) << discarded.body;
  EXPECT_EQ(discarded.Json()["answer"]["deleted"], 2);
  EXPECT_EQ(c_->Get(base_ + "/dead-letters").Json()["result"].size(), 0u);
}

}  // namespace
}  // namespace redrive::testing
