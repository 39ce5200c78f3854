// Export jobs over a real SQLite store and real files, on a manual clock: what is written (the
// line format, the gzip copy), once by default, narrowed, cancelled, taken over after a crash,
// one at a time per tenant, and deleted after the retention.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/text.h"
#include "engine/dead_letter_doc.h"
#include "engine/engine.h"
#include "engine/engine_test_fixture.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Gunzip(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) return "";
  std::string out;
  char buf[65536];
  int n = 0;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(gz);
  return out;
}

std::vector<json> Lines(const std::string& text) {
  std::vector<json> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      ADD_FAILURE() << "the last line does not end in \\n";
      break;
    }
    out.push_back(json::parse(text.substr(start, end - start)));
    start = end + 1;
  }
  return out;
}

class ExportsTest : public EngineFixture {
 protected:
  ExportsTest() : EngineFixture(5) {}
  void SetUp() override {
    EngineFixture::SetUp();
    EngineOptions o;
    o.export_dir = dir_ + "/exports";
    o.export_step = 10;  // several runner passes per export
    engine_ = std::make_unique<Engine>(*store_, clock_, random_, o);
  }
  const Principal& Op() { return Tenancy::System(); }
  DeadLetters& dl() { return engine_->dead_letters(); }

  // `n` dead letters from queue `queue` (made if missing), the i-th with body "<queue>-<i>".
  void DeadLetter(const std::string& queue, int n) {
    QueueConfig c;
    c.retry.max_deliveries = 1;
    (void)engine_->queues().CreateQueue("acme", queue, c);
    std::vector<NewMessage> m(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      m[static_cast<size_t>(i)].body = queue + "-" + std::to_string(i);
      m[static_cast<size_t>(i)].attributes = {{"i", std::to_string(i)}};
    }
    m[0].body = std::string("\xff\x00\x01", 3);  // binary: base64 in the export
    ASSERT_TRUE(engine_->messages().Publish("acme", queue, std::move(m)).ok());
    ReceiveOptions o;
    o.max_messages = n;
    auto got = engine_->messages().Receive("acme", queue, o);
    ASSERT_TRUE(got.ok());
    std::vector<NackRequest> nacks;
    for (const auto& d : *got) {
      NackRequest r;
      r.receipt = d.receipt;
      r.error = "HTTP 500";
      nacks.push_back(r);
    }
    ASSERT_TRUE(engine_->messages().Nack("acme", queue, nacks).ok());
  }
  // Runs the export runner until the export finishes.
  ExportInfo Finish(const std::string& id) {
    for (int i = 0; i < 1000; ++i) {
      auto e = dl().GetExport("acme", id);
      EXPECT_TRUE(e.ok());
      if (!e.ok() || e->state != "processing") return e.ok() ? *e : ExportInfo{};
      EXPECT_TRUE(dl().RunExportsOnce().ok());
    }
    ADD_FAILURE() << "export never finished";
    return {};
  }
  std::string Start(ExportSpec spec = {}) {
    auto e = dl().StartExport(Op(), "acme", spec);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? e->id : "";
  }
  std::vector<json> ExportedLines(const std::string& id) {
    auto f = dl().GetExportFile("acme", id, false);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    return f.ok() ? Lines(ReadFile(f->path)) : std::vector<json>{};
  }
};

TEST_F(ExportsTest, WritesEveryDeadLetterOnceAsDocumentedAndStampsThem) {
  DeadLetter("orders", 25);
  std::string id = Start();
  ExportInfo done = Finish(id);
  EXPECT_EQ(done.state, "completed");
  EXPECT_EQ(done.count, 25);
  EXPECT_EQ(done.total, 25);
  auto lines = ExportedLines(id);
  ASSERT_EQ(lines.size(), 25u);
  // Every line against the dead letter of the same id, as a query shows it.
  std::set<std::string> ids;
  for (const auto& line : lines) {
    ids.insert(line["id"]);
    EXPECT_EQ(line["formatVersion"], 1);
    EXPECT_EQ(line["exportedAt"], FormatTime(done.created_at));
    auto d = dl().GetDeadLetter("acme", line["id"]);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(line["origin"], "orders");
    EXPECT_EQ(line["reason"], "max-deliveries");
    EXPECT_EQ(line["deliveryCount"], 1);
    EXPECT_EQ(line["attempts"].size(), 1u);
    EXPECT_EQ(line["attributes"]["i"], d->attributes.at("i"));
    if (line["base64"] == true) {
      EXPECT_EQ(line["body"], Base64Encode(d->body));
    } else {
      EXPECT_EQ(line["body"], d->body);
    }
    // Stamped with the export's time; still a dead letter.
    EXPECT_EQ(d->exported_at, done.created_at);
  }
  EXPECT_EQ(ids.size(), 25u);
  // The gzip copy holds the same bytes; the file sizes are as reported.
  auto plain = dl().GetExportFile("acme", id, false).value();
  auto gz = dl().GetExportFile("acme", id, true).value();
  EXPECT_EQ(Gunzip(gz.path), ReadFile(plain.path));
  EXPECT_EQ(static_cast<int64_t>(std::filesystem::file_size(plain.path)), done.bytes);
  EXPECT_EQ(static_cast<int64_t>(std::filesystem::file_size(gz.path)), done.gzip_bytes);
  EXPECT_NE(plain.etag, gz.etag);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/exports/acme/" + id + ".seqs"));

  // Once: the next export takes none of them; with includeExported, all of them again.
  std::string again = Start();
  EXPECT_EQ(Finish(again).count, 0);
  EXPECT_TRUE(ExportedLines(again).empty());
  ExportSpec all;
  all.include_exported = true;
  EXPECT_EQ(Finish(Start(all)).count, 25);
  // An exported dead letter can still be restored.
  DeadLetterTarget t;
  t.ids = {*ids.begin()};
  auto restored = dl().RestoreDeadLetters(Op(), "acme", t);
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(restored->done, 1);
}

TEST_F(ExportsTest, NarrowsByOriginFilterAndTime) {
  DeadLetter("orders", 5);
  clock_.Advance(60'000);
  DeadLetter("billing", 4);
  ExportSpec by_origin;
  by_origin.origin = "billing";
  auto lines = ExportedLines(Finish(Start(by_origin)).id);
  ASSERT_EQ(lines.size(), 4u);
  for (const auto& l : lines) EXPECT_EQ(l["origin"], "billing");
  ExportSpec by_filter;
  by_filter.filter = "/attributes/i eq \"3\"";
  by_filter.include_exported = true;
  EXPECT_EQ(ExportedLines(Finish(Start(by_filter)).id).size(), 2u);
  ExportSpec by_time;
  by_time.since = clock_.Now() - 30'000;
  by_time.include_exported = true;
  EXPECT_EQ(ExportedLines(Finish(Start(by_time)).id).size(), 4u);
}

TEST_F(ExportsTest, OneAtATimeAndACancelKeepsNothingAndStampsNothing) {
  DeadLetter("orders", 25);
  std::string first = Start();
  auto second = dl().StartExport(Op(), "acme", ExportSpec{});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kExportActive);
  EXPECT_NE(second.status().message().find(first), std::string::npos);
  ASSERT_TRUE(dl().RunExportsOnce().ok());  // one step: 10 of 25 written
  EXPECT_EQ(dl().GetExport("acme", first)->count, 10);
  auto cancelled = dl().CancelExport(Op(), "acme", first);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status().ToString();
  EXPECT_EQ(cancelled->state, "cancelled");
  EXPECT_EQ(dl().GetExportFile("acme", first, false).status().code(), ErrorCode::kExportNotReady);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/exports/acme/" + first + ".ndjson"));
  EXPECT_EQ(dl().CancelExport(Op(), "acme", first).status().code(), ErrorCode::kJobStateConflict);
  // Nothing was stamped: the next export takes all 25.
  EXPECT_EQ(Finish(Start()).count, 25);
}

TEST_F(ExportsTest, ANodeThatTakesOverCutsTheFileBackToTheSavedProgress) {
  DeadLetter("orders", 25);
  std::string id = Start();
  ASSERT_TRUE(dl().RunExportsOnce().ok());  // 10 written and saved
  // A node that crashed after writing more than it saved.
  {
    std::ofstream out(dir_ + "/exports/acme/" + id + ".ndjson", std::ios::app);
    out << "{\"half a line";
  }
  ExportInfo done = Finish(id);
  EXPECT_EQ(done.count, 25);
  auto lines = ExportedLines(id);
  EXPECT_EQ(lines.size(), 25u);
}

TEST_F(ExportsTest, BadRequestsAreRefusedAndExportsGoAfterTheirRetention) {
  ExportSpec backwards;
  backwards.since = 2000;
  backwards.until = 1000;
  EXPECT_EQ(dl().StartExport(Op(), "acme", backwards).status().code(), ErrorCode::kInvalidArgument);
  ExportSpec bad_filter;
  bad_filter.filter = "/reason eq";
  EXPECT_EQ(dl().StartExport(Op(), "acme", bad_filter).status().code(), ErrorCode::kInvalidQuery);
  EXPECT_EQ(dl().GetExport("acme", "exp_nope").status().code(), ErrorCode::kExportNotFound);
  EXPECT_TRUE(dl().ListExports("acme")->empty());

  DeadLetter("orders", 3);
  std::string id = Finish(Start()).id;
  EXPECT_EQ(dl().ListExports("acme")->size(), 1u);
  clock_.Advance(7LL * 86'400'000 + 1);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  EXPECT_EQ(dl().GetExport("acme", id).status().code(), ErrorCode::kExportNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/exports/acme/" + id + ".ndjson"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/exports/acme/" + id + ".ndjson.gz"));

  // Without a directory for them, exports are refused.
  Engine bare(*store_, clock_, random_);
  EXPECT_EQ(bare.dead_letters().StartExport(Op(), "acme", ExportSpec{}).status().code(),
            ErrorCode::kInvalidArgument);
}

// Lines are written without building the document (AppendExportLine); byte for byte they must
// stay what the document dumps to, whatever the fields hold.
TEST(ExportLineTest, IsByteForByteTheDocumentDumped) {
  store::DeadLetterRecord bare;  // every optional field empty or 0
  bare.seq = 1;
  bare.id = "m1";
  bare.dlq = "dead-letters";
  bare.origin = "orders";
  bare.reason = "overflow";
  bare.published_at = 1'765'000'000'000;
  bare.dead_lettered_at = 1'765'000'000'123;

  store::DeadLetterRecord full = bare;
  full.id = "01HF7YAT00YCTZVWERW3H2KMCF:crm";
  full.origin = "orders:crm";  // a subscription's queue: topic and subscription
  full.reason = "max-deliveries";
  full.cause = std::string("HTTP 503 \"quoted\" \\ back\b\f\n\r\t\x01\x1f\x7f", 33);
  full.group_id = "g_3f1c";
  full.signature = "orders:crm max-deliveries HTTP 503";
  full.body = "{\"order\":7,\"name\":\"Zo\xc3\xab \xf0\x9f\x98\x80\",\"tab\":\"\t\"}";
  full.attributes = {
      {"type", "order.created"}, {"a\"b", "line\nbreak"}, {"\xc3\xa9", "\xe2\x82\xac"}};
  full.idempotency_key = "key-7";
  full.delivery_count = 6;
  full.retain_until = 1'765'600'000'000;
  full.first_delivered_at = 1'765'000'000'010;
  full.last_delivered_at = 1'765'000'000'020;
  full.journal.attempts = {
      store::Attempt(1'765'000'000'010, "push", "retry", "server-error", "HTTP 503"),
      store::Attempt(1'765'000'000'015, "c1", "nack", "", "boom\n")};
  full.journal.attempts[0].status = 503;
  full.journal.attempts[0].duration_ms = 12;
  full.journal.attempts[0].response = "upstream down";
  full.journal.omitted = 3;
  full.redrive_error = "origin queue is gone";
  full.lineage.redrive_count = 2;
  full.lineage.last_redriven_at = 1'765'000'000'500;
  full.lineage.last_redriven_by = "job:j1";
  full.lineage.original_queue = "orders:crm";
  full.exported_at = 1'765'000'000'900;  // the export's own time replaces it

  store::DeadLetterRecord odd = bare;
  odd.reason = kReasonNoRoute;                // a topic's own dead letter names the topic
  odd.body = std::string("\xff\x00\x01", 3);  // not UTF-8: base64
  odd.cause = "bad \xc3\x28 utf-8";           // invalid UTF-8 outside the body is replaced
  odd.attributes = {{"k", "\xed\xa0\x80 surrogate"}, {"x", ""}};
  odd.journal.attempts = {store::Attempt(5, "push", "retry", "timeout", "")};
  odd.journal.attempts[0].duration_ms = 30'000;  // a push attempt without an answer: status null
  odd.delivery_count = -1;

  const std::string exported_at = FormatTime(1'765'000'001'000);
  for (const auto* d : {&bare, &full, &odd}) {
    json doc = DeadLetterDocument(*d);
    doc["formatVersion"] = 1;
    doc["exportedAt"] = exported_at;
    std::string line;
    AppendExportLine(line, *d, 1, exported_at);
    EXPECT_EQ(line, doc.dump(-1, ' ', false, json::error_handler_t::replace)) << d->id;
  }
}

}  // namespace
}  // namespace redrive::engine
