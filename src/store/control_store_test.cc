// Conformance suite, control port (control_store.h): tenancy, queues, dead letters, audit, jobs.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "store/store_test_fixture.h"

namespace redrive::store {
namespace {

TEST_P(StoreTest, TenantsAreUniqueAndListed) {
  EXPECT_EQ(store_->CreateTenant({"acme", kNow}).code(), ErrorCode::kAlreadyExists);
  ASSERT_TRUE(store_->CreateTenant({"beta", kNow}).ok());
  auto all = store_->ListTenants().value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "acme");
  EXPECT_TRUE(store_->GetTenant("beta").value().has_value());
  EXPECT_FALSE(store_->GetTenant("gamma").value().has_value());
}

TEST_P(StoreTest, TokensAreFoundByHashAndRevokedOnce) {
  TokenRecord t{"tok_1", "acme", "ci", "hash1", {"publish", "consume"}, kNow, 0};
  ASSERT_TRUE(store_->CreateToken(t).ok());
  auto found = store_->FindTokenByHash("hash1").value();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->scopes, (std::vector<std::string>{"publish", "consume"}));
  EXPECT_FALSE(store_->FindTokenByHash("nope").value().has_value());
  EXPECT_FALSE(store_->RevokeToken("other", "tok_1", kNow).value());
  EXPECT_TRUE(store_->RevokeToken("acme", "tok_1", kNow).value());
  EXPECT_FALSE(store_->RevokeToken("acme", "tok_1", kNow).value());
  EXPECT_EQ(store_->FindTokenByHash("hash1").value()->revoked_at, kNow);
  EXPECT_EQ(store_->ListTokens("acme").value().size(), 1u);
}

TEST_P(StoreTest, QueuesAreUniquePerTenantAndUpdatable) {
  auto dup = store_->CreateQueue({0, "acme", "orders", QueueKind::kStandard, "{}", kNow, kNow});
  EXPECT_EQ(dup.status().code(), ErrorCode::kAlreadyExists);
  ASSERT_TRUE(store_->CreateTenant({"beta", kNow}).ok());
  EXPECT_TRUE(
      store_->CreateQueue({0, "beta", "orders", QueueKind::kStandard, "{}", kNow, kNow}).ok());
  auto q = store_->GetQueue("acme", "orders").value();
  ASSERT_TRUE(q.has_value());
  q->config_json = R"({"x":1})";
  q->updated_at = kNow + 5;
  EXPECT_TRUE(store_->UpdateQueue(*q).value());
  EXPECT_EQ(store_->GetQueueById(queue_id_).value()->config_json, R"({"x":1})");
  EXPECT_EQ(store_->ListQueues("acme").value().size(), 1u);
}

TEST_P(StoreTest, DeadLettersListByFilterAndPage) {
  ASSERT_TRUE(store_->Publish(Pub({Msg("a"), Msg("b"), Msg("c")})).ok());
  auto leased = LeaseN(3);
  const char* reasons[] = {"rejected", "max-deliveries", "rejected"};
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(DeadLetter(store_.get(), queue_id_, {leased[i].seq, leased[i].lease_token}, {},
                           {"dead-letters", reasons[i], "x", kNow, 0})
                    .value());
  }
  DeadLetterScan q;
  q.tenant = "acme";
  q.reason = "rejected";
  auto rejected = store_->ScanDeadLetters(q).value();
  ASSERT_EQ(rejected.size(), 2u);
  EXPECT_EQ(rejected[0].id, "a");
  EXPECT_EQ(rejected[1].id, "c");
  q = DeadLetterScan{};
  q.tenant = "acme";
  q.limit = 2;
  auto page1 = store_->ScanDeadLetters(q).value();
  ASSERT_EQ(page1.size(), 2u);
  q.after_seq = page1.back().seq;
  auto page2 = store_->ScanDeadLetters(q).value();
  ASSERT_EQ(page2.size(), 1u);
  EXPECT_EQ(page2[0].id, "c");
  q = DeadLetterScan{};
  q.tenant = "other";
  EXPECT_TRUE(store_->ScanDeadLetters(q).value().empty());
}

TEST_P(StoreTest, DeleteQueueRemovesItsMessagesButNotItsDeadLetters) {
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1"), Msg("m2")})).ok());
  auto m = LeaseN(1)[0];
  ASSERT_TRUE(DeadLetter(store_.get(), queue_id_, {m.seq, m.lease_token}, {},
                         {"dead-letters", "rejected", "x", kNow, 0})
                  .value());
  EXPECT_TRUE(store_->DeleteQueue(queue_id_).value());
  EXPECT_FALSE(store_->DeleteQueue(queue_id_).value());
  EXPECT_FALSE(store_->GetQueue("acme", "orders").value().has_value());
  EXPECT_TRUE(store_->GetDeadLetter("acme", "m1").value().has_value());
  EXPECT_EQ(Depth().ready, 0);
}

// Dead-letters n messages of the fixture queue with the given reason and group.
#define DEAD_LETTER_N(n, reason, group)                                                         \
  do {                                                                                          \
    std::vector<MessageRecord> msgs;                                                            \
    for (int i = 0; i < (n); ++i)                                                               \
      msgs.push_back(Msg(std::string(group) + std::to_string(i), "payload"));                   \
    ASSERT_TRUE(store_->Publish(Pub(msgs)).ok());                                               \
    for (auto& m : LeaseN(n)) {                                                                 \
      DeathInfo d{"dead-letters", reason, "boom", kNow, 0, group, std::string("sig-") + group}; \
      ASSERT_TRUE(DeadLetter(store_.get(), queue_id_, {m.seq, m.lease_token}, {}, d).value());  \
    }                                                                                           \
  } while (0)

TEST_P(StoreTest, FailureGroupsAndStatsCountDeadLetters) {
  DEAD_LETTER_N(3, "max-deliveries", "g1");
  DEAD_LETTER_N(2, "rejected", "g2");
  auto groups = store_->ListFailureGroups("acme", "").value();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].group_id, "g1");
  EXPECT_EQ(groups[0].count, 3);
  EXPECT_EQ(groups[0].signature, "sig-g1");
  EXPECT_EQ(groups[0].origin, "orders");
  EXPECT_EQ(groups[0].sample_ids.size(), 3u);
  auto stats = store_->GetDeadLetterStats("acme", "", "").value();
  EXPECT_EQ(stats.total, 5);
  ASSERT_EQ(stats.by_reason.size(), 2u);
  EXPECT_EQ(stats.by_reason[0].key, "max-deliveries");
  EXPECT_EQ(stats.by_reason[0].count, 3);
  ASSERT_EQ(stats.by_hour.size(), 1u);
  EXPECT_EQ(stats.by_hour[0].key, std::to_string((kNow / 3'600'000) * 3'600'000));
  EXPECT_TRUE(store_->ListFailureGroups("other", "").value().empty());
}

TEST_P(StoreTest, ScansNarrowByIndexedColumnsAndPage) {
  DEAD_LETTER_N(3, "max-deliveries", "g1");
  DEAD_LETTER_N(2, "rejected", "g2");
  DeadLetterScan scan;
  scan.tenant = "acme";
  scan.reason = "rejected";
  EXPECT_EQ(store_->CountDeadLetters(scan).value(), 2);
  scan = DeadLetterScan{};
  scan.tenant = "acme";
  scan.group_id = "g1";
  scan.limit = 2;
  auto page = store_->ScanDeadLetters(scan).value();
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].group_id, "g1");
  scan.after_seq = page.back().seq;
  EXPECT_EQ(store_->ScanDeadLetters(scan).value().size(), 1u);
  scan = DeadLetterScan{};
  scan.tenant = "acme";
  scan.since = kNow + 1;
  EXPECT_EQ(store_->CountDeadLetters(scan).value(), 0);
  scan.since = kNow;
  scan.until = kNow + 1;
  EXPECT_EQ(store_->CountDeadLetters(scan).value(), 5);
  scan.snapshot = store_->SnapshotDeadLetters("acme").value();
  scan.snapshot.max_seq -= 1;
  EXPECT_EQ(store_->CountDeadLetters(scan).value(), 4);
}

// ---- snapshots of the dead letters (control_store.h, SnapshotDeadLetters): exactly what was
// committed when it was taken, whatever seq later dead letters get and whenever they commit.

// Regression: SQLite gave a new dead letter the seq of a deleted highest one, so a dead letter
// made after a snapshot fell inside its bound (and a redrive job took it).
TEST_P(StoreTest, ASnapshotHoldsTheDeadLettersCommittedBeforeItAndNoLaterOne) {
  EXPECT_EQ(store_->SnapshotDeadLetters("acme").value().max_seq, 0) << "none yet";
  DEAD_LETTER_N(3, "rejected", "g");
  auto before = store_->ScanDeadLetters(DeadLetterScan{"acme"}).value();
  ASSERT_EQ(before.size(), 3u);
  auto snapshot = store_->SnapshotDeadLetters("acme").value();
  EXPECT_EQ(snapshot.max_seq, before.back().seq);
  // The highest goes, new ones come.
  ASSERT_TRUE(store_->DeleteDeadLetters("acme", {before.back().seq}).value()[0]);
  DEAD_LETTER_N(2, "rejected", "h");
  DeadLetterScan scan{"acme"};
  scan.snapshot = snapshot;
  auto in = store_->ScanDeadLetters(scan).value();
  ASSERT_EQ(in.size(), 2u);
  EXPECT_EQ(in[0].id, before[0].id);
  EXPECT_EQ(in[1].id, before[1].id);
  EXPECT_EQ(store_->CountDeadLetters(scan).value(), 2);
  int64_t highest = 0;
  for (const auto& d : store_->ScanDeadLetters(DeadLetterScan{"acme"}).value()) {
    if (d.group_id == "h") EXPECT_GT(d.seq, snapshot.max_seq) << d.id;
    highest = std::max(highest, d.seq);
  }
  // Not even once every dead letter is gone, nor across a reopen.
  ASSERT_EQ(store_->PurgeDeadLetters("acme", "dead-letters").value(), 4);
  Reopen();
  DEAD_LETTER_N(1, "rejected", "k");
  auto fresh = store_->ScanDeadLetters(DeadLetterScan{"acme"}).value();
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_GT(fresh[0].seq, highest) << "a seq is never given twice";
}

// A snapshot scanned while dead letters keep committing, and again afterwards, holds the same
// dead letters: nothing committed after it appears in it later, whatever its seq.
TEST_P(StoreTest, ASnapshotStaysFixedWhileDeadLettersArrive) {
  DEAD_LETTER_N(5, "rejected", "a");
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 100; ++i) {
      auto r = store_->Publish(Pub({Msg("w" + std::to_string(i))}));
      EXPECT_TRUE(r.ok());
      auto leased = LeaseN(1);
      if (leased.size() != 1u) continue;
      EXPECT_TRUE(DeadLetter(store_.get(), queue_id_, {leased[0].seq, leased[0].lease_token}, {},
                             {"dead-letters", "rejected", "x", kNow, 0})
                      .value());
    }
    done = true;
  });
  auto ids_in = [&](const DeadLetterSnapshot& snapshot) {
    DeadLetterScan scan{"acme"};
    scan.snapshot = snapshot;
    scan.limit = 100'000;
    std::vector<std::string> ids;
    for (const auto& d : store_->ScanDeadLetters(scan).value()) ids.push_back(d.id);
    return ids;
  };
  std::vector<std::pair<DeadLetterSnapshot, std::vector<std::string>>> seen;
  while (!done) {
    auto snapshot = store_->SnapshotDeadLetters("acme").value();
    if (seen.empty() || seen.back().first.max_seq != snapshot.max_seq) {
      seen.push_back({snapshot, ids_in(snapshot)});
    }
    std::this_thread::yield();
  }
  writer.join();
  ASSERT_FALSE(seen.empty());
  for (const auto& [snapshot, ids] : seen) {
    EXPECT_EQ(ids_in(snapshot), ids) << "snapshot at seq " << snapshot.max_seq;
    EXPECT_EQ(static_cast<int64_t>(ids.size()), [&] {
      DeadLetterScan scan{"acme"};
      scan.snapshot = snapshot;
      return store_->CountDeadLetters(scan).value();
    }());
  }
  EXPECT_EQ(ids_in(store_->SnapshotDeadLetters("acme").value()).size(), 105u);
}

TEST_P(StoreTest, AScanOfASnapshotThisStoreDidNotMakeIsRefused) {
  DeadLetterScan scan{"acme"};
  scan.snapshot = store_->SnapshotDeadLetters("acme").value();
  scan.snapshot.visible = "not-a-snapshot-of-this-store";
  EXPECT_EQ(store_->ScanDeadLetters(scan).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->CountDeadLetters(scan).status().code(), ErrorCode::kInvalidArgument);
}

TEST_P(StoreTest, RedriveMovesAtomicallyOrRecordsTheRefusal) {
  DEAD_LETTER_N(4, "max-deliveries", "g");
  auto dls = store_->ScanDeadLetters(DeadLetterScan{"acme"}).value();
  ASSERT_EQ(dls.size(), 4u);
  int64_t other = MakeQueue("other");
  Lineage lineage{1, kNow + 5, "request:tok_1", "orders"};
  std::vector<RedriveItem> items;
  for (const auto& d : dls) {
    items.push_back(RedriveItem{d.seq, other, "other", 2, 0, kNow + 5, 0, 0, lineage});
  }
  items[3].max_message_size = 0;
  items.push_back(items[0]);  // the same dead letter twice: the second finds it gone
  auto out = store_->Redrive("acme", items, kNow + 5).value();
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0], RedriveOutcome::kMoved);
  EXPECT_EQ(out[1], RedriveOutcome::kMoved);
  EXPECT_EQ(out[2], RedriveOutcome::kFull);
  EXPECT_EQ(out[3], RedriveOutcome::kFull);
  EXPECT_EQ(out[4], RedriveOutcome::kGone);
  auto kept = store_->GetDeadLetter("acme", dls[2].id).value();
  ASSERT_TRUE(kept.has_value());
  EXPECT_NE(kept->redrive_error.find("overflow"), std::string::npos);
  LeaseRequest lr;
  lr.queue_id = other;
  lr.now = kNow + 5;
  lr.lease_until = kNow + 100;
  lr.max_messages = 3;
  lr.lease_token = "a";
  auto moved = store_->Lease(lr).value();
  ASSERT_EQ(moved.size(), 2u);
  EXPECT_EQ(moved[0].id, dls[0].id);
  EXPECT_EQ(moved[0].delivery_count, 1) << "the count restarts after a redrive";
  EXPECT_EQ(moved[0].published_at, kNow) << "the first publish time is kept";
  EXPECT_EQ(moved[0].attributes.at("k"), "v");
  EXPECT_EQ(moved[0].lineage.redrive_count, 1);
  EXPECT_EQ(moved[0].lineage.original_queue, "orders");
  EXPECT_FALSE(store_->GetDeadLetter("acme", dls[0].id).value().has_value());

  RedriveItem big{dls[3].seq, other, "other", 0, 1, kNow, 0, 0, lineage};
  EXPECT_EQ(store_->Redrive("acme", {big}, kNow).value()[0], RedriveOutcome::kTooLarge);
  EXPECT_EQ(store_->Redrive("beta", {big}, kNow).value()[0], RedriveOutcome::kGone)
      << "another tenant cannot touch it";
}

TEST_P(StoreTest, DeleteAndPurgeRemoveDeadLetters) {
  DEAD_LETTER_N(3, "rejected", "g");
  auto dls = store_->ScanDeadLetters(DeadLetterScan{"acme"}).value();
  EXPECT_EQ(store_->DeleteDeadLetters("beta", {dls[0].seq}).value()[0], false);
  EXPECT_EQ(store_->DeleteDeadLetters("acme", {dls[0].seq, dls[0].seq}).value(),
            (std::vector<bool>{true, false}));
  EXPECT_EQ(store_->PurgeDeadLetters("acme", "elsewhere").value(), 0);
  EXPECT_EQ(store_->PurgeDeadLetters("acme", "dead-letters").value(), 2);
  EXPECT_EQ(store_->CountDeadLetters(DeadLetterScan{"acme"}).value(), 0);
}

TEST_P(StoreTest, AuditIsAppendOnlyPerTenant) {
  ASSERT_TRUE(store_->AppendAudit({0, "acme", kNow, "tok_1", "dead-letter.delete", "{}"}).ok());
  ASSERT_TRUE(store_->AppendAudit({0, "beta", kNow, "tok_2", "job.start", "{}"}).ok());
  ASSERT_TRUE(store_->AppendAudit({0, "acme", kNow + 1, "tok_1", "job.start", "{\"x\":1}"}).ok());
  auto all = store_->ListAudit("acme", 0, 10).value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].action, "job.start");
  EXPECT_EQ(all[1].detail_json, "{\"x\":1}");
  EXPECT_EQ(store_->ListAudit("acme", all[0].seq, 10).value().size(), 1u);
}

TEST_P(StoreTest, OneActiveJobPerScope) {
  JobRecord j{"job_1", "acme", "dead-letters", JobState::kRunning, "{}", "{}", kNow, kNow, 0};
  ASSERT_TRUE(store_->CreateJob(j).ok());
  JobRecord dup = j;
  dup.id = "job_2";
  EXPECT_EQ(store_->CreateJob(dup).code(), ErrorCode::kAlreadyExists);
  JobRecord elsewhere = dup;
  elsewhere.id = "job_3";
  elsewhere.tenant = "beta";
  auto created = store_->CreateJob(elsewhere);
  EXPECT_TRUE(created.ok()) << created.ToString();
  j.state = JobState::kCompleted;
  j.finished_at = kNow + 10;
  EXPECT_FALSE(store_->UpdateJob(j, JobState::kCancelling).value())
      << "compare-and-set on the state";
  EXPECT_TRUE(store_->UpdateJob(j, JobState::kRunning).value());
  EXPECT_TRUE(store_->CreateJob(dup).ok()) << "a finished job frees its scope";
  EXPECT_EQ(store_->GetJob("acme", "job_1").value()->state, JobState::kCompleted);
  EXPECT_FALSE(store_->GetJob("beta", "job_1").value().has_value());
  EXPECT_EQ(store_->ListJobs("acme").value().size(), 2u);
  EXPECT_EQ(store_->ListJobs("").value().size(), 3u);
  EXPECT_EQ(store_->DeleteFinishedJobs(kNow + 11).value(), 1);
  EXPECT_EQ(store_->ListJobs("acme").value().size(), 1u);
}

// ---- tenancy: usage counters, quotas, token rotation, operator tokens, tenant deletion

TEST_P(StoreTest, UsageFollowsEveryPathThatAddsOrRemovesAMessage) {
  auto usage = [&] { return store_->GetTenantUsage("acme").value(); };
  EXPECT_EQ(usage().queues, 1);
  EXPECT_EQ(usage().messages, 0);
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1", "12345"), Msg("m2", "123"), Msg("m3", "1")})).ok());
  EXPECT_EQ(usage().messages, 3);
  EXPECT_EQ(usage().bytes, 9);
  // A duplicate publish stores nothing.
  auto dup = Msg("m4", "xxxxxxxx");
  dup.idempotency_key = "k";
  ASSERT_TRUE(store_->Publish(Pub({dup})).ok());
  ASSERT_TRUE(store_->Publish(Pub({dup})).ok());
  EXPECT_EQ(usage().messages, 4);
  EXPECT_EQ(usage().bytes, 17);
  // Ack removes; dead-lettering moves (the total stays); leasing changes nothing.
  auto leased = LeaseN(2);
  ASSERT_EQ(leased.size(), 2u);
  EXPECT_EQ(usage().messages, 4);
  ASSERT_TRUE(store_->Ack(queue_id_, {{leased[0].seq, leased[0].lease_token}}).value()[0]);
  EXPECT_EQ(usage().messages, 3);
  EXPECT_EQ(usage().bytes, 12);
  ASSERT_TRUE(DeadLetter(store_.get(), queue_id_, {leased[1].seq, leased[1].lease_token}, {},
                         {"dead-letters", "rejected", "x", kNow, 0})
                  .value());
  EXPECT_EQ(usage().messages, 3);
  EXPECT_EQ(usage().bytes, 12);
  // The counters are stored: a reopen reads the same.
  Reopen();
  EXPECT_EQ(usage().messages, 3);
  EXPECT_EQ(usage().bytes, 12);
  // Redrive moves back (total unchanged), deleting a dead letter removes it.
  auto dls = store_->ScanDeadLetters(DeadLetterScan{"acme"}).value();
  ASSERT_EQ(dls.size(), 1u);
  RedriveItem back{dls[0].seq, queue_id_, "orders", 0, 0, kNow, 0, 0, {}};
  ASSERT_EQ(store_->Redrive("acme", {back}, kNow).value()[0], RedriveOutcome::kMoved);
  EXPECT_EQ(usage().messages, 3);
  auto again = LeaseN(10);
  ASSERT_FALSE(again.empty());
  ASSERT_TRUE(DeadLetter(store_.get(), queue_id_, {again[0].seq, again[0].lease_token}, {},
                         {"dead-letters", "rejected", "x", kNow, 0})
                  .value());
  dls = store_->ScanDeadLetters(DeadLetterScan{"acme"}).value();
  ASSERT_EQ(dls.size(), 1u);
  ASSERT_TRUE(store_->DeleteDeadLetters("acme", {dls[0].seq}).value()[0]);
  EXPECT_EQ(usage().messages, 2);
  // Deleting the queue drops its messages from the usage; another tenant is untouched.
  ASSERT_TRUE(store_->CreateTenant({"beta", kNow}).ok());
  EXPECT_EQ(store_->GetTenantUsage("beta").value().messages, 0);
  ASSERT_TRUE(store_->DeleteQueue(queue_id_).value());
  EXPECT_EQ(usage().messages, 0);
  EXPECT_EQ(usage().bytes, 0);
  EXPECT_EQ(usage().queues, 0);
}

TEST_P(StoreTest, QueueQuotaCountsStandardQueuesOnly) {
  QueueRecord dlq{0, "acme", "dead-letters", QueueKind::kDeadLetter, "{}", kNow, kNow};
  ASSERT_TRUE(store_->CreateQueueWithinQuota(dlq, 1).ok()) << "dead-letter queues are free";
  QueueRecord q{0, "acme", "second", QueueKind::kStandard, "{}", kNow, kNow};
  auto refused = store_->CreateQueueWithinQuota(q, 1);
  EXPECT_EQ(refused.status().code(), ErrorCode::kQuotaExceeded);
  EXPECT_FALSE(store_->GetQueue("acme", "second").value().has_value());
  auto made = store_->CreateQueueWithinQuota(q, 2);
  ASSERT_TRUE(made.ok());
  EXPECT_GT(made.value(), queue_id_);
  EXPECT_EQ(store_->CreateQueueWithinQuota(q, 0).status().code(), ErrorCode::kAlreadyExists);
}

TEST_P(StoreTest, QuotaOverridesAreStored) {
  ASSERT_TRUE(store_->SetTenantQuotas("acme", R"({"maxQueues":3})").value());
  EXPECT_FALSE(store_->SetTenantQuotas("nope", "{}").value());
  Reopen();
  EXPECT_EQ(store_->GetTenant("acme").value()->quotas_json, R"({"maxQueues":3})");
}

TEST_P(StoreTest, RotationIssuesTheReplacementAndBoundsTheOldToken) {
  TokenRecord old{"tok_old", "acme", "ci", "h-old", {"publish"}, kNow, 0};
  ASSERT_TRUE(store_->CreateToken(old).ok());
  TokenRecord fresh{"tok_new", "acme", "ci", "h-new", {"publish"}, kNow + 1, 0};
  EXPECT_FALSE(store_->RotateToken("beta", "tok_old", fresh, kNow + 100, kNow).value());
  ASSERT_TRUE(store_->RotateToken("acme", "tok_old", fresh, kNow + 100, kNow).value());
  auto o = store_->FindTokenByHash("h-old").value();
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->expires_at, kNow + 100);
  EXPECT_EQ(o->replaced_by, "tok_new");
  EXPECT_TRUE(store_->FindTokenByHash("h-new").value().has_value());
  // A second rotation of the old token cannot lengthen its life, and an expired one is out.
  TokenRecord third{"tok_3", "acme", "ci", "h-3", {"publish"}, kNow + 2, 0};
  ASSERT_TRUE(store_->RotateToken("acme", "tok_old", third, kNow + 500, kNow + 50).value());
  EXPECT_EQ(store_->FindTokenByHash("h-old").value()->expires_at, kNow + 100);
  TokenRecord fourth{"tok_4", "acme", "ci", "h-4", {"publish"}, kNow + 3, 0};
  EXPECT_FALSE(store_->RotateToken("acme", "tok_old", fourth, kNow + 500, kNow + 100).value());
  EXPECT_FALSE(store_->FindTokenByHash("h-4").value().has_value()) << "nothing written";
}

TEST_P(StoreTest, TheLastActiveOperatorTokenIsNotRevoked) {
  ASSERT_TRUE(store_->CreateToken({"op_1", "", "a", "h1", {"operator"}, kNow, 0}).ok());
  ASSERT_TRUE(store_->CreateToken({"op_2", "", "b", "h2", {"operator"}, kNow, 0, kNow + 10}).ok());
  // op_2 expires at kNow + 10: after that, op_1 is the last active one.
  EXPECT_EQ(store_->RevokeOperatorToken("op_1", kNow + 20).value(), RevokeOutcome::kLastActive);
  EXPECT_EQ(store_->FindTokenByHash("h1").value()->revoked_at, 0);
  // An expired token may be revoked whatever else is active.
  EXPECT_EQ(store_->RevokeOperatorToken("op_2", kNow + 20).value(), RevokeOutcome::kRevoked);
  EXPECT_EQ(store_->RevokeOperatorToken("op_2", kNow + 20).value(), RevokeOutcome::kNotActive);
  EXPECT_EQ(store_->RevokeOperatorToken("nope", kNow).value(), RevokeOutcome::kNotActive);
  ASSERT_TRUE(store_->CreateToken({"op_3", "", "c", "h3", {"operator"}, kNow, 0}).ok());
  EXPECT_EQ(store_->RevokeOperatorToken("op_1", kNow + 20).value(), RevokeOutcome::kRevoked);
  // A tenant token is never an operator token.
  ASSERT_TRUE(store_->CreateToken({"tok_t", "acme", "t", "ht", {"admin"}, kNow, 0}).ok());
  EXPECT_EQ(store_->RevokeOperatorToken("tok_t", kNow).value(), RevokeOutcome::kNotActive);
}

TEST_P(StoreTest, TokenLastUseOnlyMovesForward) {
  ASSERT_TRUE(store_->CreateToken({"tok_1", "acme", "ci", "h1", {"publish"}, kNow, 0}).ok());
  ASSERT_TRUE(store_->TouchTokens({{"tok_1", kNow + 50}, {"ghost", kNow}}).ok());
  ASSERT_TRUE(store_->TouchTokens({{"tok_1", kNow + 10}}).ok());
  EXPECT_EQ(store_->ListTokens("acme").value()[0].last_used_at, kNow + 50);
}

TEST_P(StoreTest, DeletingATenantRemovesEverythingItOwnsAndNothingElse) {
  ASSERT_TRUE(store_->CreateToken({"tok_a", "acme", "ci", "ha", {"publish"}, kNow, 0}).ok());
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1"), Msg("m2")})).ok());
  auto m = LeaseN(1)[0];
  ASSERT_TRUE(DeadLetter(store_.get(), queue_id_, {m.seq, m.lease_token}, {},
                         {"dead-letters", "rejected", "x", kNow, 0})
                  .value());
  ASSERT_TRUE(store_->AppendAudit({0, "acme", kNow, "tok_a", "x", "{}"}).ok());
  ASSERT_TRUE(store_->CreateTenant({"beta", kNow}).ok());
  ASSERT_TRUE(store_->CreateToken({"tok_b", "beta", "ci", "hb", {"publish"}, kNow, 0}).ok());
  ASSERT_TRUE(store_->AppendAudit({0, "beta", kNow, "tok_b", "x", "{}"}).ok());
  ASSERT_TRUE(store_
                  ->AddDeliveryOutcomes(
                      {{"acme", "orders", kNow, 1, 1, 0}, {"beta", "orders", kNow, 2, 0, 0}})
                  .ok());

  EXPECT_EQ(store_->DeleteTenant("acme", true).value(), DeleteTenantOutcome::kNotEmpty);
  EXPECT_FALSE(store_->GetTenant("acme").value()->deleting) << "a refusal changes nothing";
  EXPECT_TRUE(store_->FindTokenByHash("ha").value().has_value());
  EXPECT_EQ(store_->DeleteTenant("gamma", false).value(), DeleteTenantOutcome::kNotFound);
  EXPECT_EQ(store_->DeleteTenant("acme", false).value(), DeleteTenantOutcome::kDeleted);

  EXPECT_FALSE(store_->GetTenant("acme").value().has_value());
  EXPECT_FALSE(store_->FindTokenByHash("ha").value().has_value());
  EXPECT_TRUE(store_->ListQueues("acme").value().empty());
  EXPECT_FALSE(store_->GetDeadLetter("acme", "m1").value().has_value());
  EXPECT_TRUE(store_->ListAudit("acme", 0, 10).value().empty());
  EXPECT_FALSE(store_->GetMessage(queue_id_, m.seq + 1).value().has_value());
  EXPECT_EQ(store_->GetTenantUsage("acme").value().messages, 0);
  EXPECT_TRUE(store_->ListDeliveryOutcomes("acme", "orders", 0, kNow + 1).value().empty());
  // beta is untouched; an empty tenant goes without force.
  EXPECT_TRUE(store_->FindTokenByHash("hb").value().has_value());
  EXPECT_EQ(store_->ListAudit("beta", 0, 10).value().size(), 1u);
  EXPECT_EQ(store_->ListDeliveryOutcomes("beta", "orders", 0, kNow + 1).value().size(), 1u);
  EXPECT_EQ(store_->DeleteTenant("beta", true).value(), DeleteTenantOutcome::kDeleted);
  // The name is free again, and a new tenant of that name starts empty.
  ASSERT_TRUE(store_->CreateTenant({"acme", kNow}).ok());
  EXPECT_EQ(store_->GetTenantUsage("acme").value().messages, 0);
}

TEST_P(StoreTest, ATenantSecretIsDecidedByTheFirstCallAndGoesWithTheTenant) {
  EXPECT_EQ(store_->TenantSecret("acme", "redaction", "first").value(), "first");
  EXPECT_EQ(store_->TenantSecret("acme", "redaction", "second").value(), "first");
  EXPECT_EQ(store_->TenantSecret("acme", "other", "third").value(), "third");
  ASSERT_TRUE(store_->CreateTenant({"beta", kNow}).ok());
  EXPECT_EQ(store_->TenantSecret("beta", "redaction", "beta's").value(), "beta's");
  ASSERT_EQ(store_->DeleteTenant("beta", false).value(), DeleteTenantOutcome::kDeleted);
  EXPECT_EQ(store_->TenantSecret("beta", "redaction", "new").value(), "new");
  EXPECT_EQ(store_->TenantSecret("acme", "redaction", "x").value(), "first");
}

TEST_P(StoreTest, ADeadLetterMovedWithRedactStoresWhatItLeavesAndIsMarked) {
  MessageRecord msg = Msg("m1");
  msg.body = "secret body";
  msg.attributes = {{"email", "a@b.c"}, {"kind", "x"}};
  ASSERT_TRUE(store_->Publish(Pub({msg, Msg("m2")})).ok());
  auto leased = LeaseN(2);
  DeathInfo death{"dead-letters", "rejected", "x", kNow, 0};
  death.redact = [](std::string& body, Attributes& attributes, Journal& journal) {
    body = "***";
    attributes["email"] = "***";
    journal.attempts.push_back(Attempt(kNow, "redactor", "nack", "", "scrubbed"));
  };
  Journal journal;
  journal.attempts.push_back(Attempt(kNow, "c", "nack", "r", "e"));
  ASSERT_TRUE(
      DeadLetter(store_.get(), queue_id_, {leased[0].seq, leased[0].lease_token}, journal, death)
          .value());
  auto d = store_->GetDeadLetter("acme", leased[0].id).value();
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->redacted);
  EXPECT_EQ(d->body, "***");
  EXPECT_EQ(d->attributes.at("email"), "***");
  EXPECT_EQ(d->attributes.at("kind"), "x");
  ASSERT_EQ(d->journal.attempts.size(), 2u);  // the given journal, then what redact added
  EXPECT_EQ(d->journal.attempts[1].error, "scrubbed");
  store::DeadLetterScan scan;
  scan.tenant = "acme";
  scan.redacted_only = true;
  EXPECT_EQ(store_->CountDeadLetters(scan).value(), 1);
  // A lease no longer held moves nothing, redact or not.
  EXPECT_FALSE(DeadLetter(store_.get(), queue_id_, {leased[1].seq, "stale"}, {}, death).value());
  ASSERT_TRUE(DeadLetter(store_.get(), queue_id_, {leased[1].seq, leased[1].lease_token}, {},
                         {"dead-letters", "rejected", "x", kNow, 0})
                  .value());
  EXPECT_FALSE(store_->GetDeadLetter("acme", leased[1].id).value()->redacted);
  EXPECT_EQ(store_->CountDeadLetters(scan).value(), 1);
}

TEST_P(StoreTest, DeliveryOutcomesAddUpPerOriginAndMinuteAndExpireOldestFirst) {
  constexpr TimeMs kM0 = 1'700'000'040'000, kM1 = kM0 + 60'000, kM2 = kM0 + 120'000;
  auto list = [&](const std::string& tenant, const std::string& origin, TimeMs since,
                  TimeMs until) {
    auto rows = store_->ListDeliveryOutcomes(tenant, origin, since, until);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::vector<std::vector<int64_t>> out;
    for (const auto& r : rows.value()) {
      EXPECT_EQ(r.tenant, tenant);
      EXPECT_EQ(r.origin, origin);
      out.push_back({r.minute, r.succeeded, r.failed, r.failed_tls});
    }
    return out;
  };
  using V = std::vector<std::vector<int64_t>>;
  // A key repeated within one call adds up too.
  ASSERT_TRUE(store_
                  ->AddDeliveryOutcomes({{"acme", "orders", kM1, 0, 2, 2},
                                         {"acme", "orders", kM0, 1, 0, 0},
                                         {"acme", "orders", kM0, 2, 3, 1},
                                         {"acme", "topic:hook", kM0, 5, 0, 0},
                                         {"beta", "orders", kM0, 7, 7, 7}})
                  .ok());
  EXPECT_EQ(list("acme", "orders", 0, kM2), (V{{kM0, 3, 3, 1}, {kM1, 0, 2, 2}}));
  // Another node's flush (or a later one) adds to the stored counts, never overwrites them.
  ASSERT_TRUE(store_->AddDeliveryOutcomes({{"acme", "orders", kM0, 1, 1, 0}}).ok());
  ASSERT_TRUE(store_->AddDeliveryOutcomes({}).ok());
  EXPECT_EQ(list("acme", "orders", 0, kM2), (V{{kM0, 4, 4, 1}, {kM1, 0, 2, 2}}));
  // since inclusive, until exclusive; origins and tenants apart.
  EXPECT_EQ(list("acme", "orders", kM1, kM2), (V{{kM1, 0, 2, 2}}));
  EXPECT_EQ(list("acme", "orders", 0, kM1), (V{{kM0, 4, 4, 1}}));
  EXPECT_EQ(list("acme", "topic:hook", 0, kM2), (V{{kM0, 5, 0, 0}}));
  EXPECT_EQ(list("acme", "billing", 0, kM2), V{});
  // Durable.
  Reopen();
  EXPECT_EQ(list("acme", "orders", 0, kM2), (V{{kM0, 4, 4, 1}, {kM1, 0, 2, 2}}));
  // Retention: minutes before the bound go, at most `limit` a call, whatever the tenant.
  EXPECT_EQ(store_->DeleteDeliveryOutcomes(kM1, 2).value(), 2);
  EXPECT_EQ(store_->DeleteDeliveryOutcomes(kM1, 2).value(), 1);
  EXPECT_EQ(store_->DeleteDeliveryOutcomes(kM1, 2).value(), 0);
  EXPECT_EQ(list("acme", "orders", 0, kM2), (V{{kM1, 0, 2, 2}}));
  EXPECT_EQ(list("acme", "topic:hook", 0, kM2), V{});
  EXPECT_EQ(list("beta", "orders", 0, kM2), V{});
}

// ---- tickets and notification settings

TEST_P(StoreTest, ATicketTakesTheDeadLettersOfItsSnapshotThatNoCoveringTicketLists) {
  auto ticket = [](const std::string& id, TimeMs at) {
    return TicketRecord{id, "acme", "open", at, at, at + 1000, 0, 0, "link-" + id, "{}"};
  };
  auto listed = [&](const std::string& id) {
    DeadLetterScan scan{"acme"};
    scan.ticket = id;
    return store_->CountDeadLetters(scan).value();
  };
  EXPECT_EQ(
      store_->OpenTicket(ticket("t0", kNow), store_->SnapshotDeadLetters("acme").value()).value(),
      0)
      << "no dead letters";
  EXPECT_FALSE(store_->GetTicket("acme", "t0").value().has_value()) << "nothing written";
  DEAD_LETTER_N(3, "rejected", "a");
  auto snapshot = store_->SnapshotDeadLetters("acme").value();
  DEAD_LETTER_N(1, "rejected", "late");
  EXPECT_EQ(store_->OpenTicket(ticket("t1", kNow), snapshot).value(), 3);
  EXPECT_EQ(listed("t1"), 3) << "not the one made after the snapshot";
  EXPECT_EQ(store_->GetTicket("acme", "t1").value()->count, 3);
  EXPECT_EQ(store_->OpenTicket(ticket("t1", kNow), snapshot).status().code(),
            ErrorCode::kAlreadyExists);
  // An open ticket covers its dead letters: the next takes only the late one.
  EXPECT_EQ(store_->OpenTicket(ticket("t2", kNow + 1), store_->SnapshotDeadLetters("acme").value())
                .value(),
            1);
  EXPECT_EQ(store_->OpenTicket(ticket("t3", kNow + 2), store_->SnapshotDeadLetters("acme").value())
                .value(),
            0);
  // Compare-and-set on the state; a closed ticket covers nothing.
  TicketRecord closed = ticket("t1", kNow);
  closed.state = "closed";
  closed.closed_at = kNow + 5;
  EXPECT_FALSE(store_->UpdateTicket(closed, "retrying").value());
  EXPECT_TRUE(store_->UpdateTicket(closed, "open").value());
  EXPECT_FALSE(store_->UpdateTicket(closed, "open").value());
  EXPECT_EQ(store_->OpenTicket(ticket("t4", kNow + 3), store_->SnapshotDeadLetters("acme").value())
                .value(),
            3);
  EXPECT_EQ(listed("t4"), 3);
  EXPECT_EQ(listed("t1"), 0);
  // Reads.
  EXPECT_EQ(store_->FindTicketByLink("link-t2").value()->id, "t2");
  EXPECT_FALSE(store_->FindTicketByLink("").value().has_value());
  std::vector<std::string> ids;
  for (const auto& t : store_->ListTickets("acme").value()) ids.push_back(t.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"t4", "t2", "t1"})) << "newest first";
  auto due = store_->TicketsInState("open", kNow + 1001, 10).value();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].id, "t2");
  EXPECT_EQ(store_->DeleteClosedTickets(kNow + 5).value(), 0);
  EXPECT_EQ(store_->DeleteClosedTickets(kNow + 6).value(), 1);
  EXPECT_FALSE(store_->GetTicket("acme", "t1").value().has_value());
}

TEST_P(StoreTest, NotificationSettingsNeedTheTenantAndOneNodeMarksADigest) {
  EXPECT_FALSE(store_->SetNotificationSettings({"nope", "{}", 0, kNow}).value());
  ASSERT_TRUE(store_->SetNotificationSettings({"acme", "{\"a\":1}", 0, kNow}).value());
  EXPECT_TRUE(store_->MarkDigest("acme", 0, kNow + 10).value());
  EXPECT_FALSE(store_->MarkDigest("acme", 0, kNow + 20).value()) << "compare-and-set";
  ASSERT_TRUE(store_->SetNotificationSettings({"acme", "{\"a\":2}", 0, kNow + 30}).value());
  auto s = store_->GetNotificationSettings("acme").value();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->config_json, "{\"a\":2}");
  EXPECT_EQ(s->last_digest_at, kNow + 10) << "kept by a replacement";
  EXPECT_EQ(s->updated_at, kNow + 30);
  ASSERT_TRUE(store_->CreateTenant({"beta", kNow}).ok());
  ASSERT_TRUE(store_->SetNotificationSettings({"beta", "{}", 0, kNow}).value());
  auto all = store_->ListNotificationSettings().value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].tenant, "acme");
  ASSERT_EQ(store_->DeleteTenant("beta", false).value(), DeleteTenantOutcome::kDeleted);
  EXPECT_FALSE(store_->GetNotificationSettings("beta").value().has_value());
}

// Several nodes (threads here) at once: each dead letter goes to one ticket, and of two
// operator tokens revoked at once one stays.
TEST_P(StoreTest, ConcurrentTicketsAndOperatorRevocationsTakeTurns) {
  DEAD_LETTER_N(200, "rejected", "c");
  constexpr int kThreads = 8;
  std::vector<int64_t> counts(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto snapshot = store_->SnapshotDeadLetters("acme").value();
      std::string id = "t" + std::to_string(i);
      auto n =
          store_->OpenTicket({id, "acme", "open", kNow, kNow, kNow + 1, 0, 0, "", "{}"}, snapshot);
      EXPECT_TRUE(n.ok()) << n.status().ToString();
      counts[i] = n.ok() ? n.value() : 0;
    });
  }
  for (auto& t : threads) t.join();
  int64_t total = 0, listed = 0;
  for (int i = 0; i < kThreads; ++i) {
    total += counts[i];
    DeadLetterScan scan{"acme"};
    scan.ticket = "t" + std::to_string(i);
    listed += store_->CountDeadLetters(scan).value();
  }
  EXPECT_EQ(total, 200);
  EXPECT_EQ(listed, 200);

  for (int round = 0; round < 5; ++round) {
    std::string a = "op_a" + std::to_string(round), b = "op_b" + std::to_string(round);
    ASSERT_TRUE(store_->CreateToken({a, "", "a", "h" + a, {"operator"}, kNow, 0}).ok());
    ASSERT_TRUE(store_->CreateToken({b, "", "b", "h" + b, {"operator"}, kNow, 0}).ok());
    if (round > 0) {
      // Only a and b active: the survivor of the last round goes first.
      for (const auto& t : store_->ListTokens("").value()) {
        if (t.revoked_at == 0 && t.id != a && t.id != b) {
          ASSERT_EQ(store_->RevokeOperatorToken(t.id, kNow).value(), RevokeOutcome::kRevoked);
        }
      }
    }
    RevokeOutcome ra, rb;
    std::thread ta([&] { ra = store_->RevokeOperatorToken(a, kNow).value(); });
    std::thread tb([&] { rb = store_->RevokeOperatorToken(b, kNow).value(); });
    ta.join();
    tb.join();
    EXPECT_EQ((ra == RevokeOutcome::kRevoked) + (rb == RevokeOutcome::kRevoked), 1);
    EXPECT_EQ((ra == RevokeOutcome::kLastActive) + (rb == RevokeOutcome::kLastActive), 1);
  }
}

// Instantiated over every backend in message_store_test.cc, with the tests there: one fixture,
// one instantiation (store_test_fixture.h).

}  // namespace
}  // namespace redrive::store
