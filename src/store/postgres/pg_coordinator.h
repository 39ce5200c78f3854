// PgCoordinator: the Coordinator (engine/coordination.h) of nodes that share one PostgreSQL.
//
// - Wake-ups and invalidations reach this node's listeners at once, on the caller's thread, and
//   other nodes through NOTIFY on the channel `redrive`: a sender thread coalesces what was
//   signalled since its last NOTIFY (each queue id once) into payloads of up to ~7,000 bytes,
//   "<node>\n" followed by lines "r <queue id>" or "i <scope> <key>". A listener thread holds a
//   connection that LISTENs and hands what other nodes sent to this node's listeners. A lost
//   notification is never a correctness problem: parked receives re-check on their own, and
//   caches expire by their TTL. When the listening connection is lost and opened again, every
//   listener is told to drop everything it caches (CacheScope::kAll), since what was sent
//   meanwhile is gone.
// - Claims are rows of the `claims` table, held until `until` by the database's clock (now()),
//   so nodes need not agree on time; taking or renewing one is one INSERT ... ON CONFLICT
//   DO UPDATE ... WHERE the holder is the same or the claim expired. When the database cannot
//   be reached, Claim answers false: the holder stops its work.
// - Live nodes: each node renews a claim `node/<id>` every second (ttl 5 s); LiveNodes() counts
//   the unexpired ones, which the engine uses to share rate limits between nodes.
//
// Thread-safety: thread-safe. Threads: the sender and the listener, joined by the destructor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/coordination.h"
#include "store/postgres/pg_conn.h"

namespace redrive::store::postgres {

class PgCoordinator : public engine::Coordinator {
 public:
  // Starts its threads; they connect on their own and keep trying while the database is away.
  PgCoordinator(std::string conninfo, std::string node_id);
  ~PgCoordinator() override;

  const std::string& node_id() const override { return node_id_; }
  void Subscribe(engine::CoordinationListener* listener) override;
  void Unsubscribe(engine::CoordinationListener* listener) override;
  void SignalReady(int64_t queue_id) override;
  void Invalidate(engine::CacheScope scope, const std::string& key) override;
  bool Claim(const std::string& name, const std::string& holder, DurationMs ttl) override;
  void Release(const std::string& name, const std::string& holder) override;
  int LiveNodes() override;

  // True while the listening connection is up (for /readyz and tests).
  bool listening() const { return listening_.load(); }

 private:
  void SenderLoop();
  void ListenerLoop();
  // Hands one payload from another node to this node's listeners.
  void Deliver(const std::string& payload);
  void TellLocal(engine::CacheScope scope, const std::string& key);

  const std::string conninfo_;
  const std::string node_id_;
  PgPool pool_;  // claims and the sender's NOTIFYs

  std::shared_mutex listeners_mu_;
  std::vector<engine::CoordinationListener*> listeners_;  // GUARDED_BY(listeners_mu_)

  std::mutex mu_;
  std::condition_variable cv_;
  std::set<int64_t> ready_;              // GUARDED_BY(mu_): to send
  std::set<std::string> invalidations_;  // GUARDED_BY(mu_): "i <scope> <key>" lines
  bool stopping_ = false;                // GUARDED_BY(mu_)
  std::atomic<bool> listening_{false};
  std::atomic<int> live_nodes_{1};
  std::thread sender_;
  std::thread listener_;
};

}  // namespace redrive::store::postgres
