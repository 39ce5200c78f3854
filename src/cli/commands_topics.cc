// topic, subscription and endpoint: topics, their subscriptions (queue attributes plus a
// filter and a push endpoint), and the operations on an endpoint. Publishing to a topic is
// `redrive send TOPIC`; a pulled subscription is received from as the queue TOPIC:SUBSCRIPTION.
#include <cstdio>

#include "cli/commands_common.h"
#include "common/text.h"

namespace redrive::cli {
namespace {

std::string TopicPath(const Context& ctx, const std::string& topic) {
  return ctx.TenantPath() + "/topics/" + UrlEscape(topic);
}

std::string SubscriptionPath(const Context& ctx, const Flags& f) {
  return TopicPath(ctx, f.topic) + "/subscriptions/" + UrlEscape(f.name);
}

void PrintTopic(const json& t) {
  Details d;
  d.Add("name", Text(t, "name"));
  const json& a = At(t, "attributes");
  d.Add("noRoute", Text(a, "noRoute"));
  d.Add("deadLetterQueue", Text(a, "deadLetterQueue"));
  d.Add("maxMessageSize", Text(a, "maxMessageSize"));
  d.Add("eventRetention", Text(a, "eventRetention"));
  std::string subs;
  for (const auto& s : Items(t, "subscriptions")) {
    subs += (subs.empty() ? "" : ", ") + Text(s, "subscription");
  }
  d.Add("subscriptions", subs.empty() ? "-" : subs);
  d.Add("created at", Text(t, "createdAt"));
  d.Print(stdout);
}

template <typename Answer>
int AnswerTopic(Context& ctx, const Answer& r) {
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] { PrintTopic(r.value()); });
}

// A subscription; with its secret when the answer shows one (create, rotate-secret).
template <typename Answer>
int AnswerSubscription(Context& ctx, const Answer& r) {
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] {
    PrintQueue(r.value());
    if (r.value().contains("secret")) {
      std::printf("\nsigning secret (shown once): %s\n", Text(r.value(), "secret").c_str());
    }
  });
}

void AddTopicOptions(CLI::App* cmd, Flags* f) {
  json* t = &f->topic_flags;
  cmd->add_option_function<std::string>(
         "--no-route", [t](const std::string& v) { (*t)["noRoute"] = v; },
         "What a message no subscription takes does")
      ->check(CLI::IsMember({"count", "dead-letter"}));
  cmd->add_option_function<std::string>(
      "--dead-letter-queue", [t](const std::string& v) { (*t)["deadLetterQueue"] = v; },
      "Where no-route dead letters go");
  cmd->add_option_function<int64_t>(
      "--max-message-size", [t](const int64_t& n) { (*t)["maxMessageSize"] = n; },
      "Largest body in bytes");
  cmd->add_option_function<std::string>(
         "--event-retention", [t](const std::string& v) { (*t)["eventRetention"] = v; },
         "How long messages are kept as events (7d; 0s = none)")
      ->check(DurationCheck());
}

void AddSubscriptionOptions(CLI::App* cmd, Flags* f) {
  AddQueueAttributeOptions(cmd, f);
  json* p = &f->push_flags;
  cmd->add_option("--filter", f->filter_json,
                  "Attribute filter as JSON, like '{\"type\": [\"a\", \"b\"], \"region\": "
                  "{\"prefix\": \"eu-\"}}'");
  cmd->add_option_function<std::string>(
      "--push-url", [p](const std::string& v) { (*p)["url"] = v; },
      "Push to this http(s) endpoint (a push subscription)");
  cmd->add_option("--push-header", f->push_headers, "Extra request header NAME=VALUE; repeatable");
  cmd->add_option_function<std::string>(
         "--push-timeout", [p](const std::string& v) { (*p)["timeout"] = v; },
         "Timeout of each request")
      ->check(DurationCheck());
  cmd->add_option_function<int64_t>(
      "--max-in-flight", [p](const int64_t& n) { (*p)["maxInFlight"] = n; },
      "Requests in flight to the endpoint at most");
  cmd->add_option_function<double>(
      "--rate-limit", [p](const double& n) { (*p)["rateLimit"] = n; },
      "Requests per second at most (0 = no limit)");
  cmd->add_option_function<std::string>(
      "--secret", [p](const std::string& v) { (*p)["secret"] = v; },
      "Signing secret (whsec_...); made for you when left out");
  cmd->add_option_function<int64_t>(
      "--circuit-failures", [p](const int64_t& n) { (*p)["circuitFailures"] = n; },
      "Consecutive failures that open the circuit");
  cmd->add_option_function<std::string>(
         "--probe-interval", [p](const std::string& v) { (*p)["probeInterval"] = v; },
         "How often an open circuit probes")
      ->check(DurationCheck());
  cmd->add_option_function<std::string>(
         "--disable-after", [p](const std::string& v) { (*p)["disableAfter"] = v; },
         "Disable an endpoint failing this long (0 = never)")
      ->check(DurationCheck());
  cmd->add_flag_function(
      "--auto-redrive", [p](int64_t) { (*p)["autoRedriveOnRecovery"] = true; },
      "Redrive the subscription's dead letters when its endpoint recovers");
}

// The subscription's attributes: the queue flags, --filter and the push flags.
Result<json> SubscriptionAttributes(const Flags& f) {
  REDRIVE_ASSIGN_OR_RETURN(json attributes, QueueAttributes(f));
  if (!f.filter_json.empty()) {
    json filter = json::parse(f.filter_json, nullptr, false);
    if (filter.is_discarded() || !filter.is_object()) {
      return Invalid("--filter must be a JSON object, like '{\"type\": \"order.created\"}'");
    }
    attributes["filter"] = filter;
  }
  json push = f.push_flags;
  if (!f.push_headers.empty()) {
    json headers = json::object();
    for (const auto& h : f.push_headers) {
      size_t eq = h.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Invalid("--push-header takes NAME=VALUE, not '" + h + "'");
      }
      headers[h.substr(0, eq)] = h.substr(eq + 1);
    }
    push["headers"] = headers;
  }
  if (!push.empty()) attributes["push"] = push;
  return attributes;
}

// ------------------------------------------------------------------ topic

int TopicCreate(Context& ctx, const Flags& f) {
  json body = {{"name", f.name}};
  if (!f.topic_flags.empty()) body["attributes"] = f.topic_flags;
  return AnswerTopic(ctx, ctx.client.Post(ctx.TenantPath() + "/topics", body));
}

int TopicUpdate(Context& ctx, const Flags& f) {
  if (f.topic_flags.empty()) return Usage("nothing to update: give at least one attribute flag");
  return AnswerTopic(ctx,
                     ctx.client.Patch(TopicPath(ctx, f.name), {{"attributes", f.topic_flags}}));
}

int TopicList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/topics");
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"name", "no-route", "subscriptions"});
  for (const auto& topic : Items(r.value(), "topics")) {
    std::string subs;
    for (const auto& s : Items(topic, "subscriptions")) {
      subs += (subs.empty() ? "" : ",") + Text(s, "subscription");
    }
    t.AddRow(
        {Text(topic, "name"), Text(At(topic, "attributes"), "noRoute"), subs.empty() ? "-" : subs});
  }
  t.Print(stdout);
  return kExitOk;
}

int TopicShow(Context& ctx, const Flags& f) {
  return AnswerTopic(ctx, ctx.client.Get(TopicPath(ctx, f.name)));
}

int TopicRemove(Context& ctx, const Flags& f) {
  auto r = ctx.client.Delete(TopicPath(ctx, f.name));
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] {
    std::printf("deleted topic %s and its subscriptions\n", Printable(f.name).c_str());
  });
}

// One line per subscription's copy: "billing delivered", "crm dead-lettered (max-deliveries)".
std::string DeliveriesText(const json& event) {
  std::string out;
  for (const auto& d : Items(event, "deliveries")) {
    out += (out.empty() ? "" : ", ") + Text(d, "subscription") + " " + Text(d, "state");
    if (!Text(d, "reason", "").empty()) out += " (" + Text(d, "reason") + ")";
  }
  return out.empty() ? "-" : out;
}

int TopicEvents(Context& ctx, const Flags& f) {
  std::string query;
  auto add = [&](const char* name, const std::string& v) {
    if (v.empty()) return;
    query += (query.empty() ? "?" : "&") + std::string(name) + "=" + UrlEscape(v);
  };
  add("state", f.dlq_reason);
  add("subscription", f.name);
  add("since", f.since);
  add("until", f.until);
  add("limit", f.limit > 0 ? std::to_string(f.limit) : "");
  add("cursor", f.cursor);
  auto r = ctx.client.Get(TopicPath(ctx, f.topic) + "/events" + query);
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"id", "published", "deliveries"});
  for (const auto& e : Items(r.value(), "events")) {
    t.AddRow({Text(e, "id"), Text(e, "publishedAt"), DeliveriesText(e)});
  }
  t.Print(stdout);
  if (!Text(r.value(), "nextCursor", "").empty()) {
    std::printf("more: --cursor %s\n", Text(r.value(), "nextCursor").c_str());
  }
  return kExitOk;
}

int TopicEvent(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(TopicPath(ctx, f.topic) + "/events/" + UrlEscape(f.id));
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] {
    const json& e = r.value();
    Details d;
    d.Add("id", Text(e, "id"));
    d.Add("published at", Text(e, "publishedAt"));
    d.Add("kept until", Text(e, "keptUntil"));
    d.Add("attributes", Text(At(e, "attributes")));
    for (const auto& del : Items(e, "deliveries")) {
      std::string state = Text(del, "state");
      for (const char* k : {"reason", "deadLetterId", "deliveredAt", "queue"}) {
        if (!Text(del, k, "").empty()) state += ", " + std::string(k) + " " + Text(del, k);
      }
      d.Add(Text(del, "subscription"), state);
    }
    d.Add("body", Text(e, "body"));
    d.Print(stdout);
  });
}

// ------------------------------------------------------------------ subscription

int SubscriptionRedeliver(Context& ctx, const Flags& f) {
  auto r = ctx.client.Post(SubscriptionPath(ctx, f) + "/redeliver", {{"messageId", f.id}});
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] {
    std::printf("redelivering %s to %s (redelivery %s)\n", Printable(f.id).c_str(),
                Printable(f.name).c_str(), Text(r.value(), "redeliveries").c_str());
  });
}

int SubscriptionCreate(Context& ctx, const Flags& f) {
  auto attributes = SubscriptionAttributes(f);
  if (!attributes.ok()) return Usage(attributes.status().message());
  json body = {{"name", f.name}};
  if (!attributes->empty()) body["attributes"] = attributes.value();
  return AnswerSubscription(ctx, ctx.client.Post(TopicPath(ctx, f.topic) + "/subscriptions", body));
}

int SubscriptionUpdate(Context& ctx, const Flags& f) {
  auto attributes = SubscriptionAttributes(f);
  if (!attributes.ok()) return Usage(attributes.status().message());
  if (attributes->empty()) return Usage("nothing to update: give at least one attribute flag");
  return AnswerSubscription(
      ctx, ctx.client.Patch(SubscriptionPath(ctx, f), {{"attributes", attributes.value()}}));
}

int SubscriptionList(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(TopicPath(ctx, f.topic) + "/subscriptions");
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"subscription", "delivery", "ready", "leased", "dead-lettered"});
  for (const auto& s : Items(r.value(), "subscriptions")) {
    const json& depth = At(s, "depth");
    const json& push = At(At(s, "attributes"), "push");
    std::string delivery = push.is_object() ? "push " + Text(push, "url") : "pull";
    if (push.is_object() && At(push, "disabled") == json(true)) delivery += " (disabled)";
    t.AddRow({Text(s, "subscription"), delivery, Text(depth, "ready"), Text(depth, "leased"),
              Text(depth, "deadLettered")});
  }
  t.Print(stdout);
  return kExitOk;
}

int SubscriptionShow(Context& ctx, const Flags& f) {
  return AnswerSubscription(ctx, ctx.client.Get(SubscriptionPath(ctx, f)));
}

int SubscriptionRemove(Context& ctx, const Flags& f) {
  auto r = ctx.client.Delete(SubscriptionPath(ctx, f));
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] {
    std::printf("deleted subscription %s of %s\n", Printable(f.name).c_str(),
                Printable(f.topic).c_str());
  });
}

// ------------------------------------------------------------------ endpoint

int EndpointShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(SubscriptionPath(ctx, f) + "/endpoint");
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] {
    Details d;
    for (auto it = r.value().begin(); it != r.value().end(); ++it) d.Add(it.key(), Text(*it));
    d.Print(stdout);
  });
}

int EndpointAction(Context& ctx, const Flags& f, const std::string& action, json body) {
  auto r = ctx.client.Post(SubscriptionPath(ctx, f) + "/endpoint/" + action, body);
  if (!r.ok()) return ctx.Fail(r.error());
  if (action == "test") {
    return ctx.Answer(r.value(), [&] {
      const json& v = r.value();
      std::printf("%s: status %s in %s ms%s%s\n", At(v, "ok") == json(true) ? "ok" : "failed",
                  Text(v, "status").c_str(), Text(v, "durationMs").c_str(),
                  Text(v, "error").empty() ? "" : ", ", Text(v, "error").c_str());
    });
  }
  return AnswerSubscription(ctx, r);
}

}  // namespace

void AddTopicCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf) {
  auto* topic = app.add_subcommand("topic", "Create, change, list, show and delete topics");
  topic->require_subcommand(1);
  auto* create = topic->add_subcommand("create", "Create a topic");
  create->add_option("NAME", f->name, "Topic name")->required();
  AddTopicOptions(create, f);
  add_leaf(create, true, TopicCreate);
  auto* update = topic->add_subcommand("update", "Change a topic's attributes");
  update->add_option("NAME", f->name, "Topic name")->required();
  AddTopicOptions(update, f);
  add_leaf(update, true, TopicUpdate);
  add_leaf(topic->add_subcommand("ls", "List topics and their subscriptions"), true, TopicList);
  auto* show = topic->add_subcommand("show", "Show a topic");
  show->add_option("NAME", f->name, "Topic name")->required();
  add_leaf(show, true, TopicShow);
  auto* events = topic->add_subcommand(
      "events", "A topic's recent messages and the state of each subscription's copy");
  events->add_option("TOPIC", f->topic, "Topic name")->required();
  events->add_option("--state", f->dlq_reason, "Only events with a copy in this state")
      ->check(CLI::IsMember({"pending", "delivering", "delivered", "dead-lettered", "dropped"}));
  events->add_option("--subscription", f->name, "Only this subscription's copies");
  events->add_option("--since", f->since, "Published at or after: RFC 3339 time or 2h (ago)")
      ->transform(TimeCheck());
  events->add_option("--until", f->until, "Published before: RFC 3339 time or 2h (ago)")
      ->transform(TimeCheck());
  events->add_option("--limit", f->limit, "Events per page (100)");
  events->add_option("--cursor", f->cursor, "Go on from a page's cursor");
  add_leaf(events, true, TopicEvents);
  auto* event = topic->add_subcommand("event", "One event, with its body");
  event->add_option("TOPIC", f->topic, "Topic name")->required();
  event->add_option("ID", f->id, "Message id")->required();
  add_leaf(event, true, TopicEvent);
  auto* rm = topic->add_subcommand("rm", "Delete a topic and its subscriptions");
  rm->add_option("NAME", f->name, "Topic name")->required();
  add_leaf(rm, true, TopicRemove);

  auto* sub = app.add_subcommand(
      "subscription", "Create, change, list, show and delete the subscriptions of a topic");
  sub->require_subcommand(1);
  auto with_names = [f](CLI::App* cmd) {
    cmd->add_option("TOPIC", f->topic, "Topic name")->required();
    cmd->add_option("NAME", f->name, "Subscription name")->required();
  };
  auto* sub_create = sub->add_subcommand("create", "Create a subscription (pulled, or --push-url)");
  with_names(sub_create);
  AddSubscriptionOptions(sub_create, f);
  add_leaf(sub_create, true, SubscriptionCreate);
  auto* sub_update = sub->add_subcommand("update", "Change a subscription's attributes");
  with_names(sub_update);
  AddSubscriptionOptions(sub_update, f);
  add_leaf(sub_update, true, SubscriptionUpdate);
  auto* sub_ls = sub->add_subcommand("ls", "List a topic's subscriptions");
  sub_ls->add_option("TOPIC", f->topic, "Topic name")->required();
  add_leaf(sub_ls, true, SubscriptionList);
  auto* sub_show = sub->add_subcommand("show", "Show a subscription");
  with_names(sub_show);
  add_leaf(sub_show, true, SubscriptionShow);
  auto* sub_redeliver = sub->add_subcommand(
      "redeliver", "Send one of the topic's messages again to this subscription");
  with_names(sub_redeliver);
  sub_redeliver->add_option("ID", f->id, "Message id (from topic events)")->required();
  add_leaf(sub_redeliver, true, SubscriptionRedeliver);
  auto* sub_rm = sub->add_subcommand("rm", "Delete a subscription and its messages");
  with_names(sub_rm);
  add_leaf(sub_rm, true, SubscriptionRemove);

  auto* endpoint = app.add_subcommand("endpoint", "The endpoint of a push subscription");
  endpoint->require_subcommand(1);
  auto* ep_show = endpoint->add_subcommand("show", "Health: circuit, in flight, last error");
  with_names(ep_show);
  add_leaf(ep_show, true, EndpointShow);
  auto* ep_disable = endpoint->add_subcommand("disable", "Stop delivering; messages are kept");
  with_names(ep_disable);
  ep_disable->add_option("--reason", f->reason, "Why (shown with the endpoint)");
  add_leaf(ep_disable, true, [](Context& ctx, const Flags& fl) {
    json body = json::object();
    if (!fl.reason.empty()) body["reason"] = fl.reason;
    return EndpointAction(ctx, fl, "disable", body);
  });
  auto* ep_enable = endpoint->add_subcommand("enable", "Deliver again");
  with_names(ep_enable);
  add_leaf(ep_enable, true, [](Context& ctx, const Flags& fl) {
    return EndpointAction(ctx, fl, "enable", json::object());
  });
  auto* ep_rotate = endpoint->add_subcommand(
      "rotate-secret", "A new signing secret; the old one signs beside it for --overlap");
  with_names(ep_rotate);
  ep_rotate->add_option("--overlap", f->overlap, "How long the old secret keeps signing (1d)")
      ->check(DurationCheck());
  add_leaf(ep_rotate, true, [](Context& ctx, const Flags& fl) {
    json body = json::object();
    if (!fl.overlap.empty()) body["overlap"] = fl.overlap;
    return EndpointAction(ctx, fl, "rotate-secret", body);
  });
  auto* ep_test = endpoint->add_subcommand("test", "Send a signed test request now");
  with_names(ep_test);
  add_leaf(ep_test, true, [](Context& ctx, const Flags& fl) {
    return EndpointAction(ctx, fl, "test", json::object());
  });
}

}  // namespace redrive::cli
