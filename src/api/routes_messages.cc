// RestApi::AddMessageRoutes: publish, receive (the one asynchronous route), ack, nack, extend.
#include <string>
#include <vector>

#include "api/api.h"
#include "api/api_internal.h"
#include "api/json_io.h"
#include "api/json_writer.h"
#include "api/publish_decoder.h"

namespace redrive::api {
namespace {

using engine::Principal;
using http::Request;
using http::Response;

// An answer written by JsonWriter (the message routes).
Response JsonText(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// Per-item results of a batch call: HTTP 200 with each item's outcome.
json ItemResults(const std::vector<std::string>& receipts, const std::vector<Status>& results) {
  json items = json::array();
  int64_t ok = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    json item = {{"receipt", receipts[i]}};
    if (results[i].ok()) {
      item["status"] = "ok";
      ++ok;
    } else {
      item["status"] = "error";
      item["error"] = {{"code", GetErrorInfo(results[i].code()).wire_code},
                       {"message", results[i].message()}};
    }
    items.push_back(std::move(item));
  }
  return {
      {"succeeded", ok}, {"failed", static_cast<int64_t>(results.size()) - ok}, {"results", items}};
}

// The queue a message route acts on: {queue}, or the queue of {topic}'s {subscription}.
std::string QueueOf(const PathParams& p) {
  const std::string& queue = p.Get("queue");
  if (!queue.empty()) return queue;
  return engine::SubscriptionQueueName(p.Get("topic"), p.Get("subscription"));
}

Result<std::vector<std::string>> ReceiptList(const json& body) {
  auto it = body.find("receipts");
  if (it == body.end()) return Status(ErrorCode::kMissingField, "'receipts' is required");
  if (!it->is_array()) return Status(ErrorCode::kInvalidArgument, "'receipts' must be an array");
  std::vector<std::string> out;
  for (const auto& r : *it) {
    if (!r.is_string()) {
      return Status(ErrorCode::kInvalidArgument, "'receipts' must hold strings");
    }
    out.push_back(r.get<std::string>());
  }
  return out;
}

}  // namespace

void RestApi::AddMessageRoutes() {
  using namespace engine;  // NOLINT: scope names
  Add("POST", "/v1/tenants/{tenant}/queues/{queue}/messages", "publish", {kScopePublish},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_RETURN_IF_ERROR(RequireJsonBody(req));
        REDRIVE_ASSIGN_OR_RETURN(auto messages, DecodePublish(req.body));
        REDRIVE_ASSIGN_OR_RETURN(
            auto outcomes,
            engine_.messages().Publish(p.Get("tenant"), p.Get("queue"), std::move(messages)));
        return JsonText(201, PublishAnswer(outcomes));
      });
  Add("POST", "/v1/tenants/{tenant}/topics/{topic}/messages", "topic_publish", {kScopePublish},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_RETURN_IF_ERROR(RequireJsonBody(req));
        REDRIVE_ASSIGN_OR_RETURN(auto messages, DecodePublish(req.body));
        REDRIVE_ASSIGN_OR_RETURN(
            auto outcomes,
            engine_.messages().PublishTopic(p.Get("tenant"), p.Get("topic"), std::move(messages)));
        return JsonText(201, PublishAnswer(outcomes));
      });
  // Receive, ack, nack and extend: on a queue, and on a pulled subscription of a topic (its
  // queue "<topic>:<subscription>").
  for (const auto& [base, prefix] : std::vector<std::pair<std::string, std::string>>{
           {"/v1/tenants/{tenant}/queues/{queue}", ""},
           {"/v1/tenants/{tenant}/topics/{topic}/subscriptions/{subscription}", "subscription_"}}) {
    AddAsync("POST", base + "/receive", prefix + "receive", {kScopeConsume},
             [this](Request& req, const PathParams& p, const Principal& who, Done done) {
               auto options = [&]() -> Result<engine::ReceiveOptions> {
                 REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
                 REDRIVE_RETURN_IF_ERROR(
                     OnlyFields(body, {"maxMessages", "wait", "visibilityTimeout", "consumer"}));
                 engine::ReceiveOptions opt;
                 REDRIVE_ASSIGN_OR_RETURN(auto max, GetInt(body, "maxMessages"));
                 if (max) opt.max_messages = *max;
                 REDRIVE_ASSIGN_OR_RETURN(auto wait, GetDuration(body, "wait"));
                 opt.wait = wait.value_or(0);
                 REDRIVE_ASSIGN_OR_RETURN(opt.visibility_timeout,
                                          GetDuration(body, "visibilityTimeout"));
                 REDRIVE_ASSIGN_OR_RETURN(auto consumer, GetString(body, "consumer"));
                 opt.consumer = consumer.value_or("");
                 opt.caller = who.token_id;
                 return opt;
               }();
               if (!options.ok()) {
                 done(options.status());
                 return;
               }
               engine_.messages().ReceiveAsync(
                   p.Get("tenant"), QueueOf(p), options.value(),
                   [done = std::move(done)](Result<std::vector<engine::Delivery>> r) {
                     if (!r.ok()) {
                       done(r.status());
                       return;
                     }
                     done(JsonText(200, ReceiveAnswer(r.value())));
                   });
             });
    Add("POST", base + "/ack", prefix + "ack", {kScopeConsume},
        [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
          REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
          REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"receipts"}));
          REDRIVE_ASSIGN_OR_RETURN(auto receipts, ReceiptList(body));
          REDRIVE_ASSIGN_OR_RETURN(auto results,
                                   engine_.messages().Ack(p.Get("tenant"), QueueOf(p), receipts));
          return Json(200, ItemResults(receipts, results));
        });
    Add("POST", base + "/nack", prefix + "nack", {kScopeConsume},
        [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
          REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
          REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"nacks"}));
          auto it = body.find("nacks");
          if (it == body.end()) return Status(ErrorCode::kMissingField, "'nacks' is required");
          if (!it->is_array())
            return Status(ErrorCode::kInvalidArgument, "'nacks' must be an array");
          std::vector<engine::NackRequest> nacks;
          std::vector<std::string> receipts;
          size_t i = 0;
          for (const auto& n : *it) {
            std::string where = "nacks[" + std::to_string(i++) + "].";
            if (!n.is_object()) {
              return Status(ErrorCode::kInvalidArgument, where + " must be an object");
            }
            REDRIVE_RETURN_IF_ERROR(OnlyFields(
                n, {"receipt", "reason", "error", "delay", "deadLetter", "consumer"}, where));
            engine::NackRequest nr;
            REDRIVE_ASSIGN_OR_RETURN(nr.receipt, RequiredString(n, "receipt"));
            REDRIVE_ASSIGN_OR_RETURN(auto reason, GetString(n, "reason"));
            nr.reason = reason.value_or("");
            REDRIVE_ASSIGN_OR_RETURN(auto error, GetString(n, "error"));
            nr.error = error.value_or("");
            REDRIVE_ASSIGN_OR_RETURN(nr.delay, GetDuration(n, "delay"));
            REDRIVE_ASSIGN_OR_RETURN(auto dl, GetBool(n, "deadLetter"));
            nr.dead_letter = dl.value_or(false);
            REDRIVE_ASSIGN_OR_RETURN(auto consumer, GetString(n, "consumer"));
            nr.consumer = consumer.value_or("");
            nr.caller = who.token_id;
            receipts.push_back(nr.receipt);
            nacks.push_back(std::move(nr));
          }
          REDRIVE_ASSIGN_OR_RETURN(auto results,
                                   engine_.messages().Nack(p.Get("tenant"), QueueOf(p), nacks));
          return Json(200, ItemResults(receipts, results));
        });
    Add("POST", base + "/extend", prefix + "extend", {kScopeConsume},
        [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
          REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
          REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"receipts", "visibilityTimeout"}));
          REDRIVE_ASSIGN_OR_RETURN(auto receipts, ReceiptList(body));
          REDRIVE_ASSIGN_OR_RETURN(auto vt, GetDuration(body, "visibilityTimeout"));
          if (!vt) return Status(ErrorCode::kMissingField, "'visibilityTimeout' is required");
          REDRIVE_ASSIGN_OR_RETURN(auto results, engine_.messages().ExtendLeases(
                                                     p.Get("tenant"), QueueOf(p), receipts, *vt));
          return Json(200, ItemResults(receipts, results));
        });
  }
}

}  // namespace redrive::api
