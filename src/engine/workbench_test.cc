// The dead-letter workbench over a real SQLite store with a manual clock.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "common/text.h"
#include "engine/engine.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

class WorkbenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/workbench-" + std::to_string(getpid()) + "-" +
           std::to_string(counter_++);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Open();
    ASSERT_TRUE(engine_->tenancy().CreateTenant("acme").ok());
    QueueConfig c;
    c.retry.max_deliveries = 1;
    ASSERT_TRUE(engine_->queues().CreateQueue("acme", "orders", c).ok());
    ASSERT_TRUE(engine_->queues().CreateQueue("acme", "billing", c).ok());
    ASSERT_TRUE(engine_->queues().CreateQueue("acme", "repair", c).ok());
    actor_.token_id = "tok_test";
  }
  void TearDown() override {
    engine_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open() {
    engine_.reset();
    store_.reset();
    store_ = store::OpenStore(dir_ + "/db").value();
    engine_ = std::make_unique<Engine>(*store_, clock_, random_);
  }
  // Publishes bodies to `queue` and fails each once with `cause` (max_deliveries 1).
  std::vector<std::string> DeadLetter(const std::string& queue,
                                      const std::vector<std::string>& bodies,
                                      const std::string& cause,
                                      const store::Attributes& attrs = {}) {
    std::vector<NewMessage> msgs;
    for (const auto& b : bodies) {
      NewMessage m;
      m.body = b;
      m.attributes = attrs;
      msgs.push_back(m);
    }
    std::vector<std::string> ids;
    for (size_t i = 0; i < msgs.size(); i += 1000) {
      std::vector<NewMessage> part(
          msgs.begin() + static_cast<long>(i),
          msgs.begin() + static_cast<long>(std::min(msgs.size(), i + 1000)));
      for (const auto& o : engine_->messages().Publish("acme", queue, part).value())
        ids.push_back(o.id);
    }
    ReceiveOptions ro;
    ro.max_messages = 1000;
    for (;;) {
      auto got = engine_->messages().Receive("acme", queue, ro).value();
      if (got.empty()) break;
      std::vector<NackRequest> nacks;
      for (const auto& d : got) {
        NackRequest n;
        n.receipt = d.receipt;
        n.error = cause;
        nacks.push_back(n);
      }
      EXPECT_TRUE(engine_->messages().Nack("acme", queue, nacks).ok());
    }
    return ids;
  }
  int64_t DeadCount(const std::string& filter = "") {
    DeadLetterQuery q;
    q.filter = filter;
    q.total_policy = "EXACT";
    return engine_->dead_letters().QueryDeadLetters("acme", q).value().total;
  }
  std::vector<Delivery> Drain(const std::string& queue) {
    ReceiveOptions ro;
    ro.max_messages = 1000;
    return engine_->messages().Receive("acme", queue, ro).value();
  }

  static inline int counter_ = 0;
  std::string dir_;
  ManualClock clock_;
  SeededRandom random_{3};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Engine> engine_;
  Principal actor_;
};

TEST_F(WorkbenchTest, FailureGroupsSeparateOutagesFromMappingBugs) {
  DeadLetter("orders", {"a", "b", "c"}, "POST https://hook/orders/1001 failed: HTTP 503");
  DeadLetter("orders", {"d"}, "POST https://hook/orders/2002 failed: HTTP 503");
  DeadLetter("orders", {"e", "f"}, "field 'email' of 'jdoe' is invalid");
  auto groups = engine_->dead_letters().ListFailureGroups("acme", "").value();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].row.count, 4);
  EXPECT_NE(groups[0].row.signature.find("HTTP 503"), std::string::npos);
  EXPECT_EQ(groups[1].row.count, 2);
  EXPECT_EQ(groups[1].row.signature,
            "orders | max-deliveries | field '<str>' of '<str>' is invalid");
  auto stats = engine_->dead_letters().GetDeadLetterStats("acme", "").value();
  EXPECT_EQ(stats.total, 6);
  ASSERT_EQ(stats.by_group.size(), 2u);
  EXPECT_EQ(stats.by_group[0].count, 4);
}

TEST_F(WorkbenchTest, QueriesFilterProjectSortAndPage) {
  DeadLetter("orders", {R"({"customer":{"tier":"gold"}})", R"({"customer":{"tier":"free"}})"},
             "boom", {{"region", "eu-west"}});
  DeadLetter("billing", {"x", "y", "z"}, "card declined", {{"region", "us-east"}});
  DeadLetterQuery q;
  q.filter = R"(/attributes/region sw "eu" and /body/customer/tier eq "gold")";
  q.fields = "origin,body";
  auto r = engine_->dead_letters().QueryDeadLetters("acme", q).value();
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0]["origin"], "orders");
  EXPECT_TRUE(r.items[0].contains("id"));
  EXPECT_FALSE(r.items[0].contains("reason")) << "_fields projects";
  EXPECT_EQ(r.total, -1) << "a filter on bodies is not counted unless asked";

  q = DeadLetterQuery{};
  q.filter = R"(/origin eq "billing")";
  q.sort_keys = "-body";
  q.page_size = 2;
  auto p1 = engine_->dead_letters().QueryDeadLetters("acme", q).value();
  ASSERT_EQ(p1.items.size(), 2u);
  EXPECT_EQ(p1.items[0]["body"], "z");
  EXPECT_EQ(p1.items[1]["body"], "y");
  EXPECT_EQ(p1.total, 3);
  q.cookie = p1.next_cookie;
  auto p2 = engine_->dead_letters().QueryDeadLetters("acme", q).value();
  ASSERT_EQ(p2.items.size(), 1u);
  EXPECT_EQ(p2.items[0]["body"], "x");
  EXPECT_TRUE(p2.next_cookie.empty());

  // A timestamp without milliseconds still compares by time, and the index serves it.
  q = DeadLetterQuery{};
  q.filter = "/deadLetteredAt ge \"" + FormatTime(clock_.Now() / 1000 * 1000).substr(0, 19) +
             "Z\" and /origin eq \"billing\"";
  auto timed = engine_->dead_letters().QueryDeadLetters("acme", q).value();
  EXPECT_EQ(timed.items.size(), 3u);
  EXPECT_EQ(timed.total, 3);
  EXPECT_EQ(engine_->dead_letters().ListFailureGroups("acme", "nope").status().code(),
            ErrorCode::kQueueNotFound);

  q = DeadLetterQuery{};
  q.filter = R"(/origin eq "billing" and /reason eq "max-deliveries")";
  EXPECT_EQ(engine_->dead_letters().QueryDeadLetters("acme", q).value().total, 3)
      << "indexed: counted";
  q.filter = R"(/origin eq "billing" and (/reason eq "max-deliveries")";
  auto bad = engine_->dead_letters().QueryDeadLetters("acme", q);
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidQuery);
  EXPECT_NE(bad.status().message().find("position"), std::string::npos) << bad.status().message();
}

// Regression: a filter the index seemed to answer matched everything for an empty value, two
// conflicting values, or a bound past year 9999 (so a bulk delete could remove it all).
TEST_F(WorkbenchTest, FiltersTheIndexCannotDecideAreEvaluatedRowByRow) {
  DeadLetter("orders", {"a", "b"}, "boom");
  for (const char* f : {R"(/origin eq "")", R"(/origin eq "orders" and /origin eq "billing")",
                        R"(/deadLetteredAt gt "9999-12-31T23:59:59.999Z")"}) {
    EXPECT_EQ(DeadCount(f), 0) << f;
    DeadLetterTarget t;
    t.filter = f;
    EXPECT_EQ(engine_->dead_letters().DeleteDeadLetters(actor_, "acme", t).value().done, 0) << f;
  }
  EXPECT_EQ(DeadCount(), 2);
}

TEST_F(WorkbenchTest, ExplicitIdsStayWithinTheTargetsScope) {
  auto ids = DeadLetter("orders", {"a"}, "boom");
  DeadLetterTarget t;
  t.ids = ids;
  t.dlq = "elsewhere";
  EXPECT_EQ(engine_->dead_letters().RestoreDeadLetters(actor_, "acme", t).status().code(),
            ErrorCode::kDeadLetterNotFound);
  t.dlq = "";
  t.since = clock_.Now() + 1;
  EXPECT_EQ(engine_->dead_letters().DeleteDeadLetters(actor_, "acme", t).status().code(),
            ErrorCode::kDeadLetterNotFound);
  EXPECT_EQ(DeadCount(), 1);
}

TEST_F(WorkbenchTest, RestoreKeepsTheMessageAndRecordsLineage) {
  store::Attributes attrs = {{"k", "v"}};
  std::vector<NewMessage> m(1);
  m[0].body = "payload";
  m[0].attributes = attrs;
  m[0].idempotency_key = "idem-1";
  TimeMs published = clock_.Now();
  std::string id = engine_->messages().Publish("acme", "orders", m).value()[0].id;
  clock_.Advance(1000);
  NackRequest n;
  n.receipt = Drain("orders")[0].receipt;
  n.dead_letter = true;
  ASSERT_TRUE(engine_->messages().Nack("acme", "orders", {n}).value()[0].ok());

  DeadLetterTarget t;
  t.ids = {id};
  auto r = engine_->dead_letters().RestoreDeadLetters(actor_, "acme", t).value();
  EXPECT_EQ(r.matched, 1);
  EXPECT_EQ(r.done, 1);
  auto back = Drain("orders");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].message.id, id);
  EXPECT_EQ(back[0].message.body, "payload");
  EXPECT_EQ(back[0].message.attributes, attrs);
  EXPECT_EQ(back[0].message.idempotency_key, "idem-1");
  EXPECT_EQ(back[0].message.published_at, published);
  EXPECT_EQ(back[0].message.delivery_count, 1);
  EXPECT_EQ(back[0].message.lineage.redrive_count, 1);
  EXPECT_EQ(back[0].message.lineage.last_redriven_by, "request:tok_test");
  // Idempotent: the second restore finds nothing, cleanly.
  EXPECT_EQ(engine_->dead_letters().RestoreDeadLetters(actor_, "acme", t).status().code(),
            ErrorCode::kDeadLetterNotFound);
  // Fails again: the dead letter carries its lineage and its whole journal.
  NackRequest again;
  again.receipt = back[0].receipt;
  again.error = "still broken";
  ASSERT_TRUE(engine_->messages().Nack("acme", "orders", {again}).ok());
  auto dl = engine_->dead_letters().GetDeadLetter("acme", id).value();
  EXPECT_EQ(dl.lineage.redrive_count, 1);
  EXPECT_EQ(dl.journal.attempts.size(), 2u);
}

TEST_F(WorkbenchTest, RerouteKeepsTheOriginalDestination) {
  auto ids = DeadLetter("orders", {"a", "b"}, "mapping bug");
  DeadLetterTarget t;
  t.filter = R"(/origin eq "orders")";
  auto r = engine_->dead_letters().RerouteDeadLetters(actor_, "acme", t, "repair").value();
  EXPECT_EQ(r.done, 2);
  auto got = Drain("repair");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].message.lineage.original_queue, "orders");
  EXPECT_TRUE(Drain("orders").empty());
  EXPECT_EQ(
      engine_->dead_letters().RerouteDeadLetters(actor_, "acme", t, "dead-letters").status().code(),
      ErrorCode::kDeadLetterQueueReadOnly);
  EXPECT_EQ(engine_->dead_letters().RerouteDeadLetters(actor_, "acme", t, "nope").status().code(),
            ErrorCode::kQueueNotFound);
}

TEST_F(WorkbenchTest, ADestinationThatRefusesLeavesTheMessageDeadLettered) {
  auto ids = DeadLetter("orders", {std::string(100, 'x'), "small"}, "boom");
  QueueConfig strict;
  strict.retry.max_deliveries = 1;
  strict.max_message_size = 10;
  ASSERT_TRUE(engine_->queues().UpdateQueue("acme", "orders", strict).ok());
  DeadLetterTarget t;
  t.filter = "true";
  auto r = engine_->dead_letters().RestoreDeadLetters(actor_, "acme", t).value();
  EXPECT_EQ(r.matched, 2);
  EXPECT_EQ(r.done, 1);
  EXPECT_EQ(r.skipped, 1);
  ASSERT_EQ(r.skipped_items.size(), 1u);
  EXPECT_EQ(r.skipped_items[0].reason, "too-large");
  auto kept = engine_->dead_letters().GetDeadLetter("acme", ids[0]).value();
  EXPECT_NE(kept.redrive_error.find("too-large"), std::string::npos);
}

TEST_F(WorkbenchTest, DeleteAndPurgeAreTargetedAndConfirmed) {
  auto ids = DeadLetter("orders", {"a", "b", "c"}, "boom");
  DeadLetterTarget t;
  t.ids = {ids[0], "01NOTTHERE"};
  auto r = engine_->dead_letters().DeleteDeadLetters(actor_, "acme", t).value();
  EXPECT_EQ(r.done, 1);
  EXPECT_EQ(r.skipped, 1);
  EXPECT_EQ(
      engine_->dead_letters().DeleteDeadLetters(actor_, "acme", DeadLetterTarget{}).status().code(),
      ErrorCode::kInvalidArgument);
  EXPECT_EQ(engine_->dead_letters()
                .PurgeDeadLetterQueue(actor_, "acme", "dead-letters", "yes")
                .status()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(DeadCount(), 2);
  auto p = engine_->dead_letters()
               .PurgeDeadLetterQueue(actor_, "acme", "dead-letters", "dead-letters")
               .value();
  EXPECT_EQ(p.done, 2);
  EXPECT_EQ(DeadCount(), 0);
}

TEST_F(WorkbenchTest, DeadLettersExpireAfterTheirQueuesRetention) {
  QueueConfig shortlived;
  shortlived.retry.max_deliveries = 1;
  shortlived.dead_letter_retention = 3'600'000;
  ASSERT_TRUE(engine_->queues().CreateQueue("acme", "brief", shortlived).ok());
  DeadLetter("brief", {"a"}, "boom");
  DeadLetter("orders", {"b"}, "boom");  // the server default: 7 days
  clock_.Advance(3'600'000);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  EXPECT_EQ(DeadCount(R"(/origin eq "brief")"), 0);
  EXPECT_EQ(DeadCount(R"(/origin eq "orders")"), 1);
  clock_.Advance(7 * 86'400'000LL);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  EXPECT_EQ(DeadCount(), 0);
}

TEST_F(WorkbenchTest, DryRunCountsAndMovesNothing) {
  DeadLetter("orders", {"a", "b"}, "boom");
  DeadLetter("billing", {"c"}, "boom");
  JobSpec spec;
  auto dry = engine_->dead_letters().DryRunJob("acme", spec).value();
  EXPECT_EQ(dry.to_move, 3);
  EXPECT_EQ(dry.destinations["orders"], 2);
  EXPECT_EQ(dry.destinations["billing"], 1);
  EXPECT_EQ(dry.sample.size(), 3u);
  EXPECT_EQ(DeadCount(), 3);
}

TEST_F(WorkbenchTest, JobRestoresEverythingAndCompletes) {
  std::vector<std::string> bodies;
  for (int i = 0; i < 1200; ++i) bodies.push_back("m" + std::to_string(i));
  DeadLetter("orders", bodies, "boom");
  auto job = engine_->dead_letters().StartJob(actor_, "acme", JobSpec{}).value();
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.to_move, 1200);
  EXPECT_EQ(engine_->dead_letters().StartJob(actor_, "acme", JobSpec{}).status().code(),
            ErrorCode::kJobActive);
  for (int i = 0;
       i < 10 && engine_->dead_letters().GetJob("acme", job.id).value().state == JobState::kRunning;
       ++i) {
    ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  }
  auto done = engine_->dead_letters().GetJob("acme", job.id).value();
  EXPECT_EQ(done.state, JobState::kCompleted);
  EXPECT_EQ(done.moved, 1200);
  EXPECT_GT(done.finished_at, 0);
  EXPECT_EQ(DeadCount(), 0);
  EXPECT_EQ(Drain("orders").size(), 1000u);
}

TEST_F(WorkbenchTest, JobHonoursItsRate) {
  std::vector<std::string> bodies(50, "m");
  DeadLetter("orders", bodies, "boom");
  JobSpec spec;
  spec.rate = 10;
  auto job = engine_->dead_letters().StartJob(actor_, "acme", spec).value();
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());  // primes the bucket
  clock_.Advance(1000);
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  EXPECT_EQ(engine_->dead_letters().GetJob("acme", job.id).value().moved, 10);
  clock_.Advance(2000);  // the bucket holds at most one second
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  EXPECT_EQ(engine_->dead_letters().GetJob("acme", job.id).value().moved, 20);
}

TEST_F(WorkbenchTest, ACanaryCountOutsideItsRangeIsRefusedAndStartsNothing) {
  DeadLetter("orders", {"a"}, "boom");
  for (int64_t count : {int64_t{0}, int64_t{-1}, int64_t{kMaxCanary} + 1, int64_t{1} << 40}) {
    JobSpec spec;
    spec.canary = count;
    auto job = engine_->dead_letters().StartJob(actor_, "acme", spec);
    ASSERT_FALSE(job.ok()) << count;
    EXPECT_EQ(job.status().code(), ErrorCode::kInvalidArgument) << count;
    EXPECT_NE(job.status().message().find("canary.count"), std::string::npos);
    EXPECT_EQ(engine_->dead_letters().DryRunJob("acme", spec).status().code(),
              ErrorCode::kInvalidArgument);
  }
  EXPECT_TRUE(engine_->dead_letters().ListJobs("acme").value().empty());
  JobSpec spec;
  spec.canary = kMaxCanary;
  EXPECT_TRUE(engine_->dead_letters().StartJob(actor_, "acme", spec).ok());
}

TEST_F(WorkbenchTest, CanaryHaltsWhenTheFixDidNotWorkAndResumeContinues) {
  std::vector<std::string> bodies(20, "m");
  DeadLetter("orders", bodies, "endpoint down");
  JobSpec spec;
  spec.canary = 5;
  spec.canary_wait = 10'000;
  spec.canary_max_failure = 0.2;
  auto job = engine_->dead_letters().StartJob(actor_, "acme", spec).value();
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  auto info = engine_->dead_letters().GetJob("acme", job.id).value();
  EXPECT_EQ(info.moved, 5);
  EXPECT_EQ(info.phase, JobPhase::kCanaryWait);
  // The endpoint is still down: the canary fails again.
  auto canary = Drain("orders");
  ASSERT_EQ(canary.size(), 5u);
  std::vector<NackRequest> nacks;
  for (const auto& d : canary) {
    NackRequest n;
    n.receipt = d.receipt;
    n.error = "endpoint down";
    nacks.push_back(n);
  }
  ASSERT_TRUE(engine_->messages().Nack("acme", "orders", nacks).ok());
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  EXPECT_EQ(engine_->dead_letters().GetJob("acme", job.id).value().state, JobState::kRunning)
      << "still waiting";
  clock_.Advance(10'000);
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  info = engine_->dead_letters().GetJob("acme", job.id).value();
  EXPECT_EQ(info.state, JobState::kHalted);
  EXPECT_NE(info.halt_reason.find("5 of 5"), std::string::npos) << info.halt_reason;
  EXPECT_EQ(info.failed_again, 5);
  EXPECT_EQ(engine_->dead_letters().CancelJob(actor_, "acme", "job_nope").status().code(),
            ErrorCode::kJobNotFound);
  // The operator fixed the endpoint and resumes: the rest moves; the canary's re-failures
  // (dead-lettered after the job's snapshot) are not picked up again.
  ASSERT_TRUE(engine_->dead_letters().ResumeJob(actor_, "acme", job.id).ok());
  EXPECT_EQ(engine_->dead_letters().ResumeJob(actor_, "acme", job.id).status().code(),
            ErrorCode::kJobStateConflict);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  info = engine_->dead_letters().GetJob("acme", job.id).value();
  EXPECT_EQ(info.state, JobState::kCompleted);
  EXPECT_EQ(info.moved, 20);
  EXPECT_EQ(DeadCount(), 5);
}

TEST_F(WorkbenchTest, CancelStopsAndLeavesWhatMovedMoved) {
  std::vector<std::string> bodies(30, "m");
  DeadLetter("orders", bodies, "boom");
  JobSpec spec;
  spec.rate = 10;
  auto job = engine_->dead_letters().StartJob(actor_, "acme", spec).value();
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  clock_.Advance(1000);
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  EXPECT_EQ(engine_->dead_letters().CancelJob(actor_, "acme", job.id).value().state,
            JobState::kCancelling);
  clock_.Advance(1000);
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  auto info = engine_->dead_letters().GetJob("acme", job.id).value();
  EXPECT_EQ(info.state, JobState::kCancelled);
  EXPECT_EQ(info.moved, 10);
  EXPECT_EQ(DeadCount(), 20);
  EXPECT_EQ(Drain("orders").size(), 10u);
  EXPECT_EQ(engine_->dead_letters().CancelJob(actor_, "acme", job.id).status().code(),
            ErrorCode::kJobStateConflict);
  EXPECT_TRUE(engine_->dead_letters().StartJob(actor_, "acme", JobSpec{}).ok())
      << "the scope is free again";
}

// Regression: a job was bounded by the highest seq when it started, and SQLite gave a new dead
// letter the seq of a deleted highest one, inside that bound: the job moved a dead letter made
// after it started. A job covers the dead letters of its snapshot, and ends while others keep
// arriving.
TEST_F(WorkbenchTest, AJobMovesOnlyTheDeadLettersThatExistedWhenItStarted) {
  auto ids = DeadLetter("orders", {"a", "b", "c", "d"}, "boom");
  JobSpec spec;
  spec.rate = 1;  // one a second: the job takes several steps
  auto job = engine_->dead_letters().StartJob(actor_, "acme", spec).value();
  EXPECT_EQ(job.to_move, 4);
  DeadLetterTarget newest;
  newest.ids = {ids.back()};
  ASSERT_EQ(engine_->dead_letters().DeleteDeadLetters(actor_, "acme", newest).value().done, 1);
  // Dead letters made after the start, in the job's dead-letter queue (from another origin,
  // so that draining "orders" below shows what the job restored).
  std::vector<std::string> later = DeadLetter("billing", {"e", "f"}, "boom");
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());  // primes the rate bucket
  for (int i = 0;
       i < 20 && engine_->dead_letters().GetJob("acme", job.id).value().state == JobState::kRunning;
       ++i) {
    clock_.Advance(1000);
    ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
    auto more = DeadLetter("billing", {"g" + std::to_string(i)}, "boom");
    later.insert(later.end(), more.begin(), more.end());
  }
  auto done = engine_->dead_letters().GetJob("acme", job.id).value();
  EXPECT_EQ(done.state, JobState::kCompleted);
  EXPECT_EQ(done.moved, 3);
  for (const auto& id : later) {
    EXPECT_TRUE(engine_->dead_letters().GetDeadLetter("acme", id).ok())
        << id << " was made after the start";
  }
  std::set<std::string> restored;
  for (const auto& d : Drain("orders")) restored.insert(d.message.id);
  EXPECT_EQ(restored, (std::set<std::string>{ids[0], ids[1], ids[2]}));
}

// Regression: the runner overwrote a cancel that arrived while it moved a chunk.
TEST_F(WorkbenchTest, ACancelDuringAChunkIsNotLost) {
  std::vector<std::string> bodies(30, "m");
  DeadLetter("orders", bodies, "boom");
  auto job = engine_->dead_letters().StartJob(actor_, "acme", JobSpec{}).value();
  // The runner read the job as running; then the operator cancels; then the runner saves.
  auto stale = store_->GetJob("acme", job.id).value().value();
  ASSERT_EQ(engine_->dead_letters().CancelJob(actor_, "acme", job.id).value().state,
            JobState::kCancelling);
  stale.progress_json = R"({"moved":5,"phase":"bulk"})";
  EXPECT_FALSE(store_->UpdateJob(stale, JobState::kRunning).value());
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  EXPECT_EQ(engine_->dead_letters().GetJob("acme", job.id).value().state, JobState::kCancelled);
  EXPECT_EQ(DeadCount(), 30) << "a cancelled job moves nothing more";
}

TEST_F(WorkbenchTest, JobsSurviveARestart) {
  std::vector<std::string> bodies(30, "m");
  DeadLetter("orders", bodies, "boom");
  JobSpec spec;
  spec.rate = 10;
  auto job = engine_->dead_letters().StartJob(actor_, "acme", spec).value();
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  clock_.Advance(1000);
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  Open();  // the process restarts
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(1000);
    ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());
  }
  auto info = engine_->dead_letters().GetJob("acme", job.id).value();
  EXPECT_EQ(info.state, JobState::kCompleted);
  EXPECT_EQ(info.moved, 30);
  EXPECT_EQ(Drain("orders").size(), 30u) << "nothing lost, nothing duplicated";
}

TEST_F(WorkbenchTest, EveryActionIsAudited) {
  auto ids = DeadLetter("orders", {"a", "b", "c"}, "boom");
  DeadLetterTarget one;
  one.ids = {ids[0]};
  ASSERT_TRUE(engine_->dead_letters().DeleteDeadLetters(actor_, "acme", one).ok());
  one.ids = {ids[1]};
  ASSERT_TRUE(engine_->dead_letters().RestoreDeadLetters(actor_, "acme", one).ok());
  auto job = engine_->dead_letters().StartJob(actor_, "acme", JobSpec{}).value();
  ASSERT_TRUE(engine_->dead_letters().CancelJob(actor_, "acme", job.id).ok());
  AuditQuery q;
  q.filter = R"(!(/action sw "queue."))";  // the fixture's queues are audited too
  auto all = engine_->dead_letters().QueryAudit("acme", q).value();
  std::vector<std::string> actions;
  for (const auto& a : all.items) actions.push_back(a["action"]);
  ASSERT_TRUE(engine_->dead_letters().RunJobsOnce().ok());  // the runner finishes the cancellation
  all = engine_->dead_letters().QueryAudit("acme", q).value();
  actions.clear();
  for (const auto& a : all.items) actions.push_back(a["action"]);
  EXPECT_EQ(actions, (std::vector<std::string>{"dead-letter.delete", "dead-letter.restore",
                                               "job.start", "job.cancel", "job.cancelled"}));
  EXPECT_EQ(all.items[0]["actor"], "tok_test");
  EXPECT_EQ(all.items[0]["detail"]["result"]["done"], 1);
  // ids given twice count once
  DeadLetterTarget twice;
  twice.ids = {ids[2], ids[2]};
  auto r = engine_->dead_letters().DeleteDeadLetters(actor_, "acme", twice).value();
  EXPECT_EQ(r.matched, 1);
  EXPECT_EQ(r.skipped, 0);
  q.filter = R"(/action sw "job.")";
  q.page_size = 1;
  auto p1 = engine_->dead_letters().QueryAudit("acme", q).value();
  ASSERT_EQ(p1.items.size(), 1u);
  q.cookie = p1.next_cookie;
  auto p2 = engine_->dead_letters().QueryAudit("acme", q).value();
  ASSERT_EQ(p2.items.size(), 1u);
  EXPECT_EQ(p2.items[0]["action"], "job.cancel");
}

// Consumers, a redrive job and deletes run together; at the end every message is accounted
// for exactly once: acked, still dead-lettered, or deleted.
TEST_F(WorkbenchTest, ConcurrentConsumersJobAndDeletesLoseNothing) {
  SystemClock real;
  SeededRandom rnd(9);
  std::string dir = dir_ + "/concurrent";
  std::filesystem::create_directories(dir);
  auto store = store::OpenStore(dir + "/db").value();
  Engine engine(*store, real, rnd);
  ASSERT_TRUE(engine.tenancy().CreateTenant("acme").ok());
  QueueConfig c;
  c.retry.max_deliveries = 1;
  ASSERT_TRUE(engine.queues().CreateQueue("acme", "work", c).ok());
  constexpr int kMessages = 600;
  std::vector<NewMessage> batch(kMessages);
  for (int i = 0; i < kMessages; ++i) batch[static_cast<size_t>(i)].body = std::to_string(i);
  std::set<std::string> all;
  for (const auto& o : engine.messages().Publish("acme", "work", batch).value()) all.insert(o.id);
  engine.Start();

  std::mutex mu;
  std::multiset<std::string> acked, deleted;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      int n = 0;
      while (!stop) {
        ReceiveOptions ro;
        ro.max_messages = 20;
        ro.wait = 50;
        auto got = engine.messages().Receive("acme", "work", ro);
        if (!got.ok()) continue;
        for (const auto& d : got.value()) {
          if (++n % 3 == t % 3) {  // a third fail and dead-letter
            NackRequest nr;
            nr.receipt = d.receipt;
            nr.error = "boom";
            (void)engine.messages().Nack("acme", "work", {nr});
          } else if (engine.messages().Ack("acme", "work", {d.receipt}).value()[0].ok()) {
            std::lock_guard<std::mutex> l(mu);
            acked.insert(d.message.id);
          }
        }
      }
    });
  }
  threads.emplace_back([&] {
    Principal p{"tok_ops", "acme", {}};
    while (!stop) {
      DeadLetterQuery q;
      q.page_size = 5;
      auto page = engine.dead_letters().QueryDeadLetters("acme", q);
      if (page.ok() && !page->items.empty()) {
        DeadLetterTarget t;
        t.ids = {page->items[0]["id"].get<std::string>()};
        auto r = engine.dead_letters().DeleteDeadLetters(p, "acme", t);
        if (r.ok() && r->done == 1) {
          std::lock_guard<std::mutex> l(mu);
          deleted.insert(t.ids[0]);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  Principal ops{"tok_ops", "acme", {}};
  for (int round = 0; round < 4; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    auto job = engine.dead_letters().StartJob(ops, "acme", JobSpec{});
    if (!job.ok()) continue;  // one still active
  }
  // Let the work settle: no job active, nothing left to deliver.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    auto jobs = engine.dead_letters().ListJobs("acme").value();
    bool active = std::any_of(jobs.begin(), jobs.end(), [](const JobInfo& j) {
      return j.state == JobState::kRunning || j.state == JobState::kCancelling;
    });
    auto d = engine.queues().GetQueue("acme", "work").value().depth;
    if (!active && d.ready + d.delayed + d.leased == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop = true;
  for (auto& t : threads) t.join();
  engine.Stop();

  DeadLetterQuery q;
  q.page_size = 1000;
  q.fields = "id";
  std::set<std::string> dead;
  for (const auto& d : engine.dead_letters().QueryDeadLetters("acme", q).value().items)
    dead.insert(d["id"]);
  auto d = engine.queues().GetQueue("acme", "work").value().depth;
  EXPECT_EQ(d.ready + d.delayed + d.leased, 0);
  for (const auto& id : all) {
    size_t places = acked.count(id) + deleted.count(id) + dead.count(id);
    EXPECT_EQ(places, 1u) << id << " acked " << acked.count(id) << " deleted " << deleted.count(id)
                          << " dead " << dead.count(id);
  }
  EXPECT_GT(deleted.size(), 0u);
  EXPECT_GT(acked.size(), 0u);
}

}  // namespace
}  // namespace redrive::engine
