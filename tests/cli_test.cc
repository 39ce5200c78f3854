// Drives the real `redrive` client binary against a real server: what a user at a shell sees
// (stdout, stderr, exit code) for every client subcommand. The harness is cli_harness.h.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/cli_harness.h"

namespace redrive::testing {
namespace {

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST_F(CliTest, TenantCreateListsItAndRejectsADuplicate) {
  CliResult created = Cli({"tenant", "create", "globex"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  EXPECT_EQ(created.out, "created tenant globex\n");

  CliResult list = Cli({"tenant", "ls"});
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  EXPECT_EQ(list.out.rfind("NAME", 0), 0u) << list.out;
  EXPECT_NE(list.out.find("\nacme "), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("\nglobex "), std::string::npos) << list.out;

  CliResult again = Cli({"tenant", "create", "globex"});
  EXPECT_EQ(again.exit_code, 1) << Describe(again);
  EXPECT_EQ(again.err.rfind("error: already-exists: ", 0), 0u) << again.err;
}

TEST_F(CliTest, TokenCreatePrintsASecretThatWorksUntilRevoked) {
  ASSERT_EQ(Cli({"queue", "create", "jobs"}).exit_code, 0);
  CliResult created =
      Cli({"token", "create", "--label", "producer", "--scope", "publish", "--scope", "dlq:read"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  std::string secret = Field(created.out, "token");
  std::string id = Field(created.out, "id");
  ASSERT_EQ(secret.rfind("rdt_", 0), 0u) << created.out;
  ASSERT_EQ(id.rfind("tok_", 0), 0u) << created.out;
  EXPECT_EQ(Field(created.out, "scopes"), "dlq:read, publish");
  EXPECT_NE(created.out.find("only time"), std::string::npos) << created.out;

  std::vector<std::string> as_producer = {"--url", server_->url(), "--token",
                                          secret,  "--tenant",     "acme"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), as_producer.begin(), as_producer.end());
    return Raw(args);
  };
  CliResult sent = with({"send", "jobs", "hello"});
  EXPECT_EQ(sent.exit_code, 0) << Describe(sent);
  CliResult refused = with({"receive", "jobs"});
  EXPECT_EQ(refused.exit_code, 1) << Describe(refused);
  EXPECT_EQ(refused.err.rfind("error: forbidden: ", 0), 0u) << refused.err;

  CliResult list = Cli({"token", "ls"});
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  EXPECT_NE(list.out.find(id), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("producer"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find(secret), std::string::npos) << "the secret is shown only once";

  CliResult revoked = Cli({"token", "revoke", id});
  ASSERT_EQ(revoked.exit_code, 0) << Describe(revoked);
  CliResult after = with({"send", "jobs", "hello"});
  EXPECT_EQ(after.exit_code, 1) << Describe(after);
  EXPECT_EQ(after.err.rfind("error: unauthenticated: ", 0), 0u) << after.err;
}

TEST_F(CliTest, QueueFlagsMapOntoAttributesAndOverrideRawAttributes) {
  CliResult created = Cli({"queue",
                           "create",
                           "orders",
                           "--visibility-timeout",
                           "45s",
                           "--max-deliveries",
                           "3",
                           "--backoff-initial",
                           "2s",
                           "--backoff-max",
                           "1m",
                           "--backoff-multiplier",
                           "3",
                           "--on-exhausted",
                           "dead-letter",
                           "--max-length",
                           "100",
                           "--overflow",
                           "dead-letter-oldest",
                           "--message-ttl",
                           "1h",
                           "--retention",
                           "2d",
                           "--delivery-delay",
                           "1s",
                           "--max-message-size",
                           "1024",
                           "--attributes",
                           R"({"dedupWindow":"2m","visibilityTimeout":"10s",)"
                           R"("retryPolicy":{"backoff":{"jitter":0.5}}})"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  EXPECT_EQ(Field(created.out, "name"), "orders");
  EXPECT_EQ(Field(created.out, "visibilityTimeout"), "45s") << "the flag wins over --attributes";

  CliResult shown = Cli({"queue", "show", "orders", "--json"});
  ASSERT_EQ(shown.exit_code, 0) << Describe(shown);
  json a = shown.Json()["attributes"];
  EXPECT_EQ(a["visibilityTimeout"], "45s");
  EXPECT_EQ(a["dedupWindow"], "2m");
  EXPECT_EQ(a["retryPolicy"]["maxDeliveries"], 3);
  EXPECT_EQ(a["retryPolicy"]["backoff"]["initial"], "2s");
  EXPECT_EQ(a["retryPolicy"]["backoff"]["max"], "1m");
  EXPECT_EQ(a["retryPolicy"]["backoff"]["multiplier"], 3.0);
  EXPECT_EQ(a["retryPolicy"]["backoff"]["jitter"], 0.5);
  EXPECT_EQ(a["retryPolicy"]["onExhausted"], "dead-letter");
  EXPECT_EQ(a["maxLength"], 100);
  EXPECT_EQ(a["overflow"], "dead-letter-oldest");
  EXPECT_EQ(a["messageTtl"], "1h");
  EXPECT_EQ(a["retention"], "2d");
  EXPECT_EQ(a["deliveryDelay"], "1s");
  EXPECT_EQ(a["maxMessageSize"], 1024);

  CliResult updated = Cli({"queue", "update", "orders", "--max-deliveries", "-1",
                           "--dead-letter-queue", "orders-dlq", "--on-exhausted", "drop"});
  ASSERT_EQ(updated.exit_code, 0) << Describe(updated);
  EXPECT_EQ(Field(updated.out, "retryPolicy.maxDeliveries"), "-1");
  EXPECT_EQ(Field(updated.out, "retryPolicy.onExhausted"), "drop");
  EXPECT_EQ(Field(updated.out, "deadLetterQueue"), "orders-dlq");
  EXPECT_EQ(Field(updated.out, "visibilityTimeout"), "45s") << "update keeps what it is not told";

  CliResult nothing = Cli({"queue", "update", "orders"});
  EXPECT_EQ(nothing.exit_code, 2) << Describe(nothing);

  CliResult preset = Cli({"queue", "update", "orders", "--retry-schedule", "akamai"});
  ASSERT_EQ(preset.exit_code, 0) << Describe(preset);
  EXPECT_EQ(Field(preset.out, "retryPolicy.schedule"), "akamai");
  EXPECT_EQ(Field(preset.out, "retryPolicy.maxDeliveries"), "6");
  json listed =
      Cli({"queue", "update", "orders", "--retry-schedule", "3s,30s,5m", "--json"}).Json();
  EXPECT_EQ(listed["attributes"]["retryPolicy"]["schedule"], (json{"3s", "30s", "5m"}));
  CliResult unknown = Cli({"queue", "update", "orders", "--retry-schedule", "hourly"});
  EXPECT_NE(unknown.exit_code, 0) << Describe(unknown);
  EXPECT_NE(unknown.err.find("retryPolicy.schedule"), std::string::npos) << Describe(unknown);

  CliResult list = Cli({"queue", "ls"});
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  EXPECT_EQ(list.out.substr(0, list.out.find('\n')),
            "NAME          KIND         READY  DELAYED  LEASED  DEAD-LETTERED");
  EXPECT_NE(list.out.find("\norders        standard     0      0        0       0\n"),
            std::string::npos)
      << list.out;

  CliResult removed = Cli({"queue", "rm", "orders"});
  ASSERT_EQ(removed.exit_code, 0) << Describe(removed);
  EXPECT_EQ(removed.out, "deleted queue orders\n");
  CliResult gone = Cli({"queue", "show", "orders"});
  EXPECT_EQ(gone.exit_code, 1) << Describe(gone);
  EXPECT_EQ(gone.err.rfind("error: queue-not-found: ", 0), 0u) << gone.err;
}

TEST_F(CliTest, SendThenReceiveWithAckRoundTripsATextMessage) {
  ASSERT_EQ(Cli({"queue", "create", "jobs"}).exit_code, 0);
  CliResult sent = Cli({"send", "jobs", "héllo wörld", "--attr", "source=billing", "--attr",
                        "kind=a=b", "--key", "order-17"});
  ASSERT_EQ(sent.exit_code, 0) << Describe(sent);
  std::string id = sent.out.substr(0, sent.out.size() - 1);
  EXPECT_EQ(id.size(), 26u) << sent.out;

  CliResult duplicate = Cli({"send", "jobs", "other body", "--key", "order-17"});
  ASSERT_EQ(duplicate.exit_code, 0) << Describe(duplicate);
  EXPECT_EQ(duplicate.out, id + " (duplicate)\n");

  CliResult received = Cli({"receive", "jobs", "--max", "10", "--ack"});
  ASSERT_EQ(received.exit_code, 0) << Describe(received);
  EXPECT_EQ(Field(received.out, "id"), id);
  EXPECT_EQ(Field(received.out, "deliveries"), "1");
  EXPECT_FALSE(Field(received.out, "receipt").empty()) << received.out;
  EXPECT_EQ(Field(received.out, "idempotency key"), "order-17");
  EXPECT_EQ(Field(received.out, "attributes"), R"({"kind":"a=b","source":"billing"})");
  EXPECT_EQ(Field(received.out, "body"), "héllo wörld");
  EXPECT_NE(received.err.find("acked 1 of 1"), std::string::npos) << received.err;

  CliResult empty = Cli({"receive", "jobs"});
  EXPECT_EQ(empty.exit_code, 0) << Describe(empty);
  EXPECT_EQ(empty.out, "");
  EXPECT_EQ(empty.err, "no messages\n");
  json depth = Cli({"queue", "show", "jobs", "--json"}).Json()["depth"];
  EXPECT_EQ(depth["ready"], 0);
  EXPECT_EQ(depth["leased"], 0) << "--ack acked what it printed";
}

TEST_F(CliTest, NonUtf8FileAndStdinRoundTripByteIdentical) {
  ASSERT_EQ(Cli({"queue", "create", "blobs"}).exit_code, 0);
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  bytes += "\xC3\x28 trailing \xFF\xFE";
  std::string file = home_ + "/blob.bin";
  WriteFile(file, bytes);

  CliResult sent = Cli({"send", "blobs", "--file", file});
  ASSERT_EQ(sent.exit_code, 0) << Describe(sent);
  CliResult as_json = Cli({"receive", "blobs", "--json", "--ack"});
  ASSERT_EQ(as_json.exit_code, 0) << Describe(as_json);
  json m = as_json.Json()["messages"][0];
  EXPECT_EQ(m["base64"], true) << "non-UTF-8 travels as base64";
  EXPECT_EQ(Base64Decode(m["body"].get<std::string>()), bytes);

  ASSERT_EQ(Cli({"send", "blobs", "--file", file}).exit_code, 0);
  CliResult body = Cli({"receive", "blobs", "--body-only", "--ack"});
  ASSERT_EQ(body.exit_code, 0) << Describe(body);
  EXPECT_EQ(body.out, bytes);

  CliResult piped = Cli({"send", "blobs"}, bytes);
  ASSERT_EQ(piped.exit_code, 0) << Describe(piped);
  CliResult from_stdin = Cli({"receive", "blobs", "--body-only", "--ack"});
  ASSERT_EQ(from_stdin.exit_code, 0) << Describe(from_stdin);
  EXPECT_EQ(from_stdin.out, bytes);

  CliResult text = Cli({"send", "blobs", "--base64"}, "plain text\n");
  ASSERT_EQ(text.exit_code, 0) << Describe(text);
  CliResult forced = Cli({"receive", "blobs", "--body-only", "--ack"});
  EXPECT_EQ(forced.out, "plain text\n") << "--base64 changes the transport, not the bytes";
}

TEST_F(CliTest, JsonOutputIsTheServersAnswer) {
  ASSERT_EQ(Cli({"queue", "create", "jobs"}).exit_code, 0);
  CliResult sent = Cli({"send", "jobs", "payload", "--attr", "a=1", "--json"});
  ASSERT_EQ(sent.exit_code, 0) << Describe(sent);
  json s = sent.Json();
  ASSERT_TRUE(s.is_object()) << sent.out;
  EXPECT_EQ(s["messages"][0]["duplicate"], false);
  std::string id = s["messages"][0]["id"];

  json queues = Cli({"queue", "ls", "--json"}).Json();
  ASSERT_TRUE(queues["queues"].is_array()) << queues;
  bool found = false;
  for (const auto& q : queues["queues"]) {
    if (q["name"] != "jobs") continue;
    found = true;
    EXPECT_EQ(q["kind"], "standard");
    EXPECT_EQ(q["depth"]["ready"], 1);
  }
  EXPECT_TRUE(found) << queues;

  json m = ReceiveOne("jobs");
  EXPECT_EQ(m["id"], id);
  EXPECT_EQ(m["body"], "payload");
  EXPECT_EQ(m["base64"], false);
  EXPECT_EQ(m["attributes"]["a"], "1");
  EXPECT_EQ(m["deliveryCount"], 1);
  ASSERT_TRUE(m["receipt"].is_string());

  CliResult acked = Cli({"ack", "jobs", m["receipt"], "--json"});
  ASSERT_EQ(acked.exit_code, 0) << Describe(acked);
  EXPECT_EQ(acked.Json()["succeeded"], 1);
  EXPECT_EQ(acked.Json()["results"][0]["status"], "ok");
}

TEST_F(CliTest, NackDeadLetterShowsInDlqLsAndShowWithTheJournal) {
  ASSERT_EQ(Cli({"queue", "create", "invoices"}).exit_code, 0);
  CliResult sent = Cli({"send", "invoices", R"({"total": null})", "--attr", "trace=t-1"});
  ASSERT_EQ(sent.exit_code, 0) << Describe(sent);
  std::string id = sent.out.substr(0, sent.out.size() - 1);
  json m = ReceiveOne("invoices");

  CliResult nacked = Cli({"nack", "invoices", m["receipt"], "--dead-letter", "--reason",
                          "bad-schema", "--error", "field 'total' must be a number"});
  ASSERT_EQ(nacked.exit_code, 0) << Describe(nacked);
  EXPECT_EQ(nacked.out, "rejected 1\n");

  CliResult list = Cli({"dlq", "ls", "--origin", "invoices"});
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  EXPECT_EQ(list.out.substr(0, list.out.find('\n')).substr(0, 10), "ID        ");
  std::string row = list.out.substr(list.out.find('\n') + 1);
  EXPECT_EQ(row.rfind(id + "  invoices  rejected  1", 0), 0u) << list.out;
  EXPECT_NE(row.find("field 'total' must be a number"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("  GROUP  "), std::string::npos) << list.out;
  EXPECT_EQ(Field(list.out, "total"), "1") << list.out;
  EXPECT_EQ(list.out.find("next cursor"), std::string::npos) << list.out;

  CliResult show = Cli({"dlq", "show", id});
  ASSERT_EQ(show.exit_code, 0) << Describe(show);
  EXPECT_EQ(Field(show.out, "id"), id);
  EXPECT_EQ(Field(show.out, "origin"), "invoices");
  EXPECT_EQ(Field(show.out, "reason"), "rejected");
  EXPECT_EQ(Field(show.out, "cause"), "field 'total' must be a number");
  EXPECT_EQ(Field(show.out, "group").size(), 16u) << show.out;
  EXPECT_NE(row.find("  " + Field(show.out, "group") + "  "), std::string::npos) << list.out;
  EXPECT_EQ(Field(show.out, "signature"), "invoices | rejected | field '<str>' must be a number");
  EXPECT_EQ(Field(show.out, "original queue"), "invoices");
  EXPECT_EQ(Field(show.out, "redrives"), "0");
  EXPECT_EQ(Field(show.out, "last redriven by"), "-");
  EXPECT_EQ(Field(show.out, "redrive error"), "-");
  EXPECT_EQ(Field(show.out, "attributes"), R"({"trace":"t-1"})");
  EXPECT_EQ(Field(show.out, "body"), R"({"total": null})");
  EXPECT_NE(show.out.find("attempts (1):\n"), std::string::npos) << show.out;
  std::string journal = show.out.substr(show.out.find("attempts (1):\n"));
  std::istringstream lines(journal);
  std::string title, header, attempt, rest;
  std::getline(lines, title);
  std::getline(lines, header);
  std::getline(lines, attempt);
  EXPECT_EQ(header.rfind("AT", 0), 0u) << journal;
  EXPECT_NE(attempt.find("  rejected  "), std::string::npos) << journal;
  EXPECT_NE(attempt.find("  bad-schema  field 'total' must be a number"), std::string::npos)
      << journal;
  EXPECT_FALSE(std::getline(lines, rest)) << "one attempt, one line:\n" << journal;

  CliResult missing = Cli({"dlq", "show", "01NOSUCHDEADLETTER00000000"});
  EXPECT_EQ(missing.exit_code, 1) << Describe(missing);
  EXPECT_EQ(missing.err.rfind("error: dead-letter-not-found: ", 0), 0u) << missing.err;
}

TEST_F(CliTest, DlqLsFiltersProjectsAndPagesWithTheCookie) {
  MakeQueue("orders");
  std::vector<json> regions = {{{"region", "eu-west"}},
                               {{"region", "us-east"}},
                               {{"region", "eu-north"}},
                               {{"region", "eu-west"}},
                               {{"region", "us-west"}}};
  std::vector<std::string> ids = DeadLetter("orders", {"a", "b", "c", "d", "e"}, regions);
  ASSERT_EQ(ids.size(), 5u);
  std::set<std::string> eu = {ids[0], ids[2], ids[3]};

  std::vector<std::string> args = {"dlq",      "ls",
                                   "--filter", R"(/attributes/region sw "eu")",
                                   "--fields", "id,attributes/region",
                                   "--limit",  "2",
                                   "--total"};
  CliResult first = Cli(args);
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(first.out.substr(0, first.out.find('\n')),
            "ID                          ATTRIBUTES/REGION")
      << first.out;
  std::vector<std::string> rows = Rows(first.out);
  ASSERT_EQ(rows.size(), 2u) << first.out;
  EXPECT_EQ(Field(first.out, "total"), "3") << first.out;
  std::string cursor = Field(first.out, "next cursor");
  ASSERT_FALSE(cursor.empty()) << first.out;

  args.insert(args.end(), {"--cursor", cursor});
  CliResult second = Cli(args);
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  std::vector<std::string> more = Rows(second.out);
  ASSERT_EQ(more.size(), 1u) << second.out;
  EXPECT_EQ(Field(second.out, "next cursor"), "") << "the last page has no cursor";
  rows.push_back(more[0]);
  std::set<std::string> seen;
  for (const auto& row : rows) {
    seen.insert(row.substr(0, 26));
    EXPECT_NE(row.find("  eu-"), std::string::npos) << row;
  }
  EXPECT_EQ(seen, eu);

  // --reason is ANDed with --filter; --sort orders by any field.
  CliResult none =
      Cli({"dlq", "ls", "--reason", "expired", "--filter", R"(/attributes/region sw "eu")"});
  EXPECT_EQ(none.exit_code, 0) << Describe(none);
  EXPECT_EQ(none.out, "");
  EXPECT_EQ(none.err, "no dead letters\n");
  CliResult rejected = Cli({"dlq", "ls", "--reason", "rejected", "--sort", "-attributes/region",
                            "--fields", "attributes/region"});
  ASSERT_EQ(rejected.exit_code, 0) << Describe(rejected);
  rows = Rows(rejected.out);
  ASSERT_EQ(rows.size(), 5u) << rejected.out;
  EXPECT_EQ(rows[0], ids[4] + "  us-west");
  EXPECT_EQ(rows[4].substr(28), "eu-north");

  // Times: exact, or a duration ago.
  CliResult recent = Cli({"dlq", "ls", "--since", "1h", "--origin", "orders"});
  EXPECT_EQ(Rows(recent.out).size(), 5u) << Describe(recent);
  CliResult old = Cli({"dlq", "ls", "--until", "2000-01-01T00:00:00Z"});
  EXPECT_EQ(old.err, "no dead letters\n") << Describe(old);

  CliResult json_out = Cli({"dlq", "ls", "--queue", "dead-letters", "--limit", "4", "--json"});
  ASSERT_EQ(json_out.exit_code, 0) << Describe(json_out);
  EXPECT_EQ(json_out.Json()["result"].size(), 4u);
  EXPECT_TRUE(json_out.Json()["pagedResultsCookie"].is_string()) << json_out.out;

  CliResult bad = Cli({"dlq", "ls", "--filter", "/reason is rejected"});
  EXPECT_EQ(bad.exit_code, 1) << Describe(bad);
  EXPECT_EQ(bad.err.rfind("error: invalid-query: ", 0), 0u) << bad.err;
}

TEST_F(CliTest, DlqGroupsGatherOneCauseAndStatsCountThem) {
  MakeQueue("hooks");
  std::vector<std::string> ids =
      DeadLetter("hooks", {"customer 'c-1' not found", "HTTP 503 from billing",
                           "customer 'c-2' not found", "customer 'c-3' not found"});
  ASSERT_EQ(ids.size(), 4u);

  CliResult groups = Cli({"dlq", "groups"});
  ASSERT_EQ(groups.exit_code, 0) << Describe(groups);
  EXPECT_EQ(groups.out.substr(0, groups.out.find('\n')),
            "GROUP             COUNT  ORIGIN  REASON    DIAGNOSIS  LAST SEEN                 "
            "SIGNATURE");
  std::vector<std::string> rows = Rows(groups.out);
  ASSERT_EQ(rows.size(), 2u) << groups.out;
  std::string group = rows[0].substr(0, 16);
  EXPECT_EQ(rows[0].substr(16, 25), "  3      hooks   rejected") << groups.out;
  // hooks never delivered anything: its counts diagnose nothing.
  EXPECT_EQ(rows[0].substr(41, 13), "  -          ") << groups.out;
  EXPECT_NE(rows[0].find("Z  customer '<str>' not found"), std::string::npos) << groups.out;
  EXPECT_EQ(rows[1].substr(16, 25), "  1      hooks   rejected") << groups.out;
  EXPECT_NE(rows[1].find("Z  HTTP 503 from billing"), std::string::npos) << groups.out;

  CliResult members = Cli({"dlq", "ls", "--group", group});
  ASSERT_EQ(members.exit_code, 0) << Describe(members);
  rows = Rows(members.out);
  ASSERT_EQ(rows.size(), 3u) << members.out;
  for (const auto& row : rows) {
    EXPECT_NE(row.find("  " + group + "  customer 'c-"), std::string::npos) << row;
  }
  EXPECT_EQ(Field(members.out, "total"), "3") << members.out;

  CliResult stats = Cli({"dlq", "stats"});
  ASSERT_EQ(stats.exit_code, 0) << Describe(stats);
  EXPECT_EQ(
      stats.out.rfind("total: 4\n\nORIGIN  COUNT\nhooks   4\n\nREASON    COUNT\nrejected  4\n", 0),
      0u)
      << stats.out;
  EXPECT_NE(stats.out.find("\n" + group + "  3\n"), std::string::npos) << stats.out;
  EXPECT_NE(stats.out.find("HOUR  "), std::string::npos) << stats.out;
  EXPECT_NE(stats.out.find(":00:00.000Z  4      " + std::string(40, '#') + "\n"), std::string::npos)
      << stats.out;
  json s = Cli({"dlq", "stats", "--queue", "dead-letters", "--json"}).Json();
  EXPECT_EQ(s["total"], 4) << s;
  EXPECT_EQ(s["byGroup"][group], 3) << s;
}

TEST_F(CliTest, DlqRmByIdThenAgainExitsOneWithNotFound) {
  MakeQueue("orders");
  std::vector<std::string> ids = DeadLetter("orders", {"x", "y"});
  ASSERT_EQ(ids.size(), 2u);

  CliResult removed = Cli({"dlq", "rm", ids[0]});
  ASSERT_EQ(removed.exit_code, 0) << Describe(removed);
  EXPECT_EQ(removed.out, "matched 1, deleted 1, skipped 0\n");
  EXPECT_EQ(removed.err, "");

  CliResult again = Cli({"dlq", "rm", ids[0]});
  EXPECT_EQ(again.exit_code, 1) << Describe(again);
  EXPECT_EQ(again.err.rfind("error: dead-letter-not-found: ", 0), 0u) << again.err;
  EXPECT_EQ(again.out, "");

  // Several ids: the missing one is skipped, the call still succeeds.
  CliResult both = Cli({"dlq", "rm", ids[0], ids[1]});
  EXPECT_EQ(both.exit_code, 0) << Describe(both);
  EXPECT_EQ(both.out, "matched 2, deleted 1, skipped 1\n");
  EXPECT_EQ(both.err, "skipped " + ids[0] + ": not-found\n");
  CliResult gone = Cli({"dlq", "show", ids[1]});
  EXPECT_EQ(gone.exit_code, 1) << Describe(gone);

  for (std::vector<std::string> args : {std::vector<std::string>{"dlq", "rm"},
                                        {"dlq", "rm", ids[1], "--filter", "true"},
                                        {"dlq", "rm", "--queue", "dead-letters"},
                                        {"dlq", "restore", "--since", "1h"}}) {
    CliResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  }
}

TEST_F(CliTest, DlqRestoreByFilterGivesTheMessageBackWithItsId) {
  MakeQueue("orders");
  std::vector<std::string> ids =
      DeadLetter("orders", {"boom", "boom"}, {{{"region", "eu"}}, {{"region", "us"}}});
  ASSERT_EQ(ids.size(), 2u);

  CliResult restored = Cli({"dlq", "restore", "--filter", R"(/attributes/region eq "eu")"});
  ASSERT_EQ(restored.exit_code, 0) << Describe(restored);
  EXPECT_EQ(restored.out, "matched 1, restored 1, skipped 0\n");

  json m = ReceiveOne("orders");
  EXPECT_EQ(m["id"], ids[0]) << "a restored message keeps its id";
  EXPECT_EQ(m["body"], "m0");
  EXPECT_EQ(m["attributes"]["region"], "eu");
  EXPECT_EQ(Cli({"receive", "orders"}).err, "no messages\n");
  std::vector<std::string> rows = Rows(Cli({"dlq", "ls"}).out);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].substr(0, 26), ids[1]);

  // Dead-lettered again, it carries its lineage.
  ASSERT_EQ(Cli({"nack", "orders", m["receipt"], "--dead-letter"}).exit_code, 0);
  CliResult show = Cli({"dlq", "show", ids[0]});
  ASSERT_EQ(show.exit_code, 0) << Describe(show);
  EXPECT_EQ(Field(show.out, "redrives"), "1");
  EXPECT_EQ(Field(show.out, "last redriven by").rfind("request:tok_", 0), 0u) << show.out;
  EXPECT_EQ(Field(show.out, "original queue"), "orders");
  EXPECT_NE(show.out.find("attempts (2):"), std::string::npos) << show.out;
}

TEST_F(CliTest, DlqRerouteMovesDeadLettersToAnotherQueue) {
  MakeQueue("orders");
  MakeQueue("orders-retry");
  std::vector<std::string> ids = DeadLetter("orders", {"boom", "boom"});
  ASSERT_EQ(ids.size(), 2u);

  CliResult no_to = Cli({"dlq", "reroute", ids[0]});
  EXPECT_EQ(no_to.exit_code, 2) << Describe(no_to);
  CliResult to_dlq = Cli({"dlq", "reroute", ids[0], "--to", "dead-letters"});
  EXPECT_EQ(to_dlq.exit_code, 1) << Describe(to_dlq);
  EXPECT_EQ(to_dlq.err.rfind("error: dead-letter-queue-read-only: ", 0), 0u) << to_dlq.err;

  CliResult rerouted = Cli({"dlq", "reroute", "--origin", "orders", "--to", "orders-retry"});
  ASSERT_EQ(rerouted.exit_code, 0) << Describe(rerouted);
  EXPECT_EQ(rerouted.out, "matched 2, rerouted 2, skipped 0\n");
  CliResult got = Cli({"receive", "orders-retry", "--max", "10", "--json"});
  ASSERT_EQ(got.exit_code, 0) << Describe(got);
  std::set<std::string> moved;
  json answer = got.Json();
  for (const auto& m : answer["messages"]) moved.insert(m["id"].get<std::string>());
  EXPECT_EQ(moved, std::set<std::string>(ids.begin(), ids.end()));
  EXPECT_EQ(Cli({"receive", "orders"}).err, "no messages\n");
  EXPECT_EQ(Cli({"dlq", "ls"}).err, "no dead letters\n");
}

TEST_F(CliTest, DlqPurgeRefusesWithoutYesThenEmptiesTheQueue) {
  MakeQueue("orders");
  ASSERT_EQ(DeadLetter("orders", {"a", "b", "c"}).size(), 3u);

  CliResult refused = Cli({"dlq", "purge", "dead-letters"});
  EXPECT_EQ(refused.exit_code, 2) << Describe(refused);
  EXPECT_EQ(refused.out, "");
  EXPECT_NE(refused.err.find("would delete all 3 dead letters in 'dead-letters'"),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("--yes"), std::string::npos) << refused.err;
  EXPECT_EQ(Cli({"dlq", "stats", "--json"}).Json()["total"], 3) << "nothing was purged";

  CliResult purged = Cli({"dlq", "purge", "dead-letters", "--yes"});
  ASSERT_EQ(purged.exit_code, 0) << Describe(purged);
  EXPECT_EQ(purged.out, "matched 3, purged 3, skipped 0\n");
  EXPECT_EQ(Cli({"dlq", "ls"}).err, "no dead letters\n");

  CliResult standard = Cli({"dlq", "purge", "orders", "--yes"});
  EXPECT_EQ(standard.exit_code, 1) << Describe(standard);
  EXPECT_EQ(standard.err.rfind("error: queue-not-found: ", 0), 0u) << standard.err;
}

TEST_F(CliTest, JobsStartWaitRestoresAFewDozen) {
  MakeQueue("orders");
  ASSERT_EQ(DeadLetter("orders", std::vector<std::string>(36, "boom")).size(), 36u);

  CliResult run = Cli({"jobs", "start", "--origin", "orders", "--wait"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  std::string id = run.out.substr(0, run.out.find('\n'));
  ASSERT_EQ(id.rfind("job_", 0), 0u) << run.out;
  EXPECT_EQ(run.out, id + "\n" + id + " completed: moved 36 of 36, skipped 0, failed again 0\n");
  // Not a terminal: one plain line per change, the last one the completion.
  EXPECT_EQ(run.err.find('\r'), std::string::npos) << run.err;
  EXPECT_EQ(run.err.rfind(id + " ", 0), 0u) << run.err;
  EXPECT_NE(run.err.find(id + " completed: moved 36 of 36, skipped 0\n"), std::string::npos)
      << run.err;
  EXPECT_EQ(Cli({"queue", "show", "orders", "--json"}).Json()["depth"]["ready"], 36);
  EXPECT_EQ(Cli({"dlq", "ls"}).err, "no dead letters\n");

  CliResult list = Cli({"jobs", "ls"});
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  std::vector<std::string> rows = Rows(list.out);
  ASSERT_EQ(rows.size(), 1u) << list.out;
  EXPECT_EQ(
      rows[0].rfind(id + "  completed  done   dead-letters       36/36  0        (origin)", 0), 0u)
      << list.out;
  CliResult show = Cli({"jobs", "show", id});
  ASSERT_EQ(show.exit_code, 0) << Describe(show);
  EXPECT_EQ(Field(show.out, "state"), "completed");
  EXPECT_EQ(Field(show.out, "filter"), R"(/origin eq "orders")");
  EXPECT_EQ(Field(show.out, "moved"), "36");
  EXPECT_EQ(Field(show.out, "destination"), "each message's origin");

  for (const char* action : {"cancel", "resume"}) {
    CliResult r = Cli({"jobs", action, id});
    EXPECT_EQ(r.exit_code, 1) << Describe(r);
    EXPECT_EQ(r.err.rfind("error: job-state-conflict: ", 0), 0u) << r.err;
  }
  CliResult missing = Cli({"jobs", "show", "job_nope"});
  EXPECT_EQ(missing.exit_code, 1) << Describe(missing);
  EXPECT_EQ(missing.err.rfind("error: job-not-found: ", 0), 0u) << missing.err;

  // On a terminal, watch draws a bar in place.
  CliResult bar = CliTty({"jobs", "watch", id});
  EXPECT_EQ(bar.exit_code, 0) << Describe(bar);
  EXPECT_NE(bar.err.find("\r[" + std::string(30, '#') + "] 36/36 100%  completed\x1b[K"),
            std::string::npos)
      << bar.err;
  EXPECT_EQ(bar.out, id + " completed: moved 36 of 36, skipped 0, failed again 0\n");
}

TEST_F(CliTest, ExportStartWaitThenDownloadResumesAPartialFile) {
  MakeQueue("orders");
  ASSERT_EQ(DeadLetter("orders", std::vector<std::string>(12, "boom")).size(), 12u);
  CliResult run = Cli({"export", "start", "--origin", "orders", "--wait", "--json"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  json e = run.Json();
  EXPECT_EQ(e["state"], "completed");
  EXPECT_EQ(e["count"], 12);
  std::string id = e["id"];
  CliResult list = Cli({"export", "ls"});
  EXPECT_NE(list.out.find(id + "  completed"), std::string::npos) << list.out;

  std::string path = home_ + "/export.ndjson";
  CliResult whole = Cli({"export", "download", id, "-o", path});
  ASSERT_EQ(whole.exit_code, 0) << Describe(whole);
  std::string full = ReadFileText(path);
  EXPECT_EQ(static_cast<int64_t>(full.size()), e["bytes"].get<int64_t>());
  EXPECT_EQ(std::count(full.begin(), full.end(), '\n'), 12);
  // A download broken off after 100 bytes: the next one asks only for the rest.
  std::filesystem::resize_file(path, 100);
  CliResult resumed = Cli({"export", "download", id, "-o", path});
  ASSERT_EQ(resumed.exit_code, 0) << Describe(resumed);
  EXPECT_NE(resumed.err.find("resumed at 100"), std::string::npos) << resumed.err;
  EXPECT_EQ(ReadFileText(path), full);
  CliResult again = Cli({"export", "download", id, "-o", path});
  EXPECT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(ReadFileText(path), full);
  // To stdout, and the errors of the server with their codes.
  EXPECT_EQ(Cli({"export", "download", id}).out, full);
  CliResult busy = Cli({"export", "cancel", id});
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_NE(busy.err.find("job-state-conflict"), std::string::npos) << Describe(busy);
  CliResult missing = Cli({"export", "show", "exp_nope"});
  EXPECT_NE(missing.err.find("export-not-found"), std::string::npos) << Describe(missing);
}

TEST_F(CliTest, NotifySetDigestAndTicketAnswer) {
  MakeQueue("orders");
  ASSERT_EQ(DeadLetter("orders", {"a", "b", "c"}).size(), 3u);
  std::string settings = home_ + "/notify.json";
  std::ofstream(settings) << R"({"channels": [{"type": "log"}], "tickets": {"onExpiry": "keep"}})";
  CliResult set = Cli({"notify", "set", settings});
  ASSERT_EQ(set.exit_code, 0) << Describe(set);
  EXPECT_EQ(set.Json()["tickets"]["onExpiry"], "keep");
  std::ofstream(home_ + "/bad.json") << R"({"digest": {"schedule": "every monday"}})";
  CliResult bad = Cli({"notify", "set", home_ + "/bad.json"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("invalid-argument"), std::string::npos) << Describe(bad);

  CliResult digest = Cli({"notify", "digest", "--json"});
  ASSERT_EQ(digest.exit_code, 0) << Describe(digest);
  std::string id = digest.Json()["ticket"]["id"];
  CliResult list = Cli({"ticket", "ls"});
  EXPECT_NE(list.out.find(id + "  open"), std::string::npos) << list.out;
  CliResult show = Cli({"ticket", "show", id});
  EXPECT_NE(show.out.find("group:        1 orders rejected"), std::string::npos) << show.out;
  CliResult wrong = Cli({"ticket", "answer", id, "later"});
  EXPECT_NE(wrong.exit_code, 0);
  CliResult answer = Cli({"ticket", "answer", id, "discard", "--json"});
  ASSERT_EQ(answer.exit_code, 0) << Describe(answer);
  EXPECT_EQ(answer.Json()["answer"]["deleted"], 3);
  CliResult again = Cli({"ticket", "answer", id, "retry"});
  EXPECT_NE(again.err.find("ticket-closed"), std::string::npos) << Describe(again);
  CliResult none = Cli({"notify", "digest"});
  EXPECT_NE(none.out.find("no ticket opened"), std::string::npos) << Describe(none);
}

TEST_F(CliTest, JobsDryRunMovesNothing) {
  MakeQueue("orders");
  std::vector<std::string> ids = DeadLetter("orders", {"a", "b", "c"});
  ASSERT_EQ(ids.size(), 3u);

  CliResult dry = Cli({"jobs", "start", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << Describe(dry);
  EXPECT_EQ(dry.out, "would move: 3\n\nDESTINATION  COUNT\norders       3\n\nSAMPLE\n" + ids[0] +
                         "\n" + ids[1] + "\n" + ids[2] + "\n");
  EXPECT_EQ(dry.err, "dry run: nothing was moved\n");
  CliResult elsewhere =
      Cli({"jobs", "start", "--dry-run", "--to", "orders-retry", "--reason", "expired"});
  ASSERT_EQ(elsewhere.exit_code, 0) << Describe(elsewhere);
  EXPECT_EQ(elsewhere.out, "would move: 0\n");

  EXPECT_EQ(Cli({"dlq", "stats", "--json"}).Json()["total"], 3);
  EXPECT_EQ(Cli({"queue", "show", "orders", "--json"}).Json()["depth"]["ready"], 0);
  CliResult jobs = Cli({"jobs", "ls"});
  EXPECT_EQ(jobs.exit_code, 0) << Describe(jobs);
  EXPECT_EQ(jobs.err, "no redrive jobs\n");

  for (std::vector<std::string> args :
       {std::vector<std::string>{"jobs", "start", "--dry-run", "--wait"},
        {"jobs", "start", "--canary-wait", "5s"},
        {"jobs", "start", "--canary", "0"},
        {"jobs", "start", "--canary", "2", "--canary-max-failure", "2"},
        {"jobs", "start", "--rate", "-1"},
        {"jobs", "start", "--since", "last tuesday"}}) {
    CliResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
  }
  EXPECT_EQ(Cli({"jobs", "ls"}).err, "no redrive jobs\n") << "usage errors start nothing";
}

TEST_F(CliTest, JobsHaltOnAFailingCanaryResumeAndCancel) {
  MakeQueue("orders");
  ASSERT_EQ(DeadLetter("orders", std::vector<std::string>(6, "boom")).size(), 6u);

  // The canary's wait must outlast receiving and nacking it below, which takes several CLI runs:
  // under a sanitizer on a loaded machine 2s was not enough (the check found nothing failed).
  CliResult started =
      Cli({"jobs", "start", "--canary", "2", "--canary-wait", "10s", "--canary-max-failure", "0"});
  ASSERT_EQ(started.exit_code, 0) << Describe(started);
  std::string id = started.out.substr(0, started.out.size() - 1);
  CliResult second = Cli({"jobs", "start", "--queue", "dead-letters"});
  EXPECT_EQ(second.exit_code, 1) << Describe(second);
  EXPECT_EQ(second.err.rfind("error: job-active: ", 0), 0u) << second.err;
  EXPECT_NE(second.err.find("hint: 'redrive jobs ls'"), std::string::npos) << second.err;

  // The canary fails again: both come back as dead letters.
  std::vector<std::string> receipts;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (receipts.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    CliResult got = Cli({"receive", "orders", "--max", "2", "--wait", "2s", "--json"});
    json answer = got.Json();
    for (const auto& m : answer["messages"]) receipts.push_back(m["receipt"]);
  }
  ASSERT_EQ(receipts.size(), 2u);
  ASSERT_EQ(Cli({"nack", "orders", receipts[0], receipts[1], "--dead-letter"}).exit_code, 0);

  CliResult halted = Cli({"jobs", "watch", id});
  EXPECT_EQ(halted.exit_code, 1) << Describe(halted);
  EXPECT_EQ(halted.out, id + " halted: moved 2 of 6, skipped 0, failed again 2\n");
  EXPECT_NE(halted.err.find("error: job " + id + " halted: 2 of 2 canary messages failed again"),
            std::string::npos)
      << halted.err;
  EXPECT_NE(halted.err.find("hint: 'redrive jobs resume " + id + "'"), std::string::npos)
      << halted.err;

  CliResult resumed = Cli({"jobs", "resume", id});
  ASSERT_EQ(resumed.exit_code, 0) << Describe(resumed);
  EXPECT_EQ(resumed.out, "job " + id + " is running\n");
  CliResult done = Cli({"jobs", "watch", id});
  EXPECT_EQ(done.exit_code, 0) << Describe(done);
  EXPECT_EQ(done.out, id + " completed: moved 6 of 6, skipped 0, failed again 2\n");

  // A throttled job over the two that failed again, cancelled before it is through.
  CliResult slow = Cli({"jobs", "start", "--rate", "0.5"});
  ASSERT_EQ(slow.exit_code, 0) << Describe(slow);
  std::string slow_id = slow.out.substr(0, slow.out.size() - 1);
  CliResult cancelled = Cli({"jobs", "cancel", slow_id});
  ASSERT_EQ(cancelled.exit_code, 0) << Describe(cancelled);
  EXPECT_EQ(cancelled.out, "job " + slow_id + " is cancelling\n");
  CliResult watched = Cli({"jobs", "watch", slow_id, "--json"});
  EXPECT_EQ(watched.exit_code, 1) << Describe(watched);
  EXPECT_EQ(watched.Json()["state"], "cancelled") << watched.out;
  EXPECT_NE(watched.err.find("error: job " + slow_id + " was cancelled"), std::string::npos)
      << watched.err;
}

TEST_F(CliTest, AuditLsShowsDeleteRestoreAndJobEntries) {
  MakeQueue("orders");
  std::vector<std::string> ids = DeadLetter("orders", {"a", "b", "c"});
  ASSERT_EQ(ids.size(), 3u);
  ASSERT_EQ(Cli({"dlq", "rm", ids[0]}).exit_code, 0);
  ASSERT_EQ(Cli({"dlq", "restore", ids[1]}).exit_code, 0);
  CliResult job = Cli({"jobs", "start", "--wait"});
  ASSERT_EQ(job.exit_code, 0) << Describe(job);
  std::string job_id = job.out.substr(0, job.out.find('\n'));

  // The queue the test made is audited too (queue.create); leave it out.
  const std::string not_queues = R"(!(/action sw "queue."))";
  CliResult audit = Cli({"audit", "ls", "--filter", not_queues});
  ASSERT_EQ(audit.exit_code, 0) << Describe(audit);
  std::vector<std::string> rows = Rows(audit.out);
  ASSERT_EQ(rows.size(), 4u) << audit.out;
  EXPECT_NE(rows[0].find("  dead-letter.delete   target={\"ids\":[\"" + ids[0] +
                         "\"]} matched=1 done=1 skipped=0"),
            std::string::npos)
      << audit.out;
  EXPECT_NE(rows[1].find("  dead-letter.restore  target={\"ids\":[\"" + ids[1] + "\"]}"),
            std::string::npos)
      << audit.out;
  EXPECT_NE(rows[2].find("  job.start            job=" + job_id + " toMove=1 "), std::string::npos)
      << audit.out;
  EXPECT_NE(rows[3].find("  system"), std::string::npos) << audit.out;
  EXPECT_NE(rows[3].find("job.completed"), std::string::npos) << audit.out;
  EXPECT_EQ(audit.out.find("next cursor"), std::string::npos) << audit.out;

  CliResult jobs_only = Cli({"audit", "ls", "--filter", R"(/action sw "job.")"});
  ASSERT_EQ(jobs_only.exit_code, 0) << Describe(jobs_only);
  rows = Rows(jobs_only.out);
  ASSERT_EQ(rows.size(), 2u) << jobs_only.out;
  EXPECT_NE(rows[0].find("job.start"), std::string::npos) << jobs_only.out;
  EXPECT_NE(rows[1].find("job.completed"), std::string::npos) << jobs_only.out;

  CliResult page = Cli({"audit", "ls", "--filter", not_queues, "--limit", "2"});
  ASSERT_EQ(page.exit_code, 0) << Describe(page);
  EXPECT_EQ(Rows(page.out).size(), 2u) << page.out;
  std::string cursor = Field(page.out, "next cursor");
  ASSERT_FALSE(cursor.empty()) << page.out;
  CliResult rest = Cli({"audit", "ls", "--filter", not_queues, "--limit", "2", "--cursor", cursor});
  ASSERT_EQ(rest.exit_code, 0) << Describe(rest);
  rows = Rows(rest.out);
  ASSERT_EQ(rows.size(), 2u) << rest.out;
  EXPECT_NE(rows[0].find("job.start"), std::string::npos) << rest.out;
  EXPECT_EQ(Field(rest.out, "next cursor"), "");
}

TEST_F(CliTest, BatchAckReportsEachFailedReceiptAndExitsOne) {
  ASSERT_EQ(Cli({"queue", "create", "jobs"}).exit_code, 0);
  ASSERT_EQ(Cli({"send", "jobs", "x"}).exit_code, 0);
  json m = ReceiveOne("jobs");
  std::string receipt = m["receipt"];

  CliResult extended = Cli({"extend", "jobs", receipt, "--visibility-timeout", "2m"});
  EXPECT_EQ(extended.exit_code, 0) << Describe(extended);
  EXPECT_EQ(extended.out, "extended 1\n");

  CliResult acked = Cli({"ack", "jobs", receipt, "not-a-receipt"});
  EXPECT_EQ(acked.exit_code, 1) << Describe(acked);
  EXPECT_EQ(acked.out, "acked 1 of 2\n");
  EXPECT_EQ(acked.err.rfind("error: not-a-receipt: invalid-receipt: ", 0), 0u) << acked.err;
  EXPECT_EQ(acked.err.find(receipt), std::string::npos) << "only failures are reported";

  CliResult again = Cli({"nack", "jobs", receipt});
  EXPECT_EQ(again.exit_code, 1) << Describe(again);
  EXPECT_EQ(again.err.rfind("error: " + receipt + ": lease-lost: ", 0), 0u) << again.err;
}

TEST_F(CliTest, UnknownQueueExitsOneWithTheServersErrorCode) {
  for (std::vector<std::string> args : {std::vector<std::string>{"send", "nope", "x"},
                                        {"receive", "nope"},
                                        {"queue", "show", "nope"}}) {
    CliResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 1) << Describe(r);
    EXPECT_EQ(r.err.rfind("error: queue-not-found: ", 0), 0u) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(CliTest, UnreachableServerExitsThreeAndNamesTheUrl) {
  std::string url = ClosedUrl();
  CliResult r = Raw({"queue", "ls", "--url", url, "--token", "t", "--tenant", "acme"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find("cannot reach the server at " + url), std::string::npos) << r.err;
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  ASSERT_EQ(Cli({"queue", "create", "jobs"}).exit_code, 0);
  CliResult both = Cli({"nack", "jobs", "r", "--delay", "1s", "--dead-letter"});
  EXPECT_EQ(both.exit_code, 2) << Describe(both);
  CliResult bad_duration = Cli({"send", "jobs", "x", "--delay", "soon"});
  EXPECT_EQ(bad_duration.exit_code, 2) << Describe(bad_duration);
  CliResult bad_attr = Cli({"send", "jobs", "x", "--attr", "novalue"});
  EXPECT_EQ(bad_attr.exit_code, 2) << Describe(bad_attr);
  CliResult bad_json = Cli({"queue", "create", "q2", "--attributes", "[1]"});
  EXPECT_EQ(bad_json.exit_code, 2) << Describe(bad_json);
  CliResult unknown_flag = Cli({"queue", "ls", "--frobnicate"});
  EXPECT_EQ(unknown_flag.exit_code, 2) << Describe(unknown_flag);
  CliResult no_file = Cli({"send", "jobs", "--file", home_ + "/missing"});
  EXPECT_EQ(no_file.exit_code, 2) << Describe(no_file);
  CliResult bad_time = Cli({"dlq", "ls", "--since", "yesterday"});
  EXPECT_EQ(bad_time.exit_code, 2) << Describe(bad_time);
  CliResult bad_limit = Cli({"dlq", "ls", "--limit", "1001"});
  EXPECT_EQ(bad_limit.exit_code, 2) << Describe(bad_limit);
  CliResult no_dlq = Cli({"dlq", "purge"});
  EXPECT_EQ(no_dlq.exit_code, 2) << Describe(no_dlq);
  CliResult no_job = Cli({"jobs", "watch"});
  EXPECT_EQ(no_job.exit_code, 2) << Describe(no_job);
  CliResult no_tenant = Raw({"queue", "ls", "--url", server_->url(), "--token", op_token_});
  EXPECT_EQ(no_tenant.exit_code, 2) << Describe(no_tenant);
  EXPECT_NE(no_tenant.err.find("no tenant"), std::string::npos) << no_tenant.err;
  EXPECT_EQ(Raw({"--help"}).exit_code, 0);
}

TEST_F(CliTest, FlagsBeatEnvironment) {
  std::map<std::string, std::string> env = {
      {"REDRIVE_URL", ClosedUrl()}, {"REDRIVE_TOKEN", "rdt_wrong"}, {"REDRIVE_TENANT", "nosuch"}};
  CliResult env_only = Raw({"queue", "ls"}, env);
  EXPECT_EQ(env_only.exit_code, 3) << "the environment is used: " << Describe(env_only);

  std::string token_file = home_ + "/op.token";
  WriteFile(token_file, op_token_ + "\n");
  CliResult flags =
      Raw({"queue", "ls", "--url", server_->url(), "--token-file", token_file, "--tenant", "acme"},
          env);
  EXPECT_EQ(flags.exit_code, 0) << Describe(flags);
  EXPECT_EQ(flags.out.rfind("NAME ", 0), 0u) << flags.out;
}

TEST_F(CliTest, ConfigFileIsPickedUpAndEnvironmentBeatsIt) {
  std::string config_home = home_ + "/config";
  WriteFile(home_ + "/secrets/op.token", op_token_);
  WriteFile(config_home + "/redrive/cli.toml", "url = \"" + server_->url() +
                                                   "\"\n"
                                                   "token_file = \"../../secrets/op.token\"\n"
                                                   "tenant = \"acme\"\n");
  std::map<std::string, std::string> xdg = {{"XDG_CONFIG_HOME", config_home}};
  CliResult picked = Raw({"queue", "create", "from-config"}, xdg);
  EXPECT_EQ(picked.exit_code, 0) << Describe(picked);

  xdg["REDRIVE_URL"] = ClosedUrl();
  CliResult env_wins = Raw({"queue", "ls"}, xdg);
  EXPECT_EQ(env_wins.exit_code, 3) << Describe(env_wins);

  // ~/.config is the default without XDG_CONFIG_HOME; --config names another file.
  WriteFile(home_ + "/.config/redrive/cli.toml",
            "url = \"" + server_->url() + "\"\ntoken = \"" + op_token_ + "\"\ntenant = \"acme\"\n");
  CliResult home_config = Raw({"queue", "show", "from-config"});
  EXPECT_EQ(home_config.exit_code, 0) << Describe(home_config);
  WriteFile(home_ + "/other.toml", "url = \"" + ClosedUrl() + "\"\ntenant = \"acme\"\n");
  CliResult named = Raw({"queue", "ls", "--config", home_ + "/other.toml"});
  EXPECT_EQ(named.exit_code, 3) << Describe(named);
  CliResult missing = Raw({"queue", "ls", "--config", home_ + "/absent.toml"});
  EXPECT_EQ(missing.exit_code, 2) << Describe(missing);
  WriteFile(home_ + "/typo.toml", "tennant = \"acme\"\n");
  CliResult typo = Raw({"queue", "ls", "--config", home_ + "/typo.toml"});
  EXPECT_EQ(typo.exit_code, 2) << Describe(typo);
  EXPECT_NE(typo.err.find("unknown key 'tennant'"), std::string::npos) << typo.err;
}

}  // namespace
}  // namespace redrive::testing

namespace redrive::testing {
namespace {

// topic, subscription and endpoint: flags become attributes, tables show what a user needs,
// errors exit non-zero with the server's code, and the subscription is received from as a queue.
TEST_F(CliTest, TopicsSubscriptionsAndEndpointsFromTheCommandLine) {
  auto t = Cli({"topic", "create", "orders", "--no-route", "dead-letter"});
  ASSERT_EQ(t.exit_code, 0) << Describe(t);
  EXPECT_NE(t.out.find("dead-letter"), std::string::npos) << t.out;
  auto s = Cli({"subscription", "create", "orders", "eu", "--filter",
                R"({"region": {"prefix": "eu-"}})", "--max-deliveries", "2"});
  ASSERT_EQ(s.exit_code, 0) << Describe(s);
  auto h = Cli({"subscription", "create", "orders", "hook", "--push-url", "http://127.0.0.1:9/x",
                "--push-header", "x-api-key=k1", "--max-in-flight", "3", "--rate-limit", "5",
                "--auto-redrive", "--filter", R"({"never": {"exists": true}})", "--json"});
  ASSERT_EQ(h.exit_code, 0) << Describe(h);
  json hook = h.Json();
  EXPECT_EQ(hook["attributes"]["push"]["headers"]["x-api-key"], "k1");
  EXPECT_EQ(hook["attributes"]["push"]["maxInFlight"], 3);
  EXPECT_EQ(hook["attributes"]["push"]["autoRedriveOnRecovery"]["enabled"], true);
  EXPECT_EQ(hook["secret"].get<std::string>().rfind("whsec_", 0), 0u);

  auto ls = Cli({"subscription", "ls", "orders"});
  ASSERT_EQ(ls.exit_code, 0) << Describe(ls);
  EXPECT_NE(ls.out.find("push http://127.0.0.1:9/x"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("pull"), std::string::npos) << ls.out;

  // Publish to the topic with `send`, receive from the subscription as a queue.
  auto sent = Cli({"send", "orders", "hello", "--attr", "region=eu-west"});
  ASSERT_EQ(sent.exit_code, 0) << Describe(sent);
  auto got = Cli({"receive", "orders:eu", "--json"});
  ASSERT_EQ(got.exit_code, 0) << Describe(got);
  EXPECT_EQ(got.Json()["messages"][0]["body"], "hello") << got.out;
  std::string copy = got.Json()["messages"][0]["id"];
  std::string id = copy.substr(0, copy.find(':'));

  // Events: the message's copy for eu is being delivered; hook's filter took nothing.
  auto events = Cli({"topic", "events", "orders", "--state", "delivering"});
  ASSERT_EQ(events.exit_code, 0) << Describe(events);
  EXPECT_NE(events.out.find(id), std::string::npos) << events.out;
  EXPECT_NE(events.out.find("eu delivering"), std::string::npos) << events.out;
  auto none = Cli({"topic", "events", "orders", "--state", "dropped", "--json"});
  ASSERT_EQ(none.exit_code, 0) << Describe(none);
  EXPECT_TRUE(none.Json()["events"].empty()) << none.out;
  auto event = Cli({"topic", "event", "orders", id});
  ASSERT_EQ(event.exit_code, 0) << Describe(event);
  EXPECT_NE(event.out.find("hello"), std::string::npos) << event.out;
  auto pending = Cli({"subscription", "redeliver", "orders", "eu", id});
  EXPECT_NE(pending.exit_code, 0);
  EXPECT_NE(pending.err.find("delivery-pending"), std::string::npos) << Describe(pending);
  auto redelivered = Cli({"subscription", "redeliver", "orders", "hook", id});
  ASSERT_EQ(redelivered.exit_code, 0) << Describe(redelivered);
  EXPECT_NE(redelivered.out.find("redelivering " + id + " to hook"), std::string::npos)
      << redelivered.out;
  EXPECT_NE(Cli({"topic", "events", "orders", "--state", "lost"}).exit_code, 0);

  auto off = Cli({"endpoint", "disable", "orders", "hook", "--reason", "deploy", "--json"});
  ASSERT_EQ(off.exit_code, 0) << Describe(off);
  EXPECT_EQ(off.Json()["attributes"]["push"]["disabledReason"], "deploy");
  auto show = Cli({"endpoint", "show", "orders", "hook"});
  ASSERT_EQ(show.exit_code, 0) << Describe(show);
  EXPECT_NE(show.out.find("disabled"), std::string::npos) << show.out;
  auto rotated = Cli({"endpoint", "rotate-secret", "orders", "hook", "--overlap", "1h"});
  ASSERT_EQ(rotated.exit_code, 0) << Describe(rotated);
  EXPECT_NE(rotated.out.find("signing secret (shown once): whsec_"), std::string::npos)
      << rotated.out;

  auto missing = Cli({"subscription", "show", "orders", "nope"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("subscription-not-found"), std::string::npos) << Describe(missing);
  auto bad = Cli({"subscription", "create", "orders", "x", "--push-header", "novalue"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("NAME=VALUE"), std::string::npos) << Describe(bad);
  auto gone = Cli({"topic", "rm", "orders"});
  ASSERT_EQ(gone.exit_code, 0) << Describe(gone);
  EXPECT_EQ(Cli({"topic", "show", "orders"}).exit_code == 0, false);
}

}  // namespace
}  // namespace redrive::testing
