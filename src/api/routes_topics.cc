// RestApi::AddTopicRoutes: topics, their subscriptions, and the endpoints of push
// subscriptions. Publishing to a topic and pulling a subscription are message routes
// (routes_messages.cc).
#include <string>
#include <vector>

#include "api/api.h"
#include "api/api_internal.h"
#include "api/json_io.h"
#include "common/text.h"
#include "engine/dead_letter_doc.h"
#include "engine/queue_config.h"
#include "engine/subscription_config.h"

namespace redrive::api {
namespace {

using engine::Principal;
using http::Request;
using http::Response;

json TopicJson(const engine::TopicInfo& t) {
  json subs = json::array();
  for (const auto& s : t.subscriptions) subs.push_back(QueueJson(s));
  return {{"name", t.name},
          {"kind", "topic"},
          {"attributes", engine::TopicConfigToJson(t.config)},
          {"subscriptions", subs},
          {"createdAt", FormatTime(t.created_at)},
          {"updatedAt", FormatTime(t.updated_at)}};
}

// A subscription with its current secret: the answer of a create and of a secret rotation,
// the only two that show it.
json WithSecret(const engine::QueueInfo& q) {
  json j = QueueJson(q);
  if (q.config.push && !q.config.push->secrets.empty()) {
    j["secret"] = q.config.push->secrets.front().secret;
  }
  return j;
}

json EndpointJson(const engine::EndpointStatus& e) {
  auto time_or_null = [](TimeMs t) { return t ? json(FormatTime(t)) : json(nullptr); };
  return {{"url", e.url},
          {"circuit", engine::CircuitStateName(e.circuit)},
          {"disabled", e.disabled},
          {"disabledReason", e.disabled_reason},
          {"inFlight", e.in_flight},
          {"consecutiveFailures", e.consecutive_failures},
          {"lastError", e.last_error},
          {"lastSuccessAt", time_or_null(e.last_success_at)},
          {"failingSince", time_or_null(e.failing_since)},
          {"delivered", e.delivered},
          {"failed", e.failed}};
}

json DeliveryJson(const engine::TopicDelivery& d) {
  using engine::DeliveryState;
  json j = {{"subscription", d.subscription},
            {"state", engine::DeliveryStateName(d.state)},
            {"redeliveries", d.redeliveries}};
  switch (d.state) {
    case DeliveryState::kPending:
    case DeliveryState::kDelivering:
      j["queue"] = d.queue;
      j["deliveryCount"] = d.delivery_count;
      j[d.state == DeliveryState::kPending ? "readyAt" : "leaseUntil"] = engine::OptTime(d.next_at);
      break;
    case DeliveryState::kDelivered:
      j["deliveredAt"] = engine::OptTime(d.delivered_at);
      break;
    case DeliveryState::kDeadLettered:
      j["deadLetterId"] = d.dead_letter_id;
      j["reason"] = d.dead_letter_reason;
      j["deadLetteredAt"] = engine::OptTime(d.dead_lettered_at);
      break;
    case DeliveryState::kDropped:
      break;
  }
  return j;
}

json EventJson(const engine::TopicEvent& e, bool with_body) {
  json deliveries = json::array();
  for (const auto& d : e.deliveries) deliveries.push_back(DeliveryJson(d));
  json j = {{"id", e.id},
            {"publishedAt", FormatTime(e.published_at)},
            {"keptUntil", FormatTime(e.retain_until)},
            {"attributes", engine::AttributesJson(e.attributes)},
            {"idempotencyKey", e.idempotency_key.empty() ? json(nullptr) : json(e.idempotency_key)},
            {"bodySize", e.body_size},
            {"deliveries", deliveries}};
  if (with_body) engine::PutBody(j, e.body);
  return j;
}

// An optional time of the query: RFC 3339.
Result<TimeMs> TimeQuery(const Request& req, const char* name) {
  bool found = false;
  std::string_view text = req.Query(name, &found);
  if (!found) return TimeMs{0};
  auto t = ParseTime(text);
  if (!t.ok()) {
    return Status(ErrorCode::kInvalidQuery, std::string(name) + ": " + t.status().message());
  }
  return t.value();
}

}  // namespace

void RestApi::AddTopicRoutes() {
  using namespace engine;  // NOLINT: scope names
  const std::vector<std::string> kReaders = {kScopeAdmin, kScopePublish, kScopeConsume,
                                             kScopeDlqRead};
  const std::string kTopic = "/v1/tenants/{tenant}/topics/{topic}";
  const std::string kSub = kTopic + "/subscriptions/{subscription}";

  Add("POST", "/v1/tenants/{tenant}/topics", "topic_create", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"name", "attributes"}));
        REDRIVE_ASSIGN_OR_RETURN(std::string name, RequiredString(body, "name"));
        engine::TopicConfig config;
        if (auto it = body.find("attributes"); it != body.end()) {
          REDRIVE_RETURN_IF_ERROR(engine::ApplyTopicConfigJson(*it, &config));
        }
        REDRIVE_ASSIGN_OR_RETURN(auto t,
                                 engine_.topics().CreateTopic(who, p.Get("tenant"), name, config));
        return Json(201, TopicJson(t));
      });
  Add("GET", "/v1/tenants/{tenant}/topics", "topic_list", kReaders,
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto list, engine_.topics().ListTopics(p.Get("tenant")));
        json items = json::array();
        for (const auto& t : list) items.push_back(TopicJson(t));
        return Json(200, {{"topics", items}});
      });
  Add("GET", kTopic, "topic_get", kReaders,
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto t,
                                 engine_.topics().GetTopic(p.Get("tenant"), p.Get("topic")));
        return Json(200, TopicJson(t));
      });
  Add("PATCH", kTopic, "topic_update", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"attributes"}));
        REDRIVE_ASSIGN_OR_RETURN(auto current,
                                 engine_.topics().GetTopic(p.Get("tenant"), p.Get("topic")));
        engine::TopicConfig config = current.config;
        if (auto it = body.find("attributes"); it != body.end()) {
          REDRIVE_RETURN_IF_ERROR(engine::ApplyTopicConfigJson(*it, &config));
        }
        REDRIVE_ASSIGN_OR_RETURN(
            auto t, engine_.topics().UpdateTopic(who, p.Get("tenant"), p.Get("topic"), config));
        return Json(200, TopicJson(t));
      });
  Add("DELETE", kTopic, "topic_delete", {kScopeAdmin},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_RETURN_IF_ERROR(engine_.topics().DeleteTopic(who, p.Get("tenant"), p.Get("topic")));
        return NoContent();
      });

  Add("POST", kTopic + "/subscriptions", "subscription_create", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"name", "attributes"}));
        REDRIVE_ASSIGN_OR_RETURN(std::string name, RequiredString(body, "name"));
        engine::QueueConfig config;
        if (auto it = body.find("attributes"); it != body.end()) {
          REDRIVE_RETURN_IF_ERROR(engine::ApplyQueueConfigJson(*it, &config));
        }
        REDRIVE_ASSIGN_OR_RETURN(auto q, engine_.topics().CreateSubscription(
                                             who, p.Get("tenant"), p.Get("topic"), name, config));
        return Json(201, WithSecret(q));
      });
  Add("GET", kTopic + "/subscriptions", "subscription_list", kReaders,
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(
            auto list, engine_.topics().ListSubscriptions(p.Get("tenant"), p.Get("topic")));
        json items = json::array();
        for (const auto& q : list) items.push_back(QueueJson(q));
        return Json(200, {{"subscriptions", items}});
      });
  Add("GET", kSub, "subscription_get", kReaders,
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto q,
                                 engine_.topics().GetSubscription(p.Get("tenant"), p.Get("topic"),
                                                                  p.Get("subscription")));
        return Json(200, QueueJson(q));
      });
  Add("PATCH", kSub, "subscription_update", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"attributes"}));
        REDRIVE_ASSIGN_OR_RETURN(auto current,
                                 engine_.topics().GetSubscription(p.Get("tenant"), p.Get("topic"),
                                                                  p.Get("subscription")));
        engine::QueueConfig config = current.config;
        if (auto it = body.find("attributes"); it != body.end()) {
          REDRIVE_RETURN_IF_ERROR(engine::ApplyQueueConfigJson(*it, &config));
        }
        REDRIVE_ASSIGN_OR_RETURN(
            auto q, engine_.topics().UpdateSubscription(who, p.Get("tenant"), p.Get("topic"),
                                                        p.Get("subscription"), config));
        return Json(200, QueueJson(q));
      });
  Add("DELETE", kSub, "subscription_delete", {kScopeAdmin},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_RETURN_IF_ERROR(engine_.topics().DeleteSubscription(
            who, p.Get("tenant"), p.Get("topic"), p.Get("subscription")));
        return NoContent();
      });

  // Events: the topic's recent messages, and redelivery on request.
  Add("GET", kTopic + "/events", "topic_events", kReaders,
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        EventQuery q;
        REDRIVE_ASSIGN_OR_RETURN(q.since, TimeQuery(req, "since"));
        REDRIVE_ASSIGN_OR_RETURN(q.until, TimeQuery(req, "until"));
        REDRIVE_ASSIGN_OR_RETURN(q.limit, IntQuery(req, "limit", 100));
        q.subscription = std::string(req.Query("subscription"));
        q.cursor = std::string(req.Query("cursor"));
        bool has_state = false;
        std::string_view state = req.Query("state", &has_state);
        if (has_state) {
          q.state = ParseDeliveryState(state);
          if (!q.state) {
            return Status(ErrorCode::kInvalidQuery,
                          "state must be pending, delivering, delivered, dead-lettered or "
                          "dropped");
          }
        }
        q.unredacted = SeesUnredacted(who);
        REDRIVE_ASSIGN_OR_RETURN(auto page,
                                 engine_.messages().ListEvents(p.Get("tenant"), p.Get("topic"), q));
        json events = json::array();
        for (const auto& e : page.events) events.push_back(EventJson(e, false));
        return Json(200, {{"events", events},
                          {"nextCursor",
                           page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor)}});
      },
      {"since", "until", "limit", "subscription", "cursor", "state"});
  Add("GET", kTopic + "/events/{id}", "topic_event_get", kReaders,
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(
            auto e, engine_.messages().GetEvent(p.Get("tenant"), p.Get("topic"), p.Get("id"),
                                                SeesUnredacted(who)));
        return Json(200, EventJson(e, true));
      });
  Add("POST", kSub + "/redeliver", "subscription_redeliver", {kScopeAdmin, kScopeDlqWrite},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"messageId"}));
        REDRIVE_ASSIGN_OR_RETURN(auto id, RequiredString(body, "messageId"));
        REDRIVE_ASSIGN_OR_RETURN(auto d,
                                 engine_.messages().Redeliver(who, p.Get("tenant"), p.Get("topic"),
                                                              p.Get("subscription"), id));
        json j = DeliveryJson(d);
        j["messageId"] = id;
        return Json(202, j);
      });

  // The endpoint of a push subscription.
  Add("GET", kSub + "/endpoint", "endpoint_get", kReaders,
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto info,
                                 engine_.topics().GetSubscription(p.Get("tenant"), p.Get("topic"),
                                                                  p.Get("subscription")));
        REDRIVE_ASSIGN_OR_RETURN(auto q, engine_.queues().Lookup(info.tenant, info.name));
        REDRIVE_ASSIGN_OR_RETURN(auto health, engine_.push().Health(q));
        return Json(200, EndpointJson(health));
      });
  Add("POST", kSub + "/endpoint/test", "endpoint_test", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {}));
        REDRIVE_ASSIGN_OR_RETURN(auto info,
                                 engine_.topics().GetSubscription(p.Get("tenant"), p.Get("topic"),
                                                                  p.Get("subscription")));
        REDRIVE_ASSIGN_OR_RETURN(auto q, engine_.queues().Lookup(info.tenant, info.name));
        REDRIVE_ASSIGN_OR_RETURN(auto r, engine_.push().TestSend(q));
        return Json(200, {{"status", r.status == 0 ? json(nullptr) : json(r.status)},
                          {"ok", r.status >= 200 && r.status < 300},
                          {"error", r.error},
                          {"durationMs", r.duration},
                          {"response", r.response}});
      });
  Add("POST", kSub + "/endpoint/disable", "endpoint_disable", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"reason"}));
        REDRIVE_ASSIGN_OR_RETURN(auto reason, GetString(body, "reason"));
        REDRIVE_ASSIGN_OR_RETURN(
            auto q, engine_.topics().SetEndpointDisabled(
                        who, p.Get("tenant"), p.Get("topic"), p.Get("subscription"), true,
                        reason.value_or("disabled by " + who.token_id)));
        return Json(200, QueueJson(q));
      });
  Add("POST", kSub + "/endpoint/enable", "endpoint_enable", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {}));
        REDRIVE_ASSIGN_OR_RETURN(
            auto q, engine_.topics().SetEndpointDisabled(who, p.Get("tenant"), p.Get("topic"),
                                                         p.Get("subscription"), false, ""));
        return Json(200, QueueJson(q));
      });
  Add("POST", kSub + "/endpoint/rotate-secret", "endpoint_rotate_secret", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"overlap"}));
        REDRIVE_ASSIGN_OR_RETURN(auto overlap, GetDuration(body, "overlap"));
        REDRIVE_ASSIGN_OR_RETURN(auto q, engine_.topics().RotateSecret(
                                             who, p.Get("tenant"), p.Get("topic"),
                                             p.Get("subscription"), overlap.value_or(86'400'000)));
        return Json(200, WithSecret(q));
      });
}

}  // namespace redrive::api
