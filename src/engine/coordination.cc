#include "engine/coordination.h"

#include <algorithm>

namespace redrive::engine {

LocalCoordinator::LocalCoordinator(Clock& clock, std::string node_id)
    : clock_(clock), node_id_(std::move(node_id)) {}

void LocalCoordinator::Subscribe(CoordinationListener* listener) {
  std::unique_lock<std::shared_mutex> l(listeners_mu_);
  listeners_.push_back(listener);
}

void LocalCoordinator::Unsubscribe(CoordinationListener* listener) {
  std::unique_lock<std::shared_mutex> l(listeners_mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

void LocalCoordinator::SignalReady(int64_t queue_id) {
  std::shared_lock<std::shared_mutex> l(listeners_mu_);
  for (auto* listener : listeners_) listener->OnReady(queue_id);
}

void LocalCoordinator::Invalidate(CacheScope scope, const std::string& key) {
  std::shared_lock<std::shared_mutex> l(listeners_mu_);
  for (auto* listener : listeners_) listener->OnInvalidate(scope, key);
}

bool LocalCoordinator::Claim(const std::string& name, const std::string& holder, DurationMs ttl) {
  TimeMs now = clock_.Now();
  std::lock_guard<std::mutex> l(claims_mu_);
  ClaimRow& row = claims_[name];
  if (row.holder != holder && !row.holder.empty() && row.until > now) return false;
  row.holder = holder;
  row.until = now + ttl;
  return true;
}

void LocalCoordinator::Release(const std::string& name, const std::string& holder) {
  std::lock_guard<std::mutex> l(claims_mu_);
  auto it = claims_.find(name);
  if (it != claims_.end() && it->second.holder == holder) claims_.erase(it);
}

}  // namespace redrive::engine
