// Privacy against the real `redrive serve` binary: messages with marked personal data (an
// e-mail address, a name, a card number) fail into dead letters by a consumer's nacks and by a
// push endpoint on 127.0.0.1 that answers 500; no marked value may reach a token without
// dlq:read-unredacted (queries, get, failure groups, stats, topic events, an export's file),
// the server's log, or, for storeRedacted, the SQLite files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "push/test_endpoint.h"
#include "store/postgres/pg_test_database.h"
#include "tests/harness.h"

namespace redrive::testing {
namespace {

// Shown only to dlq:read-unredacted (queue "signups": rules, not storeRedacted).
constexpr char kEmail[] = "alice.marker@example.org";
constexpr char kName[] = "Zelda Markerfield";
constexpr char kCard[] = "4000056655665556";
// Never stored in a dead letter (queue "vault" and subscription "events:hook": storeRedacted).
constexpr char kVaultEmail[] = "bob.vaultmark@example.net";
constexpr char kVaultName[] = "Yorick Vaultmarker";
constexpr char kVaultCard[] = "5105105105105100";

const std::vector<std::string>& Marked() {
  static const std::vector<std::string> k = {kEmail,      kName,      kCard,
                                             kVaultEmail, kVaultName, kVaultCard};
  return k;
}
const std::vector<std::string>& VaultMarked() {
  static const std::vector<std::string> k = {kVaultEmail, kVaultName, kVaultCard};
  return k;
}

json Message(const std::string& email, const std::string& name, const std::string& card) {
  json body = {{"customer", {{"email", email}, {"name", name}}},
               {"card", {{"number", card}}},
               {"order", 42}};
  return {{"body", body.dump()}, {"attributes", {{"email", email}, {"kind", "signup"}}}};
}

json Rules(const std::string& mode, bool store_redacted) {
  return {{"pointers", {"/customer/email", "/customer/name", "/card/number"}},
          {"attributes", {"email"}},
          {"mode", mode},
          {"storeRedacted", store_redacted}};
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Encode(const std::string& s) {
  std::string out;
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

class PrivacyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>();
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    ASSERT_TRUE(endpoint_.Start(&error)) << error;
    op_ = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
    CreateTenant(*op_, "acme");
    // The default scopes: everything but dlq:read-unredacted.
    viewer_ = std::make_unique<HttpClient>(server_->url(), CreateToken(*op_, "acme", "viewer"));
    privileged_ = std::make_unique<HttpClient>(
        server_->url(),
        CreateToken(*op_, "acme", "privileged",
                    {"dlq:read", "dlq:write", "dlq:export", "dlq:read-unredacted"}));
  }
  void TearDown() override { endpoint_.Stop(); }

  // Every marked value of `values` that `text` contains, for a failure message.
  static std::string Leaks(const std::string& text, const std::vector<std::string>& values) {
    std::string found;
    for (const auto& v : values) {
      if (text.find(v) != std::string::npos) found += "'" + v + "' ";
    }
    return found;
  }
  void ExpectNoMarked(const HttpResult& r, const std::string& what) {
    EXPECT_EQ(r.status, 200) << what << ": " << r.body;
    EXPECT_EQ(Leaks(r.body, Marked()), "") << what << " leaks: " << r.body;
  }
  std::string Q(const std::string& tail) { return "/v1/tenants/acme" + tail; }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> op_, viewer_, privileged_;
  push::testing::TestEndpoint endpoint_;
};

TEST_F(PrivacyTest, NoMarkedValueReachesATokenWithoutTheScopeTheLogOrTheStore) {
  // Queues: display-only rules (hash) and storeRedacted (mask); a push subscription, stored
  // redacted, whose endpoint fails and echoes the e-mail address in its answer.
  CreateQueue(*op_, "acme", "signups",
              {{"redaction", Rules("hash", false)},
               {"logRetries", true},
               {"retryPolicy", {{"maxDeliveries", 1}}}});
  CreateQueue(*op_, "acme", "vault",
              {{"redaction", Rules("mask", true)}, {"retryPolicy", {{"maxDeliveries", 2}}}});
  ASSERT_EQ(
      viewer_->Post(Q("/topics"), {{"name", "events"}, {"attributes", {{"eventRetention", "0s"}}}})
          .status,
      201);
  endpoint_.Answer(500, "", std::string("no mailbox for ") + kVaultEmail);
  auto sub = viewer_->Post(Q("/topics/events/subscriptions"),
                           {{"name", "hook"},
                            {"attributes",
                             {{"push", {{"url", endpoint_.url()}}},
                              {"redaction", Rules("hash", true)},
                              {"retryPolicy", {{"maxDeliveries", 1}}}}}});
  ASSERT_EQ(sub.status, 201) << sub.body;
  // A second topic keeps its events, with a display-only subscription.
  ASSERT_EQ(viewer_->Post(Q("/topics"), {{"name", "signals"}}).status, 201);
  ASSERT_EQ(viewer_
                ->Post(Q("/topics/signals/subscriptions"),
                       {{"name", "pull"}, {"attributes", {{"redaction", Rules("mask", false)}}}})
                .status,
            201);

  // Bad rules: 400 with a stable code naming the field, and nothing changes.
  auto bad = viewer_->Post(
      Q("/queues"), {{"name", "bad"}, {"attributes", {{"redaction", {{"pointers", {"email"}}}}}}});
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(bad.ErrorCode(), "invalid-argument");
  EXPECT_NE(bad.body.find("redaction.pointers[0]"), std::string::npos) << bad.body;
  EXPECT_EQ(viewer_->Get(Q("/queues/bad")).status, 404);
  auto before = viewer_->Get(Q("/queues/signups")).Json()["attributes"];
  auto patch = viewer_->Patch(Q("/queues/signups"),
                              {{"attributes", {{"redaction", {{"mode", "scramble"}}}}}});
  EXPECT_EQ(patch.status, 400) << patch.body;
  EXPECT_NE(patch.body.find("redaction.mode"), std::string::npos) << patch.body;
  auto unknown = viewer_->Patch(Q("/queues/signups"),
                                {{"attributes", {{"redaction", {{"storeredacted", true}}}}}});
  EXPECT_EQ(unknown.ErrorCode(), "unknown-field") << unknown.body;
  auto lone = viewer_->Patch(
      Q("/queues/vault"),
      {{"attributes",
        {{"redaction", {{"pointers", json::array()}, {"attributes", json::array()}}}}}});
  EXPECT_EQ(lone.ErrorCode(), "invalid-argument") << lone.body;  // storeRedacted with no rule
  EXPECT_EQ(viewer_->Get(Q("/queues/signups")).Json()["attributes"], before);
  EXPECT_EQ(before["redaction"], Rules("hash", false));

  // Fail them into dead letters: two signups with one e-mail address (nacked quoting it), one
  // vault message (nacked twice), one push delivery.
  auto pub =
      viewer_->Post(Q("/queues/signups/messages"),
                    {{"messages", {Message(kEmail, kName, kCard), Message(kEmail, kName, kCard)}}});
  ASSERT_EQ(pub.status, 201) << pub.body;
  ASSERT_EQ(viewer_
                ->Post(Q("/queues/vault/messages"),
                       {{"messages", {Message(kVaultEmail, kVaultName, kVaultCard)}}})
                .status,
            201);
  ASSERT_EQ(viewer_
                ->Post(Q("/topics/events/messages"),
                       {{"messages", {Message(kVaultEmail, kVaultName, kVaultCard)}}})
                .status,
            201);
  ASSERT_EQ(
      viewer_->Post(Q("/topics/signals/messages"), {{"messages", {Message(kEmail, kName, kCard)}}})
          .status,
      201);
  auto nack_all = [&](const std::string& queue, const std::string& email) {
    auto got = viewer_->Post(Q("/queues/" + queue + "/receive"), {{"maxMessages", 10}});
    ASSERT_EQ(got.status, 200) << got.body;
    json nacks = json::array();
    const json messages = got.Json()["messages"];
    ASSERT_FALSE(messages.empty()) << got.body;
    for (const auto& m : messages) {
      // A live message keeps its real values: the consumer needs them.
      EXPECT_NE(m["body"].get<std::string>().find(email), std::string::npos) << m.dump();
      nacks.push_back({{"receipt", m["receipt"]}, {"error", "mailbox " + email + " unknown"}});
    }
    auto nacked = viewer_->Post(Q("/queues/" + queue + "/nack"), {{"nacks", nacks}});
    ASSERT_EQ(nacked.status, 200) << nacked.body;
  };
  nack_all("signups", kEmail);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(
        Eventually([&] { return viewer_->Get(Q("/queues/vault")).Json()["depth"]["ready"] == 1; },
                   std::chrono::seconds(15)));
    nack_all("vault", kVaultEmail);
  }
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = viewer_->Get(Q("/dead-letters?_totalPagedResultsPolicy=EXACT"));
        return r.Json()["totalPagedResults"] == 4;
      },
      std::chrono::seconds(20)))
      << viewer_->Get(Q("/dead-letters")).body;

  // Everything a token without the scope reads.
  auto all = viewer_->Get(Q("/dead-letters"));
  ExpectNoMarked(all, "query");
  const json items = all.Json()["result"];
  ASSERT_EQ(items.size(), 4u) << all.body;
  for (const auto& d : items) {
    ExpectNoMarked(viewer_->Get(Q("/dead-letters/" + d["id"].get<std::string>())), "get");
  }
  ExpectNoMarked(viewer_->Get(Q("/failure-groups")), "failure groups");
  ExpectNoMarked(viewer_->Get(Q("/dead-letter-stats")), "stats");
  ExpectNoMarked(viewer_->Get(Q("/queues/signups/dead-letters")), "query by origin");
  auto events = viewer_->Get(Q("/topics/signals/events"));
  ExpectNoMarked(events, "events");
  ASSERT_EQ(events.Json()["events"].size(), 1u) << events.body;
  std::string event_id = events.Json()["events"][0]["id"];
  auto event = viewer_->Get(Q("/topics/signals/events/" + event_id));
  ExpectNoMarked(event, "event");
  EXPECT_NE(event.body.find("***"), std::string::npos) << event.body;
  ExpectNoMarked(op_->Get(Q("/dead-letters")), "operator's query");  // operators too

  // Hash mode: equal values hash alike, and a filter on the hash matches them; a filter on the
  // real value (an oracle) matches nothing.
  auto signups = viewer_->Get(Q("/queues/signups/dead-letters")).Json()["result"];
  ASSERT_EQ(signups.size(), 2u);
  std::string hash = signups[0]["attributes"]["email"];
  EXPECT_EQ(hash.rfind("hmac:", 0), 0u) << hash;
  EXPECT_EQ(signups[1]["attributes"]["email"], hash);
  EXPECT_EQ(json::parse(signups[0]["body"].get<std::string>())["customer"]["email"], hash);
  auto by_hash = viewer_->Get(
      Q("/dead-letters?_queryFilter=" + Encode("/body/customer/email eq \"" + hash + "\"")));
  EXPECT_EQ(by_hash.Json()["result"].size(), 2u) << by_hash.body;
  auto oracle =
      viewer_->Get(Q("/dead-letters?_queryFilter=" + Encode("/body/customer/email sw \"alice\"")));
  EXPECT_EQ(oracle.status, 200);
  EXPECT_EQ(oracle.Json()["result"].size(), 0u) << oracle.body;
  auto groups = viewer_->Get(Q("/failure-groups")).Json()["groups"];
  bool grouped = false;
  for (const auto& g : groups) grouped = grouped || (g["origin"] == "signups" && g["count"] == 2);
  EXPECT_TRUE(grouped) << groups.dump();

  // dlq:read-unredacted sees the real values (of what was stored).
  auto real = privileged_->Get(Q("/queues/signups/dead-letters"));
  EXPECT_NE(real.body.find(kEmail), std::string::npos) << real.body;
  EXPECT_NE(real.body.find(kCard), std::string::npos) << real.body;
  auto real_by_value =
      privileged_->Get(Q("/dead-letters?_queryFilter=" +
                         Encode(std::string("/attributes/email eq \"") + kEmail + "\"")));
  EXPECT_EQ(real_by_value.Json()["result"].size(), 2u) << real_by_value.body;
  auto real_event = privileged_->Get(Q("/topics/signals/events/" + event_id));
  EXPECT_NE(real_event.body.find(kEmail), std::string::npos) << real_event.body;
  auto vault = privileged_->Get(Q("/queues/vault/dead-letters")).Json()["result"];
  ASSERT_EQ(vault.size(), 1u);
  EXPECT_EQ(vault[0]["redacted"], true);
  EXPECT_EQ(Leaks(vault[0].dump(), VaultMarked()), "") << vault[0].dump();
  auto hook = privileged_->Get(Q("/queues/events:hook/dead-letters")).Json()["result"];
  ASSERT_EQ(hook.size(), 1u);
  EXPECT_EQ(hook[0]["redacted"], true);
  EXPECT_EQ(Leaks(hook[0].dump(), VaultMarked()), "") << hook[0].dump();
  EXPECT_EQ(hook[0]["attempts"][0]["status"], 500) << hook[0].dump();

  // An export by a token without the scope is written redacted.
  auto exp = viewer_->Post(Q("/exports"), json::object());
  ASSERT_EQ(exp.status, 202) << exp.body;
  EXPECT_EQ(exp.Json()["redacted"], true);
  std::string exp_id = exp.Json()["id"];
  ASSERT_TRUE(Eventually(
      [&] { return viewer_->Get(Q("/exports/" + exp_id)).Json()["state"] == "completed"; },
      std::chrono::seconds(20)));
  auto file = viewer_->Get(Q("/exports/" + exp_id + "/file"));
  ExpectNoMarked(file, "export file");
  EXPECT_EQ(std::count(file.body.begin(), file.body.end(), '\n'), 4) << file.body;
  // One by a token with it is not, and only such a token may download it.
  auto plain = privileged_->Post(Q("/exports"), {{"includeExported", true}});
  ASSERT_EQ(plain.status, 202) << plain.body;
  EXPECT_EQ(plain.Json()["redacted"], false);
  std::string plain_id = plain.Json()["id"];
  ASSERT_TRUE(Eventually(
      [&] { return viewer_->Get(Q("/exports/" + plain_id)).Json()["state"] == "completed"; },
      std::chrono::seconds(20)));
  EXPECT_EQ(viewer_->Get(Q("/exports/" + plain_id + "/file")).ErrorCode(), "forbidden");
  auto plain_file = privileged_->Get(Q("/exports/" + plain_id + "/file"));
  EXPECT_NE(plain_file.body.find(kEmail), std::string::npos);
  EXPECT_EQ(Leaks(plain_file.body, VaultMarked()), "");

  // Notifications: a digest's ticket (its samples) and its notice, as the webhook channel gets
  // it, hold markers only. (A receiver of their own, which takes them: the push endpoint's
  // answer echoes a value, which a failed notice would carry into the log.)
  push::testing::TestEndpoint notices;
  ASSERT_TRUE(notices.Start());
  auto settings = viewer_->Send(
      "PUT", Q("/notifications"),
      json{{"channels",
            {{{"type", "log"}},
             {{"type", "webhook"}, {"name", "ops"}, {"url", notices.url("/notify")}}}}}
          .dump());
  ASSERT_EQ(settings.status, 200) << settings.body;
  auto digest = viewer_->Post(Q("/digest"), json::object());
  ASSERT_EQ(digest.status, 201) << digest.body;
  EXPECT_EQ(digest.Json()["ticket"]["summary"]["samples"].size(), 3u);
  EXPECT_EQ(Leaks(digest.body, Marked()), "") << "ticket leaks: " << digest.body;
  std::string notice;
  ASSERT_TRUE(Eventually([&] {
    for (const auto& r : notices.received()) {
      if (r.body.find("redrive.ticket") != std::string::npos) {
        notice = r.body;
        return true;
      }
    }
    return false;
  }));
  EXPECT_EQ(Leaks(notice, Marked()), "") << "notice leaks: " << notice;

  // A dead letter stored redacted is not restored unless the request says so.
  std::string vault_id = vault[0]["id"];
  auto refused = viewer_->Post(Q("/dead-letters/" + vault_id + "/restore"), json::object());
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_EQ(refused.ErrorCode(), "dead-letter-redacted");
  auto bulk = viewer_->Post(Q("/dead-letters/restore"), {{"filter", "/origin eq \"vault\""}});
  EXPECT_EQ(bulk.ErrorCode(), "dead-letter-redacted") << bulk.body;
  auto job = viewer_->Post(Q("/redrive-jobs"), {{"filter", "/origin eq \"vault\""}});
  EXPECT_EQ(job.ErrorCode(), "dead-letter-redacted") << job.body;
  EXPECT_EQ(viewer_->Get(Q("/dead-letters/" + vault_id)).status, 200);  // still there
  auto allowed =
      viewer_->Post(Q("/dead-letters/" + vault_id + "/restore"), {{"allowRedacted", true}});
  ASSERT_EQ(allowed.status, 200) << allowed.body;
  EXPECT_EQ(allowed.Json()["done"], 1);
  auto back = viewer_->Post(Q("/queues/vault/receive"), {{"maxMessages", 1}});
  ASSERT_EQ(back.Json()["messages"].size(), 1u) << back.body;
  EXPECT_EQ(back.Json()["messages"][0]["attributes"]["email"], "***");

  // The server's log: lines about these messages' retries and dead-lettering, no values.
  std::string log = server_->log();
  EXPECT_NE(log.find("delivery retries"), std::string::npos) << "logRetries wrote nothing";
  EXPECT_EQ(Leaks(log, Marked()), "") << log;

  // With storeRedacted, no value rests in the database: stop the server (its last connection
  // checkpoints the write-ahead log into the database and removes it), then read the files.
  ASSERT_EQ(server_->Stop(), 0);
  if (OnPostgres()) {
    // On PostgreSQL: every live row of the database, as pg_dump writes it. (Deleted rows, the
    // messages as they were before they were dead-lettered, stay in the table files until
    // VACUUM reclaims them: docs/privacy.md.)
    std::string dump_file = server_->data_dir() + "/dump.sql";
    std::string command = "/usr/lib/postgresql/15/bin/pg_dump --data-only '" +
                          redrive::store::postgres::TestDatabase(server_->data_dir()) + "' > " +
                          dump_file;
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    std::string dump = ReadAll(dump_file);
    EXPECT_NE(dump.find("COPY public.dead_letters"), std::string::npos);
    EXPECT_EQ(Leaks(dump, VaultMarked()), "");
    return;
  }
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(server_->data_dir())) {
    std::string name = e.path().filename().string();
    if (name.rfind("redrive.db", 0) != 0) continue;  // redrive.db, -wal, -shm
    ++files;
    EXPECT_EQ(Leaks(ReadAll(e.path().string()), VaultMarked()), "") << name;
  }
  EXPECT_GE(files, 1);
}

}  // namespace
}  // namespace redrive::testing
