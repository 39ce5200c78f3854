// queue: create, update, list, show and delete queues, with the queue attribute flags.
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/commands_common.h"
#include "common/text.h"

namespace redrive::cli {
namespace {

// Sets j[path[0]][path[1]]... = value, making objects on the way.
void SetPath(json& j, std::initializer_list<const char*> path, json value) {
  json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object()) *cur = json::object();
    cur = &(*cur)[key];
  }
  *cur = std::move(value);
}

void Flatten(const json& j, const std::string& prefix, Details* d) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object()) {
      Flatten(*it, key, d);
    } else if (key == "retryPolicy.script" && it->is_string()) {
      d->AddMultiline(key, it->get_ref<const std::string&>());
    } else {
      d->Add(key, Text(*it));
    }
  }
}

}  // namespace

void PrintQueue(const json& q) {
  Details d;
  d.Add("name", Text(q, "name"));
  d.Add("kind", Text(q, "kind"));
  const json& depth = At(q, "depth");
  d.Add("ready", Text(depth, "ready"));
  d.Add("delayed", Text(depth, "delayed"));
  d.Add("leased", Text(depth, "leased"));
  d.Add("dead-lettered", Text(depth, "deadLettered"));
  d.Add("created at", Text(q, "createdAt"));
  d.Add("updated at", Text(q, "updatedAt"));
  const json& attributes = At(q, "attributes");
  if (attributes.is_object()) Flatten(attributes, "", &d);
  d.Print(stdout);
}

void AddQueueAttributeOptions(CLI::App* cmd, Flags* f) {
  json* a = &f->attribute_flags;
  auto duration = [&](const char* flag, std::initializer_list<const char*> path, const char* help) {
    std::vector<const char*> p(path);
    cmd->add_option_function<std::string>(
           flag,
           [a, p](const std::string& v) {
             json* cur = a;
             for (const char* k : p) cur = &(*cur)[k];
             *cur = v;
           },
           help)
        ->check(DurationCheck());
  };
  duration("--visibility-timeout", {"visibilityTimeout"}, "How long a receive hides a message");
  duration("--backoff-initial", {"retryPolicy", "backoff", "initial"},
           "Delay before the first retry");
  duration("--backoff-max", {"retryPolicy", "backoff", "max"}, "Longest delay between retries");
  duration("--message-ttl", {"messageTtl"},
           "Messages unconsumed this long take the exhausted action (0 = never)");
  duration("--retention", {"retention"},
           "Delete messages older than this (0 = keep until consumed)");
  duration("--delivery-delay", {"deliveryDelay"}, "Hide new messages this long");
  cmd->add_option_function<int64_t>(
      "--max-deliveries",
      [a](const int64_t& n) {
        SetPath(*a, {"retryPolicy", "maxDeliveries"}, n);
      },
      "Deliveries before the exhausted action (-1 = forever)");
  cmd->add_option_function<double>(
      "--backoff-multiplier",
      [a](const double& m) {
        SetPath(*a, {"retryPolicy", "backoff", "multiplier"}, m);
      },
      "Factor between successive retry delays");
  cmd->add_option_function<std::string>(
      "--retry-schedule",
      [a](const std::string& v) {
        // A preset's name, or durations separated by commas ("3s,30s,5m").
        if (v.find(',') == std::string::npos && !ParseDuration(v).ok()) {
          SetPath(*a, {"retryPolicy", "schedule"}, v);
          return;
        }
        json delays = json::array();
        for (size_t at = 0; at <= v.size();) {
          size_t comma = std::min(v.find(',', at), v.size());
          delays.push_back(v.substr(at, comma - at));
          at = comma + 1;
        }
        SetPath(*a, {"retryPolicy", "schedule"}, delays);
      },
      "Retry at these delays instead of the backoff: a preset (akamai, svix, fast) or a list "
      "like 3s,30s,5m");
  cmd->add_option_function<std::string>(
         "--on-exhausted",
         [a](const std::string& v) {
           SetPath(*a, {"retryPolicy", "onExhausted"}, v);
         },
         "What happens after the last delivery fails")
      ->check(CLI::IsMember({"dead-letter", "drop", "reroute", "script"}));
  cmd->add_option_function<std::string>(
      "--reroute-to",
      [a](const std::string& v) {
        SetPath(*a, {"retryPolicy", "rerouteTo"}, v);
      },
      "With --on-exhausted reroute: the queue exhausted messages move to");
  cmd->add_option("--script-file", f->script_file,
                  "With --on-exhausted script: a Lua file that decides each exhausted message's "
                  "fate (docs/scripts.md); its text is sent as retryPolicy.script");
  cmd->add_option_function<int64_t>(
      "--max-length", [a](const int64_t& n) { SetPath(*a, {"maxLength"}, n); },
      "Most messages the queue holds (0 = unlimited)");
  cmd->add_option_function<std::string>(
         "--overflow", [a](const std::string& v) { SetPath(*a, {"overflow"}, v); },
         "What a full queue does")
      ->check(CLI::IsMember({"reject-publish", "dead-letter-oldest"}));
  cmd->add_option_function<int64_t>(
      "--max-message-size", [a](const int64_t& n) { SetPath(*a, {"maxMessageSize"}, n); },
      "Largest body in bytes");
  cmd->add_option_function<std::string>(
      "--dead-letter-queue", [a](const std::string& v) { SetPath(*a, {"deadLetterQueue"}, v); },
      "Where this queue's dead letters go");
  cmd->add_option("--attributes", f->attributes_json,
                  "Raw JSON object of attributes; the flags above override it");
}

// The text of a --script-file. The server checks it (size, syntax) when it is set.
Result<std::string> ReadScriptFile(const std::string& path) {
  std::FILE* in = std::fopen(path.c_str(), "rb");
  if (!in) return Invalid("cannot read --script-file " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), in)) > 0) text.append(buf, n);
  bool failed = std::ferror(in) != 0;
  std::fclose(in);
  if (failed) return Invalid("cannot read --script-file " + path);
  if (!IsValidUtf8(text)) return Invalid("--script-file " + path + " is not UTF-8 text");
  return text;
}

// --attributes merged under the attribute flags.
Result<json> QueueAttributes(const Flags& f) {
  json merged = json::object();
  if (!f.attributes_json.empty()) {
    merged = json::parse(f.attributes_json, nullptr, false);
    if (merged.is_discarded() || !merged.is_object()) {
      return Invalid("--attributes must be a JSON object, like '{\"dedupWindow\":\"1m\"}'");
    }
  }
  merged.merge_patch(f.attribute_flags);
  if (!f.script_file.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(std::string script, ReadScriptFile(f.script_file));
    SetPath(merged, {"retryPolicy", "script"}, std::move(script));
  }
  return merged;
}

namespace {

// ------------------------------------------------------------------ queue

// Answers with a queue: the JSON with --json, else the queue view.
template <typename Answer>
int AnswerQueue(Context& ctx, const Answer& r) {
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] { PrintQueue(r.value()); });
}

int QueueCreate(Context& ctx, const Flags& f) {
  auto attributes = QueueAttributes(f);
  if (!attributes.ok()) return Usage(attributes.status().message());
  json body = {{"name", f.name}};
  if (!attributes->empty()) body["attributes"] = attributes.value();
  auto r = ctx.client.Post(ctx.TenantPath() + "/queues", body);
  return AnswerQueue(ctx, r);
}

int QueueUpdate(Context& ctx, const Flags& f) {
  auto attributes = QueueAttributes(f);
  if (!attributes.ok()) return Usage(attributes.status().message());
  if (attributes->empty()) {
    return Usage("nothing to update: give at least one attribute flag or --attributes");
  }
  auto r = ctx.client.Patch(ctx.QueuePath(f.name), {{"attributes", attributes.value()}});
  return AnswerQueue(ctx, r);
}

int QueueList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/queues");
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"name", "kind", "ready", "delayed", "leased", "dead-lettered"});
  for (const auto& q : Items(r.value(), "queues")) {
    const json& depth = At(q, "depth");
    t.AddRow({Text(q, "name"), Text(q, "kind"), Text(depth, "ready"), Text(depth, "delayed"),
              Text(depth, "leased"), Text(depth, "deadLettered")});
  }
  t.Print(stdout);
  return kExitOk;
}

int QueueShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(ctx.QueuePath(f.name));
  return AnswerQueue(ctx, r);
}

int QueueRemove(Context& ctx, const Flags& f) {
  auto r = ctx.client.Delete(ctx.QueuePath(f.name));
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(),
                    [&] { std::printf("deleted queue %s\n", Printable(f.name).c_str()); });
}

}  // namespace

void AddQueueCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf) {
  auto* queue = app.add_subcommand("queue", "Create, change, list, show and delete queues");
  queue->require_subcommand(1);
  auto* queue_create = queue->add_subcommand("create", "Create a queue");
  queue_create->add_option("NAME", f->name, "Queue name")->required();
  AddQueueAttributeOptions(queue_create, f);
  add_leaf(queue_create, true, QueueCreate);
  auto* queue_update = queue->add_subcommand("update", "Change a queue's attributes");
  queue_update->add_option("NAME", f->name, "Queue name")->required();
  AddQueueAttributeOptions(queue_update, f);
  add_leaf(queue_update, true, QueueUpdate);
  add_leaf(queue->add_subcommand("ls", "List queues with their depths"), true, QueueList);
  auto* queue_show = queue->add_subcommand("show", "Show a queue's depths and attributes");
  queue_show->add_option("NAME", f->name, "Queue name")->required();
  add_leaf(queue_show, true, QueueShow);
  auto* queue_rm = queue->add_subcommand("rm", "Delete a queue and its messages");
  queue_rm->add_option("NAME", f->name, "Queue name")->required();
  add_leaf(queue_rm, true, QueueRemove);
}

}  // namespace redrive::cli
