// Coordination: what the engine's services tell each other and other nodes sharing the store.
// Three things cross nodes:
//   - wake-ups: messages of a queue became ready, so parked receives should lease;
//   - cache invalidation: a queue, a tenant or a token changed, so cached copies must go;
//   - claims: singleton background work (the sweeper's turn, a redrive job's runner) runs on
//     one node at a time, under an expiring claim.
// LocalCoordinator implements it in process (one node, the embedded store). PgCoordinator
// (store/postgres/pg_coordinator.h) implements it for nodes sharing a PostgreSQL, with
// LISTEN/NOTIFY (wake-ups and invalidations, coalesced) and a claims table
// (docs/design/postgres.md). coordination_test.cc holds the in-process contract,
// pg_coordinator_test.cc what crosses nodes.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/clock.h"

namespace redrive::engine {

// What an invalidation names.
enum class CacheScope {
  kQueue,   // key "tenant/name": the queue's record or configuration changed, or it is gone
  kTenant,  // key the tenant's name: its quotas changed, or it is being deleted (with its
            // queues and tokens)
  kToken,   // key the token id: revoked or rotated
  kAll,     // key "": everything cached may be stale (a coordinator that lost notifications
            // says so); never sent by the engine itself
};

// Hears what Coordinator carries. Calls may come on any thread, concurrently; a listener does
// its own locking and must not call back into the Coordinator's Subscribe or Unsubscribe.
class CoordinationListener {
 public:
  virtual ~CoordinationListener() = default;
  virtual void OnReady(int64_t /*queue_id*/) {}
  virtual void OnInvalidate(CacheScope /*scope*/, const std::string& /*key*/) {}
};

class Coordinator {
 public:
  virtual ~Coordinator() = default;

  // This node's id: the holder of its claims.
  virtual const std::string& node_id() const = 0;

  // Listeners are not owned; Unsubscribe before destroying one. After Unsubscribe returns, the
  // listener is not called again.
  virtual void Subscribe(CoordinationListener* listener) = 0;
  virtual void Unsubscribe(CoordinationListener* listener) = 0;

  // ---- wake-ups
  // Messages of `queue_id` became ready now (a publish, a requeue, a restore). Never blocks on
  // I/O; safe to call with the caller's locks held only if those locks are never taken by a
  // listener (the engine calls it with none held).
  // Contract: every listener of this node hears it before SignalReady returns. Other nodes'
  // listeners hear it later, possibly coalesced (several signals of one queue heard once), and
  // possibly not at all (a lost notification): a listener that waits for messages must also
  // re-check on its own, so that correctness never depends on a signal.
  virtual void SignalReady(int64_t queue_id) = 0;

  // ---- cache invalidation
  // Cached copies of `key` are stale. Contract: this node's listeners hear it before Invalidate
  // returns (a node reads its own writes); other nodes' within a bound the implementation
  // states (PostgreSQL: the NOTIFY delivery, well under a second). Caches still expire by
  // their own TTL, which bounds staleness if a notification is lost.
  virtual void Invalidate(CacheScope scope, const std::string& key) = 0;

  // ---- claims on singleton work
  // Claims `name` for `holder` until now + ttl. True when `holder` holds it afterwards: newly,
  // because nobody held it or the last claim expired, or renewed, because `holder` held it
  // already. False while another holder's claim is unexpired.
  // Contract: at no time do two holders both hold an unexpired claim of one name. A holder
  // renews well before its ttl ends (a third of it is the engine's habit) and stops the work
  // as soon as a renewal fails. A holder that dies keeps the claim until its ttl ends; then
  // another takes it. Claims are by wall clock of the store (PostgreSQL: now() of the
  // database), so nodes need not agree on time.
  virtual bool Claim(const std::string& name, const std::string& holder, DurationMs ttl) = 0;
  // Gives up `name` if `holder` holds it; otherwise does nothing.
  virtual void Release(const std::string& name, const std::string& holder) = 0;

  // ---- nodes
  // How many nodes share the store now, this one included (at least 1): what per-node limits
  // (a tenant's request rate) are divided by, so that together the nodes keep the limit.
  virtual int LiveNodes() { return 1; }
};

// One process: signals and invalidations reach the listeners at once, on the caller's thread;
// claims live in a map. Thread-safe.
class LocalCoordinator : public Coordinator {
 public:
  explicit LocalCoordinator(Clock& clock, std::string node_id = "local");

  const std::string& node_id() const override { return node_id_; }
  void Subscribe(CoordinationListener* listener) override;
  void Unsubscribe(CoordinationListener* listener) override;
  void SignalReady(int64_t queue_id) override;
  void Invalidate(CacheScope scope, const std::string& key) override;
  bool Claim(const std::string& name, const std::string& holder, DurationMs ttl) override;
  void Release(const std::string& name, const std::string& holder) override;

 private:
  struct ClaimRow {
    std::string holder;
    TimeMs until = 0;
  };

  Clock& clock_;
  const std::string node_id_;
  // Shared while calling listeners: several signals run at once; Subscribe waits for them.
  std::shared_mutex listeners_mu_;
  std::vector<CoordinationListener*> listeners_;  // GUARDED_BY(listeners_mu_)
  std::mutex claims_mu_;
  std::map<std::string, ClaimRow> claims_;  // GUARDED_BY(claims_mu_)
};

}  // namespace redrive::engine
