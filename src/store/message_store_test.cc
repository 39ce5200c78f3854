// Conformance suite, message port (message_store.h): publish, lease, ack, settle, sweep, depths.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "store/store_test_fixture.h"

namespace redrive::store {
namespace {

TEST_P(StoreTest, PublishedMessagesSurviveReopen) {
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1", std::string("\x00\xff", 2)), Msg("m2")})).ok());
  Reopen();
  auto leased = LeaseN(10);
  ASSERT_EQ(leased.size(), 2u);
  EXPECT_EQ(leased[0].id, "m1");
  EXPECT_EQ(leased[0].body, std::string("\x00\xff", 2));
  EXPECT_EQ(leased[0].attributes.at("k"), "v");
  EXPECT_EQ(leased[0].delivery_count, 1);
  EXPECT_EQ(leased[0].first_delivered_at, kNow);
}

TEST_P(StoreTest, LeaseIsFifoHidesLeasedAndCountsDurably) {
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1"), Msg("m2"), Msg("m3")})).ok());
  auto first = LeaseN(2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].id, "m1");
  EXPECT_EQ(first[1].id, "m2");
  EXPECT_TRUE(first[0].leased);
  auto second = LeaseN(5);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, "m3");
  EXPECT_TRUE(LeaseN(5).empty());
  auto d = Depth();
  EXPECT_EQ(d.leased, 3);
  EXPECT_EQ(d.ready, 0);
  Reopen();
  auto m = store_->GetMessage(queue_id_, first[0].seq).value();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->delivery_count, 1);
  EXPECT_EQ(m->lease_token, first[0].lease_token);
}

TEST_P(StoreTest, DelayedAndExpiredMessagesAreNotLeased) {
  auto delayed = Msg("later");
  delayed.visible_at = kNow + 10'000;
  auto expired = Msg("old");
  expired.expires_at = kNow - 1;
  ASSERT_TRUE(store_->Publish(Pub({delayed, expired})).ok());
  EXPECT_TRUE(LeaseN(5).empty());
  EXPECT_EQ(Depth().delayed, 1);
  auto later = LeaseN(5, kNow + 10'000, kNow + 40'000);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].id, "later");
  auto exp = store_->ExpiredMessages(kNow, 10).value();
  ASSERT_EQ(exp.size(), 1u);
  EXPECT_EQ(exp[0].id, "old");
}

TEST_P(StoreTest, AckNeedsTheCurrentLeaseToken) {
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1"), Msg("m2")})).ok());
  auto leased = LeaseN(2);
  auto acked =
      store_->Ack(queue_id_, {{leased[0].seq, leased[0].lease_token}, {leased[1].seq, "wrong"}})
          .value();
  EXPECT_EQ(acked, (std::vector<bool>{true, false}));
  auto again = store_->Ack(queue_id_, {{leased[0].seq, leased[0].lease_token}}).value();
  EXPECT_EQ(again, (std::vector<bool>{false}));
  EXPECT_FALSE(store_->GetMessage(queue_id_, leased[0].seq).value().has_value());
  EXPECT_EQ(Depth().leased, 1);
}

TEST_P(StoreTest, OneAckAcrossReceivesAnswersEachReceiptOnce) {
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1"), Msg("m2"), Msg("m3")})).ok());
  auto first = LeaseN(2, kNow);
  auto second = LeaseN(1, kNow + 1);
  ASSERT_EQ(first.size(), 2u);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(first[0].lease_token, first[1].lease_token) << "one token per receive";
  EXPECT_NE(first[0].lease_token, second[0].lease_token);
  // Receipts of two receives, one given twice, one with the other receive's token.
  auto acked = store_
                   ->Ack(queue_id_, {{second[0].seq, second[0].lease_token},
                                     {first[0].seq, first[0].lease_token},
                                     {first[0].seq, first[0].lease_token},
                                     {first[1].seq, second[0].lease_token}})
                   .value();
  EXPECT_EQ(acked, (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(Depth().leased, 1) << "only first[1] is still leased";
  EXPECT_TRUE(store_->GetMessage(queue_id_, first[1].seq).value().has_value());
}

TEST_P(StoreTest, RequeueIsCompareAndSetAndKeepsTheJournal) {
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1")})).ok());
  auto m = LeaseN(1)[0];
  Journal j;
  j.attempts.push_back({kNow, "c1", "nack", "bad", "HTTP 500"});
  j.omitted = 2;
  EXPECT_FALSE(Requeue(store_.get(), queue_id_, {m.seq, "stale"}, kNow + 100, j).value());
  EXPECT_TRUE(Requeue(store_.get(), queue_id_, {m.seq, m.lease_token}, kNow + 100, j).value());
  EXPECT_TRUE(LeaseN(1, kNow + 50).empty());
  auto again = LeaseN(1, kNow + 100, kNow + 200);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].delivery_count, 2);
  ASSERT_EQ(again[0].journal.attempts.size(), 1u);
  EXPECT_EQ(again[0].journal.attempts[0].error, "HTTP 500");
  EXPECT_EQ(again[0].journal.omitted, 2);
  // The old token no longer holds the message.
  EXPECT_FALSE(store_->Ack(queue_id_, {{m.seq, m.lease_token}}).value()[0]);
}

TEST_P(StoreTest, ExtendOnlyWhileTheLeaseLasts) {
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1")})).ok());
  auto m = LeaseN(1, kNow, kNow + 1000)[0];
  EXPECT_TRUE(
      store_->ExtendLease(queue_id_, {m.seq, m.lease_token}, kNow + 500, kNow + 5000).value());
  EXPECT_FALSE(
      store_->ExtendLease(queue_id_, {m.seq, m.lease_token}, kNow + 6000, kNow + 9000).value());
  EXPECT_FALSE(store_->ExtendLease(queue_id_, {m.seq, "x"}, kNow, kNow + 9000).value());
  auto expired = store_->ExpiredLeases(kNow + 5000, 10).value();
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_TRUE(store_->ExpiredLeases(kNow + 4999, 10).value().empty());
}

TEST_P(StoreTest, DeadLetterMovesAtomicallyWithItsStory) {
  MakeQueue("dead-letters", QueueKind::kDeadLetter);
  auto msg = Msg("m1", "payload");
  msg.idempotency_key = "k1";
  ASSERT_TRUE(store_->Publish(Pub({msg})).ok());
  auto m = LeaseN(1)[0];
  Journal j;
  j.attempts.push_back({kNow + 1, "c1", "nack", "bad", "boom"});
  DeathInfo death{"dead-letters", "max-deliveries", "boom", kNow + 2, kNow + 1000};
  EXPECT_FALSE(DeadLetter(store_.get(), queue_id_, {m.seq, "stale"}, j, death).value());
  EXPECT_TRUE(DeadLetter(store_.get(), queue_id_, {m.seq, m.lease_token}, j, death).value());
  EXPECT_FALSE(store_->GetMessage(queue_id_, m.seq).value().has_value());
  EXPECT_FALSE(DeadLetter(store_.get(), queue_id_, {m.seq, m.lease_token}, j, death).value());
  auto d = store_->GetDeadLetter("acme", "m1").value();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->origin, "orders");
  EXPECT_EQ(d->dlq, "dead-letters");
  EXPECT_EQ(d->reason, "max-deliveries");
  EXPECT_EQ(d->cause, "boom");
  EXPECT_EQ(d->body, "payload");
  EXPECT_EQ(d->attributes.at("k"), "v");
  EXPECT_EQ(d->idempotency_key, "k1");
  EXPECT_EQ(d->published_at, kNow);
  EXPECT_EQ(d->delivery_count, 1);
  EXPECT_EQ(d->dead_lettered_at, kNow + 2);
  ASSERT_EQ(d->journal.attempts.size(), 1u);
  EXPECT_EQ(d->journal.attempts[0].consumer, "c1");
  EXPECT_FALSE(store_->GetDeadLetter("beta", "m1").value().has_value());
  EXPECT_EQ(Depth().dead_lettered, 1);
}

TEST_P(StoreTest, SettleFailuresAppliesAMixedBatchInOneWrite) {
  MakeQueue("dead-letters", QueueKind::kDeadLetter);
  ASSERT_TRUE(store_->Publish(Pub({Msg("a"), Msg("b"), Msg("c"), Msg("d")})).ok());
  auto m = LeaseN(4);
  ASSERT_EQ(m.size(), 4u);
  std::vector<FailureAction> actions(5);
  actions[0].kind = FailureAction::Kind::kRequeue;
  actions[0].receipt = {m[0].seq, m[0].lease_token};
  actions[0].visible_at = kNow;
  actions[1].kind = FailureAction::Kind::kDeadLetter;
  actions[1].receipt = {m[1].seq, m[1].lease_token};
  actions[1].death = {"dead-letters", "rejected", "bad input", kNow, 0};
  actions[2].kind = FailureAction::Kind::kDrop;
  actions[2].receipt = {m[2].seq, m[2].lease_token};
  actions[3].kind = FailureAction::Kind::kRequeue;  // a lease that is no longer held
  actions[3].receipt = {m[3].seq, "stale"};
  actions[4].kind = FailureAction::Kind::kDeadLetter;  // the same message twice: second loses
  actions[4].receipt = {m[1].seq, m[1].lease_token};
  actions[4].death = actions[1].death;
  auto held = store_->SettleFailures(queue_id_, actions).value();
  EXPECT_EQ(held, (std::vector<bool>{true, true, true, false, false}));
  EXPECT_EQ(Depth().ready, 1);
  EXPECT_EQ(Depth().leased, 1);  // d keeps its lease
  EXPECT_EQ(Depth().dead_lettered, 1);
  EXPECT_TRUE(store_->GetDeadLetter("acme", "b").value().has_value());
  EXPECT_FALSE(store_->GetMessage(queue_id_, m[2].seq).value().has_value());
}

// kReroute (the exhausted action reroute): the message becomes a fresh message of another
// queue, with its story, and the tenant's usage moves with it, neither growing nor shrinking.
TEST_P(StoreTest, RerouteMovesTheMessageToAnotherQueueAsAFreshDelivery) {
  int64_t slow = MakeQueue("orders-slow");
  ASSERT_TRUE(store_->Publish(Pub({Msg("a", "12345")})).ok());
  auto before = store_->GetTenantUsage("acme").value();
  auto m = LeaseN(1)[0];
  FailureAction a;
  a.kind = FailureAction::Kind::kReroute;
  a.receipt = {m.seq, "stale"};
  a.journal.attempts.push_back({kNow + 1, "c1", "nack", "bad", "HTTP 500"});
  a.reroute.queue_id = slow;
  a.reroute.enqueued_at = kNow + 2;
  a.reroute.visible_at = kNow + 10;
  a.reroute.lineage.redrive_count = 1;
  a.reroute.lineage.original_queue = "orders";
  EXPECT_EQ(store_->SettleFailures(queue_id_, {a}).value(), std::vector<bool>{false});
  a.receipt.lease_token = m.lease_token;
  EXPECT_EQ(store_->SettleFailures(queue_id_, {a}).value(), std::vector<bool>{true});
  EXPECT_EQ(store_->SettleFailures(queue_id_, {a}).value(), std::vector<bool>{false});
  EXPECT_EQ(Depth().leased, 0);
  EXPECT_EQ(Depth().ready, 0);
  auto there = store_->GetDepth(slow, kNow).value();
  EXPECT_EQ(there.delayed, 1);
  auto after = store_->GetTenantUsage("acme").value();
  EXPECT_EQ(after.messages, before.messages);
  EXPECT_EQ(after.bytes, before.bytes);
  queue_id_ = slow;
  EXPECT_TRUE(LeaseN(1, kNow + 9).empty());
  auto got = LeaseN(1, kNow + 10);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, "a");
  EXPECT_EQ(got[0].body, "12345");
  EXPECT_EQ(got[0].delivery_count, 1);
  EXPECT_EQ(got[0].enqueued_at, kNow + 2);
  ASSERT_EQ(got[0].journal.attempts.size(), 1u);
  EXPECT_EQ(got[0].journal.attempts[0].error, "HTTP 500");
  EXPECT_EQ(got[0].lineage.original_queue, "orders");
  EXPECT_EQ(got[0].lineage.redrive_count, 1);
  // Deleting the destination queue now takes the message out of the usage.
  ASSERT_TRUE(store_->DeleteQueue(slow).value());
  EXPECT_EQ(store_->GetTenantUsage("acme").value().messages, before.messages - 1);
}

// An expired message is settled with an empty lease token ("whatever its state"): a reroute
// of one moved nothing, so the sweeper found it expired again on every pass, for ever.
TEST_P(StoreTest, RerouteOfAnExpiredMessageNeedsNoLease) {
  int64_t slow = MakeQueue("orders-slow");
  auto msg = Msg("a", "12345");
  msg.expires_at = kNow + 5;
  ASSERT_TRUE(store_->Publish(Pub({msg})).ok());
  auto expired = store_->ExpiredMessages(kNow + 5, 10).value();
  ASSERT_EQ(expired.size(), 1u);
  FailureAction a;
  a.kind = FailureAction::Kind::kReroute;
  a.receipt = {expired[0].seq, ""};
  a.reroute.queue_id = slow;
  a.reroute.enqueued_at = kNow + 5;
  a.reroute.visible_at = kNow + 5;
  EXPECT_EQ(store_->SettleFailures(queue_id_, {a}).value(), std::vector<bool>{true});
  EXPECT_TRUE(store_->ExpiredMessages(kNow + 5, 10).value().empty());
  EXPECT_EQ(Depth().ready, 0);
  EXPECT_EQ(store_->GetDepth(slow, kNow + 5).value().ready, 1);
}

TEST_P(StoreTest, IdempotencyKeysDeduplicateInsideTheWindowOnly) {
  // (A key repeated within one batch is the engine's to settle: PublishRequest requires the
  // keys of a request to be distinct. engine_test: AKeyRepeatedInABatchIsADuplicateOfItsFirst.)
  auto a = Msg("m1");
  a.idempotency_key = "key";
  auto b = Msg("m2");
  b.idempotency_key = "key";
  auto first = store_->Publish(Pub({a})).value();
  ASSERT_EQ(first.outcomes.size(), 1u);
  EXPECT_FALSE(first.outcomes[0].duplicate);
  auto r = store_->Publish(Pub({b})).value();
  ASSERT_EQ(r.outcomes.size(), 1u);
  EXPECT_TRUE(r.outcomes[0].duplicate);
  EXPECT_EQ(r.outcomes[0].id, "m1");
  auto c = Msg("m3");
  c.idempotency_key = "key";
  auto again = store_->Publish(Pub({c}, kNow + 59'999)).value();
  EXPECT_TRUE(again.outcomes[0].duplicate);
  EXPECT_EQ(again.outcomes[0].id, "m1");
  EXPECT_EQ(store_->DeleteExpiredIdempotencyKeys(kNow + 60'000, 100).value(), 1);
  auto later = store_->Publish(Pub({c}, kNow + 60'001)).value();
  EXPECT_FALSE(later.outcomes[0].duplicate);
  EXPECT_EQ(Depth().ready, 2);
}

TEST_P(StoreTest, MaxLengthRejectsTheWholeBatch) {
  auto req = Pub({Msg("m1"), Msg("m2")});
  req.max_length = 3;
  ASSERT_TRUE(store_->Publish(req).ok());
  auto over = Pub({Msg("m3"), Msg("m4")});
  over.max_length = 3;
  auto r = store_->Publish(over);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->refusal, PublishRefusal::kQueueFull);
  EXPECT_TRUE(r->outcomes.empty());
  EXPECT_EQ(Depth().ready, 2);
}

TEST_P(StoreTest, OverflowDeadLettersTheOldest) {
  auto req = Pub({Msg("m1"), Msg("m2"), Msg("m3")});
  req.max_length = 3;
  req.overflow = OverflowAction::kDeadLetterOldest;
  ASSERT_TRUE(store_->Publish(req).ok());
  auto more = Pub({Msg("m4"), Msg("m5")});
  more.max_length = 3;
  more.overflow = OverflowAction::kDeadLetterOldest;
  auto r = store_->Publish(more).value();
  EXPECT_EQ(r.evicted_ids, (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(Depth().ready, 3);
  auto d = store_->GetDeadLetter("acme", "m1").value();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->reason, "overflow");
}

TEST_P(StoreTest, RetentionDeletesOnlyWhatIsPastIt) {
  auto old = Msg("old");
  old.retain_until = kNow + 10;
  auto keep = Msg("keep");
  keep.retain_until = kNow + 1000;
  ASSERT_TRUE(store_->Publish(Pub({old, keep, Msg("forever")})).ok());
  auto gone = store_->DeleteRetained(kNow + 10, 100).value();
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].id, "old");
  EXPECT_EQ(Depth().ready, 2);
}

TEST_P(StoreTest, ConcurrentPublishersAreAllDurable) {
  constexpr int kThreads = 8, kPerThread = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = store_->Publish(Pub({Msg("t" + std::to_string(t) + "-" + std::to_string(i))}));
        if (!r.ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  Reopen();
  EXPECT_EQ(Depth().ready, kThreads * kPerThread);
}

TEST_P(StoreTest, PublishOverATenantQuotaStoresNothing) {
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1", "aaaa")})).ok());
  auto req = Pub({Msg("m2", "bb"), Msg("m3", "cc")});
  req.tenant_max_messages = 2;
  // (The error code and its words, naming maxMessages or maxBytes, are the engine's:
  // tenancy_test, QuotaRefusalsNameTheQuotaAndTheFigures.)
  auto refused = store_->Publish(req);
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->refusal, PublishRefusal::kTenantMaxMessages);
  EXPECT_EQ(refused->stored, 1);
  EXPECT_EQ(refused->adding, 2);
  EXPECT_EQ(store_->GetTenantUsage("acme").value().messages, 1);
  EXPECT_EQ(Depth().ready, 1);
  req.tenant_max_messages = 3;
  req.tenant_max_bytes = 7;
  refused = store_->Publish(req);
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->refusal, PublishRefusal::kTenantMaxBytes);
  EXPECT_EQ(refused->stored, 4);
  EXPECT_EQ(refused->adding, 4);
  req.tenant_max_bytes = 8;
  auto stored = store_->Publish(req);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->refusal, PublishRefusal::kNone);
  EXPECT_EQ(store_->GetTenantUsage("acme").value().bytes, 8);
}

// ---- Publish's contract, point by point (message_store.h): the checks that must run in the
// writing transaction, so that every backend makes the same decisions.

// Point 1: a key is a duplicate while its expiry is after `now`, whether or not the sweeper
// has forgotten it yet; a fresh message then takes the key over.
TEST_P(StoreTest, PublishKeyIsADuplicateUntilItsExpiryEvenUnswept) {
  auto keyed = [&](const std::string& id) {
    auto m = Msg(id);
    m.idempotency_key = "k";
    return m;
  };
  ASSERT_FALSE(store_->Publish(Pub({keyed("m1")})).value().outcomes[0].duplicate);
  auto dup = store_->Publish(Pub({keyed("m2")}, kNow + 59'999)).value();
  EXPECT_TRUE(dup.outcomes[0].duplicate);
  EXPECT_EQ(dup.outcomes[0].id, "m1");
  auto fresh = store_->Publish(Pub({keyed("m3")}, kNow + 60'000)).value();
  EXPECT_FALSE(fresh.outcomes[0].duplicate) << "expiry == now: no longer remembered";
  auto again = store_->Publish(Pub({keyed("m4")}, kNow + 60'001)).value();
  EXPECT_TRUE(again.outcomes[0].duplicate);
  EXPECT_EQ(again.outcomes[0].id, "m3") << "the key now names the message that took it over";
  auto off = Pub({keyed("m5")}, kNow + 60'002);
  off.dedup_window = 0;
  EXPECT_FALSE(store_->Publish(off).value().outcomes[0].duplicate) << "no window: no check";
  EXPECT_EQ(Depth(kNow + 60'002).ready, 3);
}

// Point 2: a batch of duplicates only is answered, whatever the limits: nothing is checked.
TEST_P(StoreTest, PublishOfDuplicatesOnlyIsNeverRefused) {
  auto m = Msg("m1");
  m.idempotency_key = "k";
  ASSERT_TRUE(store_->Publish(Pub({m, Msg("m2")})).ok());
  auto again = Pub({m});
  again.max_length = 1;           // the queue holds 2
  again.tenant_max_messages = 1;  // the tenant stores 2
  again.tenant_max_bytes = 1;     // and 2 bytes
  auto r = store_->Publish(again);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->refusal, PublishRefusal::kNone);
  ASSERT_EQ(r->outcomes.size(), 1u);
  EXPECT_TRUE(r->outcomes[0].duplicate);
}

// Point 3: the quotas compare usage (messages and dead letters) plus the fresh messages only,
// messages before bytes; reaching a quota exactly is allowed.
TEST_P(StoreTest, PublishQuotaCountsFreshMessagesAndDeadLetters) {
  MakeQueue("dead-letters", QueueKind::kDeadLetter);
  auto keyed = Msg("m1", "aa");
  keyed.idempotency_key = "k";
  ASSERT_TRUE(store_->Publish(Pub({keyed, Msg("m2", "bb")})).ok());
  auto leased = LeaseN(1);
  ASSERT_EQ(leased.size(), 1u);
  ASSERT_TRUE(DeadLetter(store_.get(), queue_id_, {leased[0].seq, leased[0].lease_token}, {},
                         {"dead-letters", "rejected", "x", kNow, 0})
                  .value());
  // Usage: 2 messages (one a dead letter), 4 bytes. The duplicate adds nothing.
  auto dup = keyed;
  dup.id = "m9";
  auto req = Pub({dup, Msg("m3", "ccc")});
  req.tenant_max_messages = 3;
  req.tenant_max_bytes = 7;
  auto r = store_->Publish(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->refusal, PublishRefusal::kNone) << "2 + 1 <= 3 messages, 4 + 3 <= 7 bytes";
  ASSERT_EQ(r->outcomes.size(), 2u);
  EXPECT_TRUE(r->outcomes[0].duplicate);
  // Both quotas passed: the messages quota is the one reported.
  auto both = Pub({Msg("m4", "dddd")});
  both.tenant_max_messages = 3;
  both.tenant_max_bytes = 8;
  r = store_->Publish(both);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->refusal, PublishRefusal::kTenantMaxMessages);
  EXPECT_EQ(r->stored, 3);
  EXPECT_EQ(r->adding, 1);
  EXPECT_EQ(store_->GetTenantUsage("acme").value().messages, 3);
  EXPECT_EQ(Depth().ready, 2) << "m2 and m3; nothing of the refused batch";
}

// Point 4: overflow counts every message of the queue, leased ones included, but evicts only
// unleased ones (ready or delayed), lowest seq first; when it cannot make room, or the batch
// alone is larger than the queue, it refuses and moves nothing.
TEST_P(StoreTest, PublishOverflowEvictsTheOldestUnleasedOrRefusesWithoutEvicting) {
  MakeQueue("dead-letters", QueueKind::kDeadLetter);
  auto delayed = Msg("m2");
  delayed.visible_at = kNow + 60'000;
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1"), delayed, Msg("m3"), Msg("m4")})).ok());
  ASSERT_EQ(LeaseN(1)[0].id, "m1");  // the oldest is leased: counted, never evicted
  auto evicting = [&](std::vector<MessageRecord> msgs) {
    auto req = Pub(std::move(msgs));
    req.max_length = 4;
    req.overflow = OverflowAction::kDeadLetterOldest;
    return req;
  };
  auto r = store_->Publish(evicting({Msg("m5"), Msg("m6")}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->refusal, PublishRefusal::kNone);
  EXPECT_EQ(r->evicted_ids, (std::vector<std::string>{"m2", "m3"})) << "delayed m2 included";
  EXPECT_EQ(store_->GetDeadLetter("acme", "m2").value()->reason, "overflow");
  EXPECT_EQ(store_->GetDeadLetter("acme", "m2").value()->origin, "orders");
  // Queue: m1 (leased), m4, m5, m6. Three more would need three unleased: there are.
  // Four more (F == max_length) would need four: only three are unleased.
  r = store_->Publish(evicting({Msg("a"), Msg("b"), Msg("c"), Msg("d")}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->refusal, PublishRefusal::kQueueFull);
  EXPECT_EQ(r->stored, 4);
  EXPECT_EQ(r->adding, 4);
  EXPECT_TRUE(r->evicted_ids.empty());
  EXPECT_FALSE(store_->GetDeadLetter("acme", "m4").value().has_value()) << "nothing moved";
  // A batch larger than the queue can hold never fits: refused before any eviction.
  r = store_->Publish(evicting({Msg("a"), Msg("b"), Msg("c"), Msg("d"), Msg("e")}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->refusal, PublishRefusal::kQueueFull);
  // A quota refusal comes first and moves nothing either.
  auto quota = evicting({Msg("a")});
  quota.tenant_max_messages = 1;
  r = store_->Publish(quota);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->refusal, PublishRefusal::kTenantMaxMessages);
  EXPECT_FALSE(store_->GetDeadLetter("acme", "m4").value().has_value());
  auto d = Depth();
  EXPECT_EQ(d.leased, 1);
  EXPECT_EQ(d.ready, 3);
  EXPECT_EQ(d.dead_lettered, 2);
}

// The one instantiation of StoreTest, for the tests of this file and of control_store_test.cc
// alike (store_test_fixture.h).
INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::ValuesIn(Backends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace redrive::store

namespace redrive::store {
namespace {

TEST_P(StoreTest, PublishManyIsAllOrNothingAcrossQueues) {
  int64_t other = MakeQueue("audit");
  auto a = Pub({Msg("a1"), Msg("a2")});
  auto b = Pub({Msg("b1")});
  b.queue_id = other;
  auto stored = store_->PublishMany({a, b});
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  ASSERT_EQ(stored->size(), 2u);
  EXPECT_EQ((*stored)[0].outcomes.size(), 2u);
  EXPECT_EQ((*stored)[1].outcomes[0].id, "b1");
  // The second request is refused (its queue is full): the first stores nothing either.
  auto c = Pub({Msg("a3")});
  auto d = Pub({Msg("b2")});
  d.queue_id = other;
  d.max_length = 1;
  auto refused = store_->PublishMany({c, d});
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ((*refused)[0].refusal, PublishRefusal::kNone);
  EXPECT_TRUE((*refused)[0].outcomes.empty());
  EXPECT_EQ((*refused)[1].refusal, PublishRefusal::kQueueFull);
  EXPECT_EQ(Depth().ready, 2);
  EXPECT_EQ(store_->GetDepth(other, kNow).value().ready, 1);
  EXPECT_EQ(store_->GetTenantUsage("acme").value().messages, 3);
}

TEST_P(StoreTest, ArrivalDeathStoresTheMessagesAsDeadLetters) {
  auto req = Pub({Msg("lost")});
  req.arrival_death = DeathInfo{"dead-letters", "no-route", "nobody", kNow, 0, "g", "sig"};
  auto r = store_->Publish(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Depth().ready, 0);
  auto d = store_->GetDeadLetter("acme", "lost").value();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->reason, "no-route");
  EXPECT_EQ(d->origin, "orders");
  EXPECT_EQ(store_->GetTenantUsage("acme").value().messages, 1);
}

TEST_P(StoreTest, ARequeueThatUndoesTheDeliveryGivesTheCountBack) {
  ASSERT_TRUE(store_->Publish(Pub({Msg("m1")})).ok());
  auto m = LeaseN(1)[0];
  ASSERT_EQ(m.delivery_count, 1);
  FailureAction release;
  release.kind = FailureAction::Kind::kRequeue;
  release.receipt = {m.seq, m.lease_token};
  release.visible_at = kNow;
  release.undo_delivery = true;
  ASSERT_TRUE(store_->SettleFailures(queue_id_, {release}).value()[0]);
  auto again = LeaseN(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].delivery_count, 1);
  EXPECT_TRUE(again[0].journal.attempts.empty());
}

// ---- topic events

// Topic message e1 fans out to subscriptions a (queue orders) and b, e2 to a only.
TEST_P(StoreTest, TopicEventsFollowEachCopyThroughAckDeadLetterRedriveAndDrop) {
  int64_t topic = MakeQueue("t", QueueKind::kTopic);
  int64_t other = MakeQueue("t:b");
  auto a = Pub({Msg("e1:a"), Msg("e2:a")});
  auto b = Pub({Msg("e1:b")});
  b.queue_id = other;
  std::vector<TopicEventWrite> events(2);
  events[0].event =
      TopicEventRecord{0, "acme", topic, "e1", kNow, kNow + 1000, {{"k", "v"}}, "", "body-1", 0};
  events[0].copies = {{0, 0, "a"}, {1, 0, "b"}};
  events[1].event = TopicEventRecord{0, "acme", topic, "e2", kNow, kNow + 2000, {}, "", "b2", 0};
  events[1].copies = {{0, 1, "a"}};
  ASSERT_TRUE(store_->PublishMany({a, b}, events).ok());
  auto facts = [&](const std::string& id) {
    auto row = store_->GetTopicEvent("acme", topic, id).value();
    EXPECT_TRUE(row.has_value());
    std::map<std::string, TopicDeliveryFacts> by;
    if (row) {
      for (auto& f : row->deliveries) by[f.subscription] = f;
    }
    return by;
  };
  auto f = facts("e1");
  ASSERT_EQ(f.size(), 2u);
  EXPECT_TRUE(f["a"].live);
  EXPECT_FALSE(f["a"].leased);
  EXPECT_EQ(f["b"].queue_id, other);
  auto row = store_->GetTopicEvent("acme", topic, "e1").value();
  EXPECT_EQ(row->event.body, "body-1");
  EXPECT_EQ(row->event.attributes.at("k"), "v");

  // a: leased, then acked (delivered, at the lease's time); e2:a dead-lettered.
  auto leased = LeaseN(2, kNow + 10);
  ASSERT_EQ(leased.size(), 2u);
  EXPECT_TRUE(facts("e1")["a"].leased);
  ASSERT_TRUE(store_->Ack(queue_id_, {{leased[0].seq, leased[0].lease_token}}).value()[0]);
  f = facts("e1");
  EXPECT_FALSE(f["a"].live);
  EXPECT_EQ(f["a"].delivered_at, kNow + 10);
  ASSERT_TRUE(DeadLetter(store_.get(), queue_id_, {leased[1].seq, leased[1].lease_token}, {},
                         DeathInfo{"dead-letters", "max-deliveries", "503", kNow + 20, 0})
                  .value());
  auto f2 = facts("e2");
  EXPECT_TRUE(f2["a"].dead_lettered);
  EXPECT_EQ(f2["a"].dead_letter_reason, "max-deliveries");
  EXPECT_EQ(f2["a"].dead_lettered_at, kNow + 20);

  // Redriven: the redriven message is the copy again.
  auto dl = store_->GetDeadLetter("acme", "e2:a").value();
  ASSERT_TRUE(dl.has_value());
  ASSERT_EQ(
      store_
          ->Redrive("acme",
                    {RedriveItem{dl->seq, queue_id_, "orders", 0, 0, kNow + 30, 0, 0, Lineage{}}},
                    kNow + 30)
          .value()[0],
      RedriveOutcome::kMoved);
  f2 = facts("e2");
  EXPECT_TRUE(f2["a"].live);
  EXPECT_FALSE(f2["a"].dead_lettered);

  // Listing: newest first, with the time bounds and the cursor.
  TopicEventQuery q;
  q.tenant = "acme";
  q.topic_id = topic;
  auto list = store_->ListTopicEvents(q).value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].event.id, "e2");
  EXPECT_TRUE(list[0].event.body.empty());
  EXPECT_EQ(list[0].event.body_size, 2);
  q.before_seq = list[0].event.seq;
  list = store_->ListTopicEvents(q).value();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].event.id, "e1");
  q.before_seq = 0;
  q.since = kNow + 1;
  EXPECT_TRUE(store_->ListTopicEvents(q).value().empty());

  // Retention: e1 (kept until kNow + 1000) goes, e2 stays.
  EXPECT_EQ(store_->DeleteExpiredTopicEvents(kNow + 1000, 100).value(), 1);
  EXPECT_FALSE(store_->GetTopicEvent("acme", topic, "e1").value().has_value());
  EXPECT_TRUE(store_->GetTopicEvent("acme", topic, "e2").value().has_value());
}

TEST_P(StoreTest, RedeliverPublishesACopyUnlessOneIsLiveOrDeadLettered) {
  int64_t topic = MakeQueue("t", QueueKind::kTopic);
  std::vector<TopicEventWrite> events(1);
  events[0].event = TopicEventRecord{0, "acme", topic, "e1", kNow, kNow + 1000, {}, "", "b", 0};
  events[0].copies = {{0, 0, "a"}};
  ASSERT_TRUE(store_->PublishMany({Pub({Msg("e1:a")})}, events).ok());
  int64_t seq = store_->GetTopicEvent("acme", topic, "e1").value()->event.seq;
  RedeliverRequest r;
  r.event_seq = seq;
  r.subscription = "a";
  r.publish = Pub({Msg("e1:a")});
  r.publish.dedup_window = 0;
  EXPECT_EQ(store_->Redeliver(r).value().outcome, RedeliverResult::Outcome::kLive);
  EXPECT_EQ(Depth().ready, 1);
  auto m = LeaseN(1);
  ASSERT_TRUE(store_->Ack(queue_id_, {{m[0].seq, m[0].lease_token}}).value()[0]);
  auto out = store_->Redeliver(r).value();
  EXPECT_EQ(out.outcome, RedeliverResult::Outcome::kPublished);
  EXPECT_EQ(out.publish.refusal, PublishRefusal::kNone);
  EXPECT_EQ(Depth().ready, 1);
  auto row = store_->GetTopicEvent("acme", topic, "e1").value();
  ASSERT_EQ(row->deliveries.size(), 1u);
  EXPECT_TRUE(row->deliveries[0].live);
  EXPECT_EQ(row->deliveries[0].delivered_at, 0);
  EXPECT_EQ(row->deliveries[0].redeliveries, 1);
  // Dead-lettered: nothing written.
  m = LeaseN(1, kNow + 5);
  ASSERT_TRUE(DeadLetter(store_.get(), queue_id_, {m[0].seq, m[0].lease_token}, {},
                         DeathInfo{"dead-letters", "rejected", "no", kNow + 6, 0})
                  .value());
  EXPECT_EQ(store_->Redeliver(r).value().outcome, RedeliverResult::Outcome::kDeadLettered);
  EXPECT_EQ(Depth().ready, 0);
  // A full queue refuses, as a publish would; an unknown event is gone.
  r.subscription = "b";
  r.publish.max_length = 1;
  ASSERT_TRUE(store_->Publish(Pub({Msg("other")})).ok());
  out = store_->Redeliver(r).value();
  EXPECT_EQ(out.publish.refusal, PublishRefusal::kQueueFull);
  EXPECT_EQ(store_->GetTopicEvent("acme", topic, "e1").value()->deliveries.size(), 1u);
  r.event_seq = seq + 100;
  EXPECT_EQ(store_->Redeliver(r).value().outcome, RedeliverResult::Outcome::kGone);
}

TEST_P(StoreTest, AnEventWhoseCopiesWereAllDuplicatesIsNotRecorded) {
  int64_t topic = MakeQueue("t", QueueKind::kTopic);
  auto req = Pub({Msg("e1:a")});
  req.messages[0].idempotency_key = "k";
  std::vector<TopicEventWrite> events(1);
  events[0].event = TopicEventRecord{0, "acme", topic, "e1", kNow, kNow + 1000, {}, "k", "b", 0};
  events[0].copies = {{0, 0, "a"}};
  ASSERT_TRUE(store_->PublishMany({req}, events).ok());
  req.messages[0].id = "e2:a";
  events[0].event.id = "e2";
  auto again = store_->PublishMany({req}, events).value();
  EXPECT_TRUE(again[0].outcomes[0].duplicate);
  EXPECT_FALSE(store_->GetTopicEvent("acme", topic, "e2").value().has_value());
  // Deleting the topic deletes its events.
  ASSERT_TRUE(store_->DeleteQueue(topic).value());
  EXPECT_FALSE(store_->GetTopicEvent("acme", topic, "e1").value().has_value());
}

}  // namespace
}  // namespace redrive::store
