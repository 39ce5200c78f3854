// The store: durable state of redrive behind two ports, so that the engine holds every rule
// and the backends (SQLite now, PostgreSQL later) hold only data and atomicity.
//
// - MessageStore (message_store.h), the hot message port: publish, lease, ack, extend, settle
//   failures, the sweeper's scans of messages, depths.
// - ControlStore (control_store.h), the control port: tenants, tokens, quotas and usage,
//   queues, dead letters, redrive jobs, the audit log.
//
// Each port's header carries its contract. A Store is both: what a backend implements today
// (one database holds both ports) and what OpenStore returns; code that needs only one port
// takes that port. Design: docs/design/store-ports.md.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "store/control_store.h"
#include "store/message_store.h"

namespace redrive::store {

class Store : public MessageStore, public ControlStore {
 public:
  ~Store() override = default;
};

// Opens a store from a URI: "postgres://..." or "postgresql://..." (a libpq URI: PostgreSQL),
// "sqlite:PATH", or a plain PATH to an SQLite file.
// Errors: kInvalidArgument for an unknown scheme, kStoreFailed when it cannot be opened.
Result<std::unique_ptr<Store>> OpenStore(const std::string& uri);
// Whether OpenStore takes `uri` to PostgreSQL, a store several nodes share.
bool IsPostgresUri(const std::string& uri);

}  // namespace redrive::store
