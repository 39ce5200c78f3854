// Redaction rules: their JSON form, the pure redaction of a message, and the engine applying
// them wherever a dead letter is shown, and (storeRedacted) where it is stored.
#include "engine/redaction.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/engine_test_fixture.h"
#include "engine/queue_config.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

constexpr char kEmail[] = "alice.privacy@example.com";
constexpr char kCard[] = "4111111111111111";
constexpr char kName[] = "Alice Marker";

std::string Body(const std::string& email) {
  return json{{"customer", {{"email", email}, {"name", kName}}},
              {"card", {{"number", kCard}}},
              {"total", 42}}
      .dump();
}

// ------------------------------------------------------------------ rules and pure functions

TEST(RedactionRulesTest, ReadsItsJsonFormAndRoundTrips) {
  QueueConfig c;
  json j = {{"redaction",
             {{"pointers", {"/customer/email", "/card/number"}},
              {"attributes", {"email"}},
              {"mode", "hash"},
              {"storeRedacted", true}}}};
  ASSERT_TRUE(ApplyQueueConfigJson(j, &c).ok());
  EXPECT_EQ(c.redaction.pointers, (std::vector<std::string>{"/customer/email", "/card/number"}));
  EXPECT_EQ(c.redaction.mode, RedactionMode::kHash);
  EXPECT_TRUE(c.redaction.store_redacted);
  json form = QueueConfigToJson(c, /*for_store=*/true);
  EXPECT_EQ(form["redaction"], j["redaction"]);
  QueueConfig again;
  ASSERT_TRUE(ApplyQueueConfigJson(form, &again, /*stored=*/true).ok());
  EXPECT_EQ(QueueConfigToJson(again), QueueConfigToJson(c));
  // null removes the rules; a queue without them shows no field.
  ASSERT_TRUE(ApplyQueueConfigJson(json{{"redaction", nullptr}}, &again).ok());
  EXPECT_TRUE(again.redaction.empty());
  EXPECT_FALSE(QueueConfigToJson(again).contains("redaction"));
}

TEST(RedactionRulesTest, BadRulesNameTheField) {
  struct Case {
    json rules;
    ErrorCode code;
    const char* field;
  };
  const Case cases[] = {
      {json{{"pointers", {"customer/email"}}}, ErrorCode::kInvalidArgument,
       "'redaction.pointers[0]'"},
      {json{{"pointers", {"/a", "/b~2"}}}, ErrorCode::kInvalidArgument, "'redaction.pointers[1]'"},
      {json{{"pointers", "/a"}}, ErrorCode::kInvalidArgument, "'redaction.pointers'"},
      {json{{"attributes", {""}}}, ErrorCode::kInvalidArgument, "'redaction.attributes[0]'"},
      {json{{"attributes", {"email", 3}}}, ErrorCode::kInvalidArgument,
       "'redaction.attributes[1]'"},
      {json{{"mode", "scramble"}}, ErrorCode::kInvalidArgument, "'redaction.mode'"},
      {json{{"storeRedacted", "yes"}}, ErrorCode::kInvalidArgument, "'redaction.storeRedacted'"},
      {json{{"storeRedacted", true}}, ErrorCode::kInvalidArgument, "'redaction.storeRedacted'"},
      {json{{"pointer", {"/a"}}}, ErrorCode::kUnknownField, "'redaction.pointer'"},
      {json("mask"), ErrorCode::kInvalidArgument, "'redaction'"},
  };
  for (const auto& c : cases) {
    QueueConfig q;
    Status st = ApplyQueueConfigJson(json{{"redaction", c.rules}}, &q);
    EXPECT_EQ(st.code(), c.code) << c.rules.dump() << ": " << st.ToString();
    EXPECT_NE(st.message().find(c.field), std::string::npos) << st.ToString();
  }
}

TEST(RedactMessageTest, MaskReplacesPointedValuesAndAttributes) {
  RedactionRules r;
  r.pointers = {"/customer/email", "/card", "/missing/field", "/customer/0"};
  r.attributes = {"email", "absent"};
  std::string body = Body(kEmail);
  store::Attributes attrs = {{"email", kEmail}, {"region", "eu"}};
  Replacements replaced = RedactMessage(r, "", &body, &attrs);
  json doc = json::parse(body);
  EXPECT_EQ(doc["customer"]["email"], "***");
  EXPECT_EQ(doc["customer"]["name"], kName);  // not configured
  EXPECT_EQ(doc["card"], "***");              // a whole object
  EXPECT_EQ(doc["total"], 42);
  EXPECT_EQ(attrs["email"], "***");
  EXPECT_EQ(attrs["region"], "eu");
  EXPECT_EQ(body.find(kEmail), std::string::npos);
  EXPECT_EQ(body.find(kCard), std::string::npos);
  // What was replaced, for text that quotes it: the email and the card's number (a leaf).
  std::string text = std::string("refused ") + kEmail + " and card " + kCard;
  ScrubText(replaced, &text);
  EXPECT_EQ(text, "refused *** and card ***");
  // Twice is once.
  std::string again = body;
  store::Attributes again_attrs = attrs;
  EXPECT_TRUE(RedactMessage(r, "", &again, &again_attrs).empty());
  EXPECT_EQ(again, body);
}

TEST(RedactMessageTest, HashGivesEqualMarkersForEqualValuesUnderOneKey) {
  RedactionRules r;
  r.pointers = {"/customer/email"};
  r.attributes = {"email"};
  r.mode = RedactionMode::kHash;
  std::string a = Body(kEmail), b = Body(kEmail), c = Body("bob@example.com");
  store::Attributes aa = {{"email", kEmail}}, none;
  RedactMessage(r, "key-1", &a, &aa);
  RedactMessage(r, "key-1", &b, &none);
  RedactMessage(r, "key-1", &c, &none);
  std::string ha = json::parse(a)["customer"]["email"];
  EXPECT_TRUE(IsRedactedValue(ha)) << ha;
  EXPECT_EQ(ha.rfind("hmac:", 0), 0u);
  EXPECT_EQ(ha.size(), 5u + kRedactionHashDigits);
  EXPECT_EQ(ha, json::parse(b)["customer"]["email"]);
  EXPECT_EQ(ha, aa["email"]);  // a value hashes alike wherever it is
  EXPECT_NE(ha, json::parse(c)["customer"]["email"]);
  std::string other = Body(kEmail);
  RedactMessage(r, "key-2", &other, &none);
  EXPECT_NE(ha, json::parse(other)["customer"]["email"]);  // keyed
}

TEST(RedactMessageTest, ABodyPointersCannotReachIsRedactedWhole) {
  RedactionRules r;
  r.pointers = {"/email"};
  store::Attributes none;
  std::string text = std::string("email=") + kEmail;
  RedactMessage(r, "", &text, &none);
  EXPECT_EQ(text, "***");
  std::string binary("\xff\xfe\x00\x01", 4);
  RedactMessage(r, "", &binary, &none);
  EXPECT_EQ(binary, "***");
  // Attribute rules alone leave any body alone.
  RedactionRules attrs_only;
  attrs_only.attributes = {"email"};
  std::string kept = "not json";
  RedactMessage(attrs_only, "", &kept, &none);
  EXPECT_EQ(kept, "not json");
}

// ------------------------------------------------------------------ the engine

class RedactionEngineTest : public EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    viewer_.token_id = "tok_viewer";
    viewer_.tenant = "acme";
    viewer_.scopes = {kScopeDlqRead, kScopeDlqWrite};
    privileged_ = viewer_;
    privileged_.token_id = "tok_privileged";
    privileged_.scopes.push_back(kScopeDlqReadUnredacted);
  }
  void MakeQueue(const std::string& name, const json& redaction, int max_deliveries = 1) {
    QueueConfig c;
    c.retry.max_deliveries = max_deliveries;
    ASSERT_TRUE(ApplyQueueConfigJson(json{{"redaction", redaction}}, &c).ok());
    ASSERT_TRUE(engine_->queues().CreateQueue("acme", name, c).ok());
  }
  // Publishes and nacks once (maxDeliveries 1): a dead letter. The nack quotes the email.
  std::string Fail(const std::string& queue, const std::string& email) {
    NewMessage m;
    m.body = Body(email);
    m.attributes = {{"email", email}};
    auto id = engine_->messages().Publish("acme", queue, {m}).value()[0].id;
    ReceiveOptions ro;
    auto got = engine_->messages().Receive("acme", queue, ro).value();
    EXPECT_EQ(got.size(), 1u);
    if (got.empty()) return id;
    EXPECT_EQ(got[0].message.body, m.body) << "a live message keeps its values";
    NackRequest n;
    n.receipt = got[0].receipt;
    n.error = std::string("mailbox ") + email + " does not exist";
    EXPECT_TRUE(engine_->messages().Nack("acme", queue, {n}).ok());
    return id;
  }
  std::vector<json> Query(bool unredacted, const std::string& filter = "") {
    DeadLetterQuery q;
    q.unredacted = unredacted;
    q.filter = filter;
    return engine_->dead_letters().QueryDeadLetters("acme", q).value().items;
  }

  Principal viewer_, privileged_;
};

TEST_F(RedactionEngineTest, AViewerWithoutTheScopeSeesMarkersAndFiltersTheRedactedDocument) {
  MakeQueue("orders", {{"pointers", {"/customer/email", "/card/number"}},
                       {"attributes", {"email"}},
                       {"mode", "hash"}});
  Fail("orders", kEmail);
  Fail("orders", kEmail);
  Fail("orders", "bob@example.com");

  auto items = Query(false);
  ASSERT_EQ(items.size(), 3u);
  for (const auto& d : items) {
    std::string text = d.dump();
    EXPECT_EQ(text.find(kEmail), std::string::npos) << text;
    EXPECT_EQ(text.find(kCard), std::string::npos) << text;
    EXPECT_FALSE(d["redacted"].get<bool>());  // shown redacted, stored as it was
  }
  std::string hash = json::parse(items[0]["body"].get<std::string>())["customer"]["email"];
  EXPECT_EQ(items[0]["attributes"]["email"], hash);
  EXPECT_EQ(items[0]["cause"], "mailbox " + hash + " does not exist");

  // The filter sees what the viewer sees: no oracle on the real value, a match on the hash.
  EXPECT_TRUE(Query(false, "/body/customer/email sw \"a\"").empty());
  EXPECT_TRUE(Query(false, std::string("/attributes/email eq \"") + kEmail + "\"").empty());
  EXPECT_TRUE(Query(false, "/cause co \"alice\"").empty());
  EXPECT_EQ(Query(false, "/body/customer/email eq \"" + hash + "\"").size(), 2u);
  EXPECT_EQ(Query(false, "/attributes/email eq \"" + hash + "\"").size(), 2u);

  // With dlq:read-unredacted: the real values, and filters on them.
  auto real = Query(true, std::string("/attributes/email eq \"") + kEmail + "\"");
  ASSERT_EQ(real.size(), 2u);
  EXPECT_NE(real[0].dump().find(kCard), std::string::npos);

  // One dead letter, and the document for notifications.
  auto one = engine_->dead_letters().GetDeadLetter(viewer_, "acme", items[0]["id"]).value();
  EXPECT_EQ(one.attributes["email"], hash);
  auto raw = engine_->dead_letters().GetDeadLetter(privileged_, "acme", items[0]["id"]).value();
  EXPECT_EQ(raw.attributes["email"], kEmail);
  json doc = engine_->dead_letters().RedactedDocument(raw).value();
  EXPECT_EQ(doc["attributes"]["email"], hash);
  EXPECT_EQ(doc.dump().find(kEmail), std::string::npos);

  // A bulk action's filter is evaluated as its actor sees the dead letters.
  DeadLetterTarget probe;
  probe.filter = "/body/customer/email sw \"alice\"";
  EXPECT_EQ(engine_->dead_letters().DeleteDeadLetters(viewer_, "acme", probe).value().matched, 0);
}

TEST_F(RedactionEngineTest, TheHashKeyIsKeptAcrossRestarts) {
  MakeQueue("orders", {{"attributes", {"email"}}, {"mode", "hash"}});
  Fail("orders", kEmail);
  std::string before = Query(false)[0]["attributes"]["email"];
  engine_.reset();
  store_.reset();
  store_ = store::OpenStore(dir_ + "/db").value();
  engine_ = std::make_unique<Engine>(*store_, clock_, random_);
  EXPECT_EQ(Query(false)[0]["attributes"]["email"], before);
}

TEST_F(RedactionEngineTest, StoreRedactedKeepsNoValueInTheDeadLetterAndRefusesPlainRestores) {
  MakeQueue("orders", {{"pointers", {"/customer/email", "/card/number"}},
                       {"attributes", {"email"}},
                       {"storeRedacted", true}});
  std::string id = Fail("orders", kEmail);
  // As stored: what even dlq:read-unredacted sees.
  auto d = engine_->dead_letters().GetDeadLetter("acme", id).value();
  EXPECT_TRUE(d.redacted);
  EXPECT_EQ(d.attributes["email"], "***");
  EXPECT_EQ(d.cause, "mailbox *** does not exist");
  EXPECT_EQ(d.signature.find(kEmail), std::string::npos);
  for (const auto& a : d.journal.attempts) EXPECT_EQ(a.error.find(kEmail), std::string::npos);
  EXPECT_EQ(d.body.find(kEmail), std::string::npos);
  EXPECT_EQ(d.body.find(kCard), std::string::npos);
  EXPECT_NE(d.body.find(kName), std::string::npos);  // not configured: kept
  EXPECT_EQ(Query(true)[0]["redacted"], true);

  DeadLetterTarget t;
  t.ids = {id};
  auto refused = engine_->dead_letters().RestoreDeadLetters(privileged_, "acme", t);
  EXPECT_EQ(refused.status().code(), ErrorCode::kDeadLetterRedacted) << refused.status().ToString();
  DeadLetterTarget by_filter;
  by_filter.filter = "/origin eq \"orders\"";
  EXPECT_EQ(engine_->dead_letters().RestoreDeadLetters(viewer_, "acme", by_filter).status().code(),
            ErrorCode::kDeadLetterRedacted);
  JobSpec job;
  EXPECT_EQ(engine_->dead_letters().StartJob(viewer_, "acme", job).status().code(),
            ErrorCode::kDeadLetterRedacted);
  EXPECT_EQ(engine_->dead_letters().GetDeadLetter("acme", id).value().seq, d.seq);  // not moved

  t.allow_redacted = true;
  auto restored = engine_->dead_letters().RestoreDeadLetters(viewer_, "acme", t).value();
  EXPECT_EQ(restored.done, 1);
  ReceiveOptions ro;
  auto got = engine_->messages().Receive("acme", "orders", ro).value();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.attributes.at("email"),
            "***");  // redriven unchanged: the values are gone
}

TEST_F(RedactionEngineTest, OverflowDeadLettersAreStoredRedactedToo) {
  QueueConfig c;
  c.max_length = 1;
  c.overflow = OverflowPolicy::kDeadLetterOldest;
  ASSERT_TRUE(ApplyQueueConfigJson(
                  json{{"redaction", {{"attributes", {"email"}}, {"storeRedacted", true}}}}, &c)
                  .ok());
  ASSERT_TRUE(engine_->queues().CreateQueue("acme", "small", c).ok());
  for (const char* email : {kEmail, "bob@example.com"}) {
    NewMessage m;
    m.body = "x";
    m.attributes = {{"email", email}};
    ASSERT_TRUE(engine_->messages().Publish("acme", "small", {m}).ok());
  }
  auto items = Query(true);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]["reason"], kReasonOverflow);
  EXPECT_EQ(items[0]["attributes"]["email"], "***");
  EXPECT_EQ(items[0]["redacted"], true);
}

TEST_F(RedactionEngineTest, AnExportIsWrittenAsItsStarterSeesTheDeadLetters) {
  engine_.reset();
  store_.reset();
  EngineOptions o;
  o.export_dir = dir_ + "/exports";
  store_ = store::OpenStore(dir_ + "/db").value();
  engine_ = std::make_unique<Engine>(*store_, clock_, random_, o);
  MakeQueue("orders", {{"pointers", {"/customer/email"}}, {"attributes", {"email"}}});
  Fail("orders", kEmail);
  auto redacted = engine_->dead_letters().StartExport(viewer_, "acme", ExportSpec{}).value();
  EXPECT_TRUE(redacted.spec.redacted);
  while (engine_->dead_letters().RunExportsOnce().value() > 0) {
  }
  auto file = engine_->dead_letters().GetExportFile(viewer_, "acme", redacted.id, false).value();
  std::stringstream text;
  text << std::ifstream(file.path).rdbuf();
  EXPECT_EQ(text.str().find(kEmail), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("***"), std::string::npos);

  ExportSpec again;
  again.include_exported = true;
  auto plain = engine_->dead_letters().StartExport(privileged_, "acme", again).value();
  EXPECT_FALSE(plain.spec.redacted);
  while (engine_->dead_letters().RunExportsOnce().value() > 0) {
  }
  EXPECT_EQ(engine_->dead_letters().GetExportFile(viewer_, "acme", plain.id, false).status().code(),
            ErrorCode::kForbidden);
  ASSERT_TRUE(engine_->dead_letters().GetExportFile(privileged_, "acme", plain.id, false).ok());
}

TEST(SeesUnredactedTest, OnlyATenantTokenWithTheScope) {
  Principal p{"tok", "acme", {kScopeDlqRead}};
  EXPECT_FALSE(SeesUnredacted(p));
  p.scopes.push_back(kScopeDlqReadUnredacted);
  EXPECT_TRUE(SeesUnredacted(p));
  Principal op{"op", "", {kScopeOperator}};
  EXPECT_FALSE(SeesUnredacted(op));
  EXPECT_EQ(std::count(DefaultTenantScopes().begin(), DefaultTenantScopes().end(),
                       kScopeDlqReadUnredacted),
            0);
}

}  // namespace
}  // namespace redrive::engine
