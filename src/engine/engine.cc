#include "engine/engine.h"

#include <spdlog/spdlog.h>

namespace redrive::engine {

Engine::Engine(store::Store& store, Clock& clock, Random& random, EngineOptions options,
               Coordinator* coordinator)
    : clock_(clock), control_(store), options_(options) {
  // spdlog makes its registry on first use. Make it here, on the constructing thread, before
  // any service logs from one of its own: libspdlog is not instrumented, so ThreadSanitizer
  // cannot see the static's guard and reports two threads' first logs as a race.
  spdlog::default_logger_raw();
  if (coordinator == nullptr) {
    own_coordinator_ = std::make_unique<LocalCoordinator>(clock);
    coordinator = own_coordinator_.get();
  }
  coordinator_ = coordinator;
  store::MessageStore& message_port = store;
  store::ControlStore& control_port = store;
  audit_ = std::make_unique<AuditLog>(control_port, clock);
  outcomes_ = std::make_unique<DeliveryOutcomes>(control_port, clock, options_);
  tenancy_ =
      std::make_unique<Tenancy>(control_port, clock, random, options_, *coordinator_, *audit_);
  queues_ = std::make_unique<Queues>(control_port, message_port, clock, *tenancy_, *coordinator_,
                                     *audit_, counters_);
  redactor_ = std::make_unique<Redactor>(control_port, random, *queues_, *coordinator_);
  topics_ = std::make_unique<Topics>(control_port, clock, random, *tenancy_, *queues_,
                                     *coordinator_, *audit_);
  messages_ = std::make_unique<Messages>(message_port, clock, random, options_, *queues_, *tenancy_,
                                         *coordinator_, counters_, *audit_, *outcomes_, *redactor_);
  dead_letters_ =
      std::make_unique<DeadLetters>(control_port, clock, random, options_, *queues_, *tenancy_,
                                    *coordinator_, *audit_, *outcomes_, *redactor_);
  notifications_ = std::make_unique<Notifications>(control_port, clock, random, options_, *tenancy_,
                                                   *topics_, *messages_, *dead_letters_, *audit_);
  audit_->SetObserver([n = notifications_.get()](const store::AuditRecord& r) { n->OnAudit(r); });
  background_ = std::make_unique<Background>(*messages_, *dead_letters_, *tenancy_, *outcomes_,
                                             *notifications_, clock, options_, *coordinator_);
  push_ = std::make_unique<PushDispatcher>(*messages_, *queues_, *topics_, *dead_letters_, clock,
                                           random, *coordinator_, *audit_);
}

Engine::~Engine() {
  Stop();
  audit_->SetObserver(nullptr);
  // Members go in reverse order: background, dead letters, messages (its waker threads end and
  // the last long polls are answered), queues, tenancy.
}

void Engine::Start() {
  messages_->ResumeLongPolls();
  background_->Start();
  push_->Start();
  notifications_->Start();
}

void Engine::Stop() {
  notifications_->Stop();
  push_->Stop();
  messages_->StopLongPolls();
  background_->Stop();
}

Status Engine::CheckStore() { return control_.GetTenant("").status(); }

}  // namespace redrive::engine
