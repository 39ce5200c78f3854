// Engine: every rule of redrive, in five services that each own their state, put together
// here. Handlers (REST, CLI, later SQS) translate their protocol into calls on the services and
// nothing else:
//   tenancy()       tenants, tokens, scopes, quotas, authentication, the request rate (tenancy.h)
//   queues()        the catalog of queues and dead-letter queues (queues.h)
//   messages()      publish, receive and long polls, ack, nack, extend, the failure plan
//                   (messages.h)
//   dead_letters()  queries, failure groups, actions, redrive jobs, the audit (dead_letters.h)
//   notifications() channels, the digest, tickets and alerts (notifications.h)
//   background()    the sweeper and the job runner (background.h)
// They reach each other only through these references and the Coordinator (coordination.h),
// which carries wake-ups, cache invalidations and claims on singleton work: in process today,
// across nodes once a shared store implements it.
//
// Thread-safety: thread-safe. Start() starts the background work; Stop() ends it and answers
// every long poll; destruction stops everything.
#pragma once

#include <memory>

#include "common/clock.h"
#include "engine/audit_log.h"
#include "engine/background.h"
#include "engine/coordination.h"
#include "engine/dead_letters.h"
#include "engine/delivery_outcomes.h"
#include "engine/messages.h"
#include "engine/model.h"
#include "engine/notifications.h"
#include "engine/push_dispatcher.h"
#include "engine/queues.h"
#include "engine/redaction.h"
#include "engine/tenancy.h"
#include "engine/topics.h"
#include "store/store.h"

namespace redrive::engine {

class Engine {
 public:
  // `coordinator`: shared with other engines on the same store (several nodes); null = one of
  // its own, in process.
  Engine(store::Store& store, Clock& clock, Random& random, EngineOptions options = {},
         Coordinator* coordinator = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts the sweeper, the job runner and push delivery; long polls wait again.
  void Start();
  void Stop();  // joins them and ends every long poll early

  Tenancy& tenancy() { return *tenancy_; }
  Queues& queues() { return *queues_; }
  Topics& topics() { return *topics_; }
  Messages& messages() { return *messages_; }
  DeadLetters& dead_letters() { return *dead_letters_; }
  Notifications& notifications() { return *notifications_; }
  Background& background() { return *background_; }
  PushDispatcher& push() { return *push_; }
  Coordinator& coordinator() { return *coordinator_; }
  // Counts of delivery outcomes per origin and minute (delivery_outcomes.h); tests flush them.
  DeliveryOutcomes& outcomes() { return *outcomes_; }
  Redactor& redactor() { return *redactor_; }

  const EngineOptions& options() const { return options_; }
  const EngineCounters& counters() const { return counters_; }
  TimeMs Now() { return clock_.Now(); }
  // One small read of the store: whether it answers now (/readyz). Errors: the store's.
  Status CheckStore();

 private:
  Clock& clock_;
  store::ControlStore& control_;
  const EngineOptions options_;
  EngineCounters counters_;
  std::unique_ptr<Coordinator> own_coordinator_;
  Coordinator* coordinator_;
  // In construction order; destroyed in reverse, so each outlives those that use it.
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<DeliveryOutcomes> outcomes_;
  std::unique_ptr<Tenancy> tenancy_;
  std::unique_ptr<Queues> queues_;
  std::unique_ptr<Redactor> redactor_;
  std::unique_ptr<Topics> topics_;
  std::unique_ptr<Messages> messages_;
  std::unique_ptr<DeadLetters> dead_letters_;
  std::unique_ptr<Notifications> notifications_;
  std::unique_ptr<Background> background_;
  std::unique_ptr<PushDispatcher> push_;
};

}  // namespace redrive::engine
