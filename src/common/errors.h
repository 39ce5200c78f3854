// The error catalogue: every error redrive can answer with, as data.
//
// Each row gives the enum, the stable wire code (never renamed once shipped), the HTTP status it
// maps to, and a one-line description. The REST layer maps errors through this table only, and
// docs/api.md is checked against it by errors_test, so the docs cannot drift.
#pragma once

#include <string_view>

namespace redrive {

// X(Enum, "wire-code", http_status, "description")
#define REDRIVE_ERROR_CODES(X)                                                                    \
  X(kOk, "ok", 200, "Success.")                                                                   \
  X(kInvalidArgument, "invalid-argument", 400, "A field has a value outside what it accepts.")    \
  X(kInvalidJson, "invalid-json", 400, "The request body is not valid JSON.")                     \
  X(kJsonTooDeep, "json-too-deep", 400, "The request body nests JSON deeper than allowed.")       \
  X(kUnknownField, "unknown-field", 400, "The request has a field the endpoint does not know.")   \
  X(kMissingField, "missing-field", 400, "A required field is absent.")                           \
  X(kInvalidName, "invalid-name", 400, "A tenant, queue or token name breaks the name syntax.")   \
  X(kInvalidDuration, "invalid-duration", 400, "A duration is not like 250ms, 30s, 5m, 2h, 7d.")  \
  X(kInvalidBase64, "invalid-base64", 400, "A body flagged base64 does not decode.")              \
  X(kBatchTooLarge, "batch-too-large", 400, "A batch has more entries than allowed.")             \
  X(kEmptyBatch, "empty-batch", 400, "A batch has no entries.")                                   \
  X(kTooManyAttributes, "too-many-attributes", 400, "A message has too many attributes.")         \
  X(kAttributeTooLarge, "attribute-too-large", 400,                                               \
    "An attribute name or value is longer than allowed.")                                         \
  X(kInvalidReceipt, "invalid-receipt", 400, "A receipt handle is malformed.")                    \
  X(kInvalidQuery, "invalid-query", 400, "A query parameter is malformed.")                       \
  X(kUnauthenticated, "unauthenticated", 401, "No valid bearer token was presented.")             \
  X(kForbidden, "forbidden", 403, "The token lacks the scope this operation needs.")              \
  X(kNotFound, "not-found", 404, "No such route.")                                                \
  X(kTenantNotFound, "tenant-not-found", 404, "No such tenant (or not visible to this token).")   \
  X(kQueueNotFound, "queue-not-found", 404, "No such queue in this tenant.")                      \
  X(kTokenNotFound, "token-not-found", 404, "No such token in this tenant.")                      \
  X(kTopicNotFound, "topic-not-found", 404, "No such topic in this tenant.")                      \
  X(kSubscriptionNotFound, "subscription-not-found", 404, "No such subscription on this topic.")  \
  X(kDeadLetterNotFound, "dead-letter-not-found", 404, "No such dead letter in this tenant.")     \
  X(kJobNotFound, "job-not-found", 404, "No such redrive job in this tenant.")                    \
  X(kExportNotFound, "export-not-found", 404, "No such export job in this tenant.")               \
  X(kEventNotFound, "event-not-found", 404,                                                       \
    "No such message among the topic's events (never published, or past its eventRetention).")    \
  X(kTicketNotFound, "ticket-not-found", 404, "No such ticket in this tenant (or no such link).") \
  X(kFileNotFound, "file-not-found", 404,                                                         \
    "The file this resource serves is gone (removed by retention or from the data directory).")   \
  X(kMethodNotAllowed, "method-not-allowed", 405, "The route exists but not for this method.")    \
  X(kRequestTimeout, "request-timeout", 408, "The client was too slow to send its request.")      \
  X(kAlreadyExists, "already-exists", 409, "A resource with that name already exists.")           \
  X(kLeaseLost, "lease-lost", 409,                                                                \
    "The receipt no longer holds the message: the lease expired, or it was acked or nacked.")     \
  X(kJobActive, "job-active", 409,                                                                \
    "A redrive job is already active on this dead-letter queue; cancel it or wait.")              \
  X(kJobStateConflict, "job-state-conflict", 409, "The job's state does not allow that now.")     \
  X(kExportActive, "export-active", 409,                                                          \
    "An export is already processing in this tenant; wait for it or cancel it.")                  \
  X(kExportNotReady, "export-not-ready", 409,                                                     \
    "The export has no file: it is still processing, or was cancelled or failed.")                \
  X(kDeliveryPending, "delivery-pending", 409,                                                    \
    "The subscription's copy of the message is still pending or being delivered.")                \
  X(kDeliveryDeadLettered, "delivery-dead-lettered", 409,                                         \
    "The subscription's copy is a dead letter: restore it through the dead-letter API.")          \
  X(kTicketClosed, "ticket-closed", 409,                                                          \
    "The ticket was answered or has expired: it cannot be answered again.")                       \
  X(kQueueFull, "queue-full", 409,                                                                \
    "The queue is at its max length and its overflow policy is reject-publish.")                  \
  X(kNotAQueue, "not-a-queue", 409,                                                               \
    "The name is a topic: publish to it, and receive from its subscriptions.")                    \
  X(kDeadLetterQueueReadOnly, "dead-letter-queue-read-only", 409,                                 \
    "Dead-letter queues are written by redrive only; use the dead-letter API to read them.")      \
  X(kDeadLetterRedacted, "dead-letter-redacted", 409,                                             \
    "The dead letter was stored redacted; moving it needs \"allowRedacted\": true.")              \
  X(kLastOperatorToken, "last-operator-token", 409,                                               \
    "Revoking this token would leave no active operator token; create or rotate one first.")      \
  X(kTenantNotEmpty, "tenant-not-empty", 409,                                                     \
    "The tenant still has queues; delete them first or pass force=true.")                         \
  X(kRequestTooLarge, "request-too-large", 413, "The request body is larger than allowed.")       \
  X(kMessageTooLarge, "message-too-large", 413, "A message body exceeds the queue's limit.")      \
  X(kUnsupportedMediaType, "unsupported-media-type", 415, "The body must be application/json.")   \
  X(kRangeNotSatisfiable, "range-not-satisfiable", 416,                                           \
    "The Range asks for no byte of the file: it starts at or past the end.")                      \
  X(kQuotaExceeded, "quota-exceeded", 429,                                                        \
    "The tenant is at one of its quotas (queues, messages, bytes); see Retry-After.")             \
  X(kRateLimited, "rate-limited", 429,                                                            \
    "The tenant sent more requests than its request rate allows; see Retry-After.")               \
  X(kHeadersTooLarge, "headers-too-large", 431, "The request line or headers are too large.")     \
  X(kNotificationFailed, "notification-failed", 502,                                              \
    "A notification channel did not take the test notification; the message says why.")           \
  X(kInternal, "internal", 500, "An unexpected server error; the server log has the details.")    \
  X(kStoreFailed, "store-failed", 503,                                                            \
    "The store failed to write durably and refuses writes until the server is restarted.")        \
  X(kShuttingDown, "shutting-down", 503, "The server is shutting down.")                          \
  X(kServerBusy, "server-busy", 503, "The server has as many connections as it allows; retry.")

enum class ErrorCode {
#define REDRIVE_ERROR_ENUM(name, code, http, desc) name,
  REDRIVE_ERROR_CODES(REDRIVE_ERROR_ENUM)
#undef REDRIVE_ERROR_ENUM
};

struct ErrorInfo {
  ErrorCode code;
  std::string_view wire_code;
  int http_status;
  std::string_view description;
};

// The row of the catalogue for `code`.
const ErrorInfo& GetErrorInfo(ErrorCode code);

// Every row, in declaration order (for docs checks and listing).
const ErrorInfo* AllErrors(size_t* count);

}  // namespace redrive
