// RestApi::AddQueueRoutes: queue creation, listing, attributes and deletion, and the JSON form
// of a queue.
#include <string>
#include <vector>

#include "api/api.h"
#include "api/api_internal.h"
#include "api/json_io.h"
#include "common/text.h"
#include "engine/queue_config.h"

namespace redrive::api {

json QueueJson(const engine::QueueInfo& q) {
  bool dlq = q.kind == store::QueueKind::kDeadLetter;
  auto [topic, subscription] = engine::SplitSubscriptionQueue(q.name);
  json j = {{"name", q.name},
            {"kind", dlq             ? "dead-letter"
                     : topic.empty() ? "standard"
                                     : "subscription"},
            {"depth",
             {{"ready", q.depth.ready},
              {"delayed", q.depth.delayed},
              {"leased", q.depth.leased},
              {"deadLettered", q.depth.dead_lettered}}},
            {"createdAt", FormatTime(q.created_at)},
            {"updatedAt", FormatTime(q.updated_at)}};
  j["attributes"] = dlq ? json(nullptr) : engine::QueueConfigToJson(q.config);
  if (!topic.empty()) {
    j["topic"] = topic;
    j["subscription"] = subscription;
  }
  return j;
}

namespace {

using engine::Principal;
using http::Request;
using http::Response;

}  // namespace

void RestApi::AddQueueRoutes() {
  using namespace engine;  // NOLINT: scope names
  const std::vector<std::string> kQueueReaders = {kScopeAdmin, kScopePublish, kScopeConsume,
                                                  kScopeDlqRead};

  Add("POST", "/v1/tenants/{tenant}/queues", "queue_create", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"name", "attributes"}));
        REDRIVE_ASSIGN_OR_RETURN(std::string name, RequiredString(body, "name"));
        engine::QueueConfig config;
        if (auto it = body.find("attributes"); it != body.end()) {
          REDRIVE_RETURN_IF_ERROR(engine::ApplyQueueConfigJson(*it, &config));
        }
        REDRIVE_ASSIGN_OR_RETURN(auto q,
                                 engine_.queues().CreateQueue(who, p.Get("tenant"), name, config));
        return Json(201, QueueJson(q));
      });
  Add("GET", "/v1/tenants/{tenant}/queues", "queue_list", kQueueReaders,
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto list, engine_.queues().ListQueues(p.Get("tenant")));
        json items = json::array();
        for (const auto& q : list) items.push_back(QueueJson(q));
        return Json(200, {{"queues", items}});
      });
  Add("GET", "/v1/tenants/{tenant}/queues/{queue}", "queue_get", kQueueReaders,
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto q,
                                 engine_.queues().GetQueue(p.Get("tenant"), p.Get("queue")));
        return Json(200, QueueJson(q));
      });
  Add("PATCH", "/v1/tenants/{tenant}/queues/{queue}", "queue_update", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"attributes"}));
        REDRIVE_ASSIGN_OR_RETURN(auto current,
                                 engine_.queues().GetQueue(p.Get("tenant"), p.Get("queue")));
        engine::QueueConfig config = current.config;
        if (auto it = body.find("attributes"); it != body.end()) {
          REDRIVE_RETURN_IF_ERROR(engine::ApplyQueueConfigJson(*it, &config));
        }
        REDRIVE_ASSIGN_OR_RETURN(
            auto q, engine_.queues().UpdateQueue(who, p.Get("tenant"), p.Get("queue"), config));
        return Json(200, QueueJson(q));
      });
  Add("DELETE", "/v1/tenants/{tenant}/queues/{queue}", "queue_delete", {kScopeAdmin},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_RETURN_IF_ERROR(engine_.queues().DeleteQueue(who, p.Get("tenant"), p.Get("queue")));
        return NoContent();
      });
}

}  // namespace redrive::api
