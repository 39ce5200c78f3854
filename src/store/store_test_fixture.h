// The storage conformance suite's fixture: the table of backends, StoreTest and its helpers.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store/postgres/pg_test_database.h"
#include "store/store.h"

// The storage conformance suite: every backend must pass every test of message_store_test.cc
// and control_store_test.cc (one file per port). Backends register a factory in kBackends:
// SQLite (a file in the test's directory) and PostgreSQL (a database of its own on the test
// cluster, named after the test's directory: pg_test_database.h).
namespace redrive::store {

struct Backend {
  std::string name;
  // Opens the store at `dir` (the same dir reopens the same data).
  std::function<std::unique_ptr<Store>(const std::string& dir)> open;
  // Removes what `open` made outside `dir` (nothing for SQLite).
  std::function<void(const std::string& dir)> destroy = [](const std::string&) {};
};

inline void PrintTo(const Backend& backend, std::ostream* os) { *os << backend.name; }

inline const std::vector<Backend>& Backends() {
  static const std::vector<Backend> kBackends = {
      {"sqlite",
       [](const std::string& dir) {
         auto s = OpenStore("sqlite:" + dir + "/store.db");
         EXPECT_TRUE(s.ok()) << s.status().ToString();
         return s.ok() ? std::move(s).value() : nullptr;
       }},
      {"postgres",
       [](const std::string& dir) {
         auto s = OpenStore(postgres::TestDatabase(dir));
         EXPECT_TRUE(s.ok()) << s.status().ToString();
         return s.ok() ? std::move(s).value() : nullptr;
       },
       [](const std::string& dir) { postgres::DropTestDatabase(dir); }}};
  return kBackends;
}

inline constexpr TimeMs kNow = 1'700'000'000'000;

// One failed delivery at a time, through SettleFailures.
inline Result<bool> Settle(Store* store, int64_t queue_id, FailureAction action) {
  REDRIVE_ASSIGN_OR_RETURN(auto held, store->SettleFailures(queue_id, {std::move(action)}));
  return static_cast<bool>(held.at(0));
}
inline Result<bool> Requeue(Store* store, int64_t queue_id, const Receipt& r, TimeMs visible_at,
                            const Journal& journal) {
  FailureAction a;
  a.kind = FailureAction::Kind::kRequeue;
  a.receipt = r;
  a.visible_at = visible_at;
  a.journal = journal;
  return Settle(store, queue_id, std::move(a));
}
inline Result<bool> DeadLetter(Store* store, int64_t queue_id, const Receipt& r,
                               const Journal& journal, const DeathInfo& death) {
  FailureAction a;
  a.kind = FailureAction::Kind::kDeadLetter;
  a.receipt = r;
  a.journal = journal;
  a.death = death;
  return Settle(store, queue_id, std::move(a));
}

// The fixture of both halves of the suite, message_store_test.cc and control_store_test.cc: one
// class (not in an unnamed namespace, so both files name the same type) under one suite name,
// StoreTest, instantiated once, in message_store_test.cc, so every test keeps its name
// Backends/StoreTest.<Test>/<backend>.
class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/store-" + std::to_string(getpid()) + "-" +
           std::to_string(counter_++);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
    ASSERT_TRUE(store_->CreateTenant({"acme", kNow}).ok());
    queue_id_ = MakeQueue("orders");
  }
  void TearDown() override {
    store_.reset();
    GetParam().destroy(dir_);
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }
  int64_t MakeQueue(const std::string& name, QueueKind kind = QueueKind::kStandard) {
    auto id = store_->CreateQueue({0, "acme", name, kind, "{}", kNow, kNow});
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? id.value() : 0;
  }
  MessageRecord Msg(const std::string& id, const std::string& body = "b") {
    MessageRecord m;
    m.id = id;
    m.body = body;
    m.attributes = {{"k", "v"}};
    m.published_at = m.enqueued_at = m.visible_at = kNow;
    return m;
  }
  PublishRequest Pub(std::vector<MessageRecord> msgs, TimeMs now = kNow) {
    PublishRequest r;
    r.queue_id = queue_id_;
    r.tenant = "acme";
    r.messages = std::move(msgs);
    r.now = now;
    r.dedup_window = 60'000;
    r.overflow_death = DeathInfo{"dead-letters", "overflow", "full", now, 0};
    return r;
  }
  std::vector<MessageRecord> LeaseN(int n, TimeMs now = kNow, TimeMs until = kNow + 30'000) {
    LeaseRequest r;
    r.queue_id = queue_id_;
    r.now = now;
    r.lease_until = until;
    r.consumer = "c1";
    r.max_messages = n;
    r.lease_token = "tok-" + std::to_string(now);
    auto out = store_->Lease(r);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? out.value() : std::vector<MessageRecord>{};
  }
  QueueDepth Depth(TimeMs now = kNow) { return store_->GetDepth(queue_id_, now).value(); }

  static inline int counter_ = 0;
  std::string dir_;
  std::unique_ptr<Store> store_;
  int64_t queue_id_ = 0;
};

}  // namespace redrive::store
