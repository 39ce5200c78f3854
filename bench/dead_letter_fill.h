// Set-up shared by the benchmarks that start from many dead letters (export_bench.cc,
// ticket_bench.cc), not a measurement: `count` dead letters of `queue` (created here), written
// through the engine as bench/fill.cc writes them. The queue is created with maxLength 1000 and
// overflow dead-letter-oldest, so each published batch dead-letters as many of the oldest in
// the same transaction (reason `overflow`); 4 threads publish at once and share group commits.
// Then the limit is lifted and the last 1000, still queued, are received and acked: what remains
// is exactly `count` dead letters whose origin is an empty queue.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"

namespace redrive::bench {

// `make` fills the n-th message (0-based; its body and attributes), with a generator of the
// publishing thread's own.
using MakeMessage = std::function<void(int64_t n, std::mt19937_64& rng, engine::NewMessage* m)>;

inline void FillDeadLetters(engine::Engine& eng, const std::string& tenant,
                            const std::string& queue, int64_t count, const MakeMessage& make) {
  auto must = [](const Status& st, const char* what) {
    if (st.ok()) return;
    std::fprintf(stderr, "fill: %s: %s\n", what, st.ToString().c_str());
    std::exit(1);
  };
  constexpr int64_t kQueued = 1000;
  engine::QueueConfig limited;
  limited.max_length = kQueued;
  limited.overflow = engine::OverflowPolicy::kDeadLetterOldest;
  must(eng.queues().CreateQueue(tenant, queue, limited).status(), "create queue");
  constexpr int64_t kBatch = 100;
  const int64_t total = count + kQueued;
  std::atomic<int64_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
      std::vector<engine::NewMessage> messages;
      for (;;) {
        int64_t n = next.fetch_add(kBatch);
        if (n >= total) break;
        messages.resize(static_cast<size_t>(std::min(kBatch, total - n)));
        for (auto& m : messages) make(n++, rng, &m);
        must(eng.messages().Publish(tenant, queue, messages).status(), "publish");
      }
    });
  }
  for (auto& t : threads) t.join();
  must(eng.queues().UpdateQueue(tenant, queue, engine::QueueConfig{}).status(), "lift the limit");
  for (;;) {
    engine::ReceiveOptions ro;
    ro.max_messages = 1000;
    auto got = eng.messages().Receive(tenant, queue, ro);
    must(got.status(), "receive");
    if (got->empty()) break;
    std::vector<std::string> receipts;
    for (const auto& d : *got) receipts.push_back(d.receipt);
    must(eng.messages().Ack(tenant, queue, receipts).status(), "ack");
  }
}

}  // namespace redrive::bench
