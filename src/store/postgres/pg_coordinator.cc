#include "store/postgres/pg_coordinator.h"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <sstream>

namespace redrive::store::postgres {
namespace {

using engine::CacheScope;

constexpr const char* kChannel = "redrive";
// NOTIFY payloads must stay under 8,000 bytes.
constexpr size_t kMaxPayload = 7'000;
// How often the listener re-checks its connection, and a lost one is tried again.
constexpr int kPollMs = 250;
constexpr auto kReconnectDelay = std::chrono::milliseconds(500);
// This node's presence: a claim `node/<id>`, renewed every second for 5 seconds.
constexpr DurationMs kNodeTtl = 5'000;
constexpr auto kNodeRenew = std::chrono::seconds(1);

char ScopeLetter(CacheScope scope) {
  switch (scope) {
    case CacheScope::kQueue:
      return 'q';
    case CacheScope::kTenant:
      return 't';
    case CacheScope::kToken:
      return 'k';
    case CacheScope::kAll:
      return 'a';
  }
  return 'a';
}

std::optional<CacheScope> ScopeOf(char c) {
  switch (c) {
    case 'q':
      return CacheScope::kQueue;
    case 't':
      return CacheScope::kTenant;
    case 'k':
      return CacheScope::kToken;
    case 'a':
      return CacheScope::kAll;
    default:
      return std::nullopt;
  }
}

}  // namespace

PgCoordinator::PgCoordinator(std::string conninfo, std::string node_id)
    : conninfo_(std::move(conninfo)), node_id_(std::move(node_id)), pool_(conninfo_, 2) {
  sender_ = std::thread([this] { SenderLoop(); });
  listener_ = std::thread([this] { ListenerLoop(); });
}

PgCoordinator::~PgCoordinator() {
  {
    std::lock_guard l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  sender_.join();
  listener_.join();
  Release("node/" + node_id_, node_id_);
}

void PgCoordinator::Subscribe(engine::CoordinationListener* listener) {
  std::unique_lock l(listeners_mu_);
  listeners_.push_back(listener);
}

void PgCoordinator::Unsubscribe(engine::CoordinationListener* listener) {
  std::unique_lock l(listeners_mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

void PgCoordinator::SignalReady(int64_t queue_id) {
  {
    std::shared_lock l(listeners_mu_);
    for (auto* listener : listeners_) listener->OnReady(queue_id);
  }
  {
    std::lock_guard l(mu_);
    ready_.insert(queue_id);
  }
  cv_.notify_all();
}

void PgCoordinator::TellLocal(CacheScope scope, const std::string& key) {
  std::shared_lock l(listeners_mu_);
  for (auto* listener : listeners_) listener->OnInvalidate(scope, key);
}

void PgCoordinator::Invalidate(CacheScope scope, const std::string& key) {
  TellLocal(scope, key);
  // Keys are names and ids: no line breaks. One that had some would only be cut short.
  std::string line = std::string("i ") + ScopeLetter(scope) + " " + key;
  line.erase(std::remove(line.begin(), line.end(), '\n'), line.end());
  {
    std::lock_guard l(mu_);
    invalidations_.insert(std::move(line));
  }
  cv_.notify_all();
}

bool PgCoordinator::Claim(const std::string& name, const std::string& holder, DurationMs ttl) {
  bool held = false;
  Status st = pool_.Run([&](PgConn& c) -> Status {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r,
        c.Exec("INSERT INTO claims(name, holder, until) "
               "VALUES($1, $2, now() + $3 * interval '1 millisecond') "
               "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until "
               "WHERE claims.holder = EXCLUDED.holder OR claims.until <= now() RETURNING holder",
               Params().Text(name).Text(holder).Int(ttl)));
    held = r.size() == 1;
    return Status::Ok();
  });
  if (!st.ok()) {
    spdlog::warn("claim {}: {}", name, st.message());
    return false;
  }
  return held;
}

void PgCoordinator::Release(const std::string& name, const std::string& holder) {
  Status st = pool_.Run([&](PgConn& c) {
    return c
        .Exec("DELETE FROM claims WHERE name = $1 AND holder = $2",
              Params().Text(name).Text(holder))
        .status();
  });
  if (!st.ok()) spdlog::warn("release {}: {}", name, st.message());
}

int PgCoordinator::LiveNodes() { return std::max(1, live_nodes_.load()); }

void PgCoordinator::SenderLoop() {
  auto next_presence = std::chrono::steady_clock::now();
  for (;;) {
    std::set<int64_t> ready;
    std::set<std::string> invalidations;
    {
      std::unique_lock l(mu_);
      cv_.wait_until(l, next_presence,
                     [&] { return stopping_ || !ready_.empty() || !invalidations_.empty(); });
      if (stopping_) return;
      ready.swap(ready_);
      invalidations.swap(invalidations_);
    }
    if (std::chrono::steady_clock::now() >= next_presence) {
      next_presence = std::chrono::steady_clock::now() + kNodeRenew;
      Claim("node/" + node_id_, node_id_, kNodeTtl);
      Status st = pool_.Run([&](PgConn& c) -> Status {
        REDRIVE_ASSIGN_OR_RETURN(
            Rows r,
            c.Exec("SELECT count(*) FROM claims WHERE name LIKE 'node/%' AND until > now()"));
        live_nodes_ = static_cast<int>(std::max<int64_t>(1, r.Int(0, 0)));
        return Status::Ok();
      });
      (void)st;  // the last count stands while the database is away
    }
    if (ready.empty() && invalidations.empty()) continue;
    // Payloads: the node's id, then one line per item, cut before kMaxPayload.
    std::vector<std::string> payloads;
    std::string current = node_id_ + "\n";
    auto add = [&](const std::string& line) {
      if (current.size() + line.size() + 1 > kMaxPayload) {
        payloads.push_back(std::move(current));
        current = node_id_ + "\n";
      }
      current += line;
      current += '\n';
    };
    for (const auto& line : invalidations) add(line);
    for (int64_t q : ready) add("r " + std::to_string(q));
    payloads.push_back(std::move(current));
    Status st = pool_.Run([&](PgConn& c) -> Status {
      for (const auto& p : payloads) {
        REDRIVE_RETURN_IF_ERROR(
            c.Exec("SELECT pg_notify($1, $2)", Params().Text(kChannel).Text(p)).status());
      }
      return Status::Ok();
    });
    // Lost: other nodes re-check on their own and their caches expire (see the header).
    if (!st.ok()) spdlog::debug("notify: {}", st.message());
  }
}

void PgCoordinator::Deliver(const std::string& payload) {
  size_t nl = payload.find('\n');
  if (nl == std::string::npos || payload.compare(0, nl, node_id_) == 0) return;  // our own
  std::istringstream in(payload.substr(nl + 1));
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 3 || line[1] != ' ') continue;
    if (line[0] == 'r') {
      int64_t q = std::strtoll(line.c_str() + 2, nullptr, 10);
      std::shared_lock l(listeners_mu_);
      for (auto* listener : listeners_) listener->OnReady(q);
    } else if (line[0] == 'i' && line.size() >= 4) {
      auto scope = ScopeOf(line[2]);
      if (!scope) continue;
      TellLocal(*scope, line.size() > 4 ? line.substr(4) : std::string());
    }
  }
}

void PgCoordinator::ListenerLoop() {
  bool ever_listened = false;
  for (;;) {
    {
      std::lock_guard l(mu_);
      if (stopping_) return;
    }
    auto connected = PgConn::Connect(conninfo_);
    if (!connected.ok() || !(*connected)->Script("LISTEN redrive").ok()) {
      std::unique_lock l(mu_);
      cv_.wait_for(l, kReconnectDelay, [&] { return stopping_; });
      continue;
    }
    std::unique_ptr<PgConn> conn = std::move(connected).value();
    listening_ = true;
    // What other nodes sent while this node was not listening is lost: drop every cache.
    if (ever_listened) TellLocal(CacheScope::kAll, "");
    ever_listened = true;
    PGconn* raw = conn->raw();
    while (PQstatus(raw) == CONNECTION_OK) {
      {
        std::lock_guard l(mu_);
        if (stopping_) break;
      }
      pollfd pfd{PQsocket(raw), POLLIN, 0};
      int n = poll(&pfd, 1, kPollMs);
      if (n < 0) continue;
      if (n > 0 && PQconsumeInput(raw) == 0) break;  // the connection is gone
      while (PGnotify* note = PQnotifies(raw)) {
        std::string payload = note->extra ? note->extra : "";
        PQfreemem(note);
        Deliver(payload);
      }
    }
    listening_ = false;
    conn.reset();
  }
}

}  // namespace redrive::store::postgres
