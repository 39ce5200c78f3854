// send, receive, ack, nack and extend: the life of a message, from the command line.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/commands_common.h"
#include "common/text.h"

namespace redrive::cli {
namespace {

Status ReadAll(std::FILE* in, std::string* out) {
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), in)) > 0) out->append(buf, n);
  if (std::ferror(in)) return Invalid(std::string("read failed: ") + std::strerror(errno));
  return Status::Ok();
}

Status ReadFileBytes(const std::string& path, std::string* out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Invalid("cannot read " + path + ": " + std::strerror(errno));
  Status st = ReadAll(f, out);
  std::fclose(f);
  if (!st.ok()) return Invalid("cannot read " + path + ": " + st.message());
  return Status::Ok();
}

long LongPollTimeout(const std::string& wait) {
  DurationMs ms = 0;
  if (!wait.empty()) {
    auto d = ParseDuration(wait);
    if (d.ok()) ms = d.value();
  }
  return static_cast<long>(ms) + Client::kDefaultTimeoutMs;
}

// Prints the failed items of an ack/nack/extend answer; returns the exit code.
int ReportBatch(Context& ctx, const json& answer, const char* verb) {
  if (ctx.settings.json) ctx.PrintJson(answer);
  const json& results = Items(answer, "results");
  size_t failed = 0;
  for (const auto& r : results) {
    if (Text(r, "status") == "ok") continue;
    ++failed;
    const json& e = At(r, "error");
    std::fprintf(stderr, "error: %s: %s: %s\n", Printable(Text(r, "receipt")).c_str(),
                 Printable(Text(e, "code")).c_str(), Printable(Text(e, "message", "")).c_str());
  }
  if (!ctx.settings.json) {
    size_t ok = results.size() - failed;
    if (failed == 0) {
      std::printf("%s %zu\n", verb, ok);
    } else {
      std::printf("%s %zu of %zu\n", verb, ok, results.size());
    }
  }
  return failed == 0 ? kExitOk : kExitServerError;
}

// ------------------------------------------------------------------ messages

int Send(Context& ctx, const Flags& f, bool body_given) {
  std::string bytes;
  if (body_given && !f.file.empty()) return Usage("give BODY or --file, not both");
  if (!f.file.empty()) {
    Status st = ReadFileBytes(f.file, &bytes);
    if (!st.ok()) return Usage(st.message());
  } else if (body_given) {
    bytes = f.body;
  } else {
    if (isatty(STDIN_FILENO)) {
      std::fprintf(stderr, "reading the message body from stdin (end it with Ctrl-D)\n");
    }
    Status st = ReadAll(stdin, &bytes);
    if (!st.ok()) return Usage("stdin: " + st.message());
  }

  json message = json::object();
  // Bodies are bytes; JSON strings carry only UTF-8, so anything else travels as base64.
  if (f.base64 || !IsValidUtf8(bytes)) {
    message["body"] = Base64Encode(bytes);
    message["base64"] = true;
  } else {
    message["body"] = bytes;
  }
  if (!f.attrs.empty()) {
    json attributes = json::object();
    for (const auto& kv : f.attrs) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Usage("--attr takes KEY=VALUE, got '" + Printable(kv) + "'");
      }
      std::string k = kv.substr(0, eq);
      if (attributes.contains(k)) return Usage("--attr '" + Printable(k) + "' given twice");
      attributes[k] = kv.substr(eq + 1);
    }
    message["attributes"] = attributes;
  }
  if (!f.key.empty()) message["idempotencyKey"] = f.key;
  if (!f.delay.empty()) message["delay"] = f.delay;

  auto r =
      ctx.client.Post(ctx.QueuePath(f.queue) + "/messages", {{"messages", json::array({message})}});
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  const json& items = Items(r.value(), "messages");
  if (items.empty()) {
    return ctx.Fail({CallError::Kind::kBadResponse, 0, "", "the server returned no message id"});
  }
  const json& m = items.front();
  if (At(m, "duplicate") == true) {
    std::printf("%s (duplicate)\n", Printable(Text(m, "id")).c_str());
  } else {
    std::printf("%s\n", Printable(Text(m, "id")).c_str());
  }
  return kExitOk;
}

int Receive(Context& ctx, const Flags& f) {
  if (f.max < 1) return Usage("--max must be at least 1");
  json body = {{"maxMessages", f.max}};
  if (!f.wait.empty()) body["wait"] = f.wait;
  if (!f.visibility_timeout.empty()) body["visibilityTimeout"] = f.visibility_timeout;
  auto r = ctx.client.Post(ctx.QueuePath(f.queue) + "/receive", body, LongPollTimeout(f.wait));
  if (!r.ok()) return ctx.Fail(r.error());
  const json& messages = Items(r.value(), "messages");

  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
  } else if (f.body_only) {
    for (const auto& m : messages) {
      auto bytes = BodyBytes(m);
      if (!bytes.ok()) {
        return ctx.Fail({CallError::Kind::kBadResponse, 0, "",
                         "message " + Text(m, "id") + ": " + bytes.status().message()});
      }
      std::fwrite(bytes->data(), 1, bytes->size(), stdout);
    }
  } else {
    bool first = true;
    for (const auto& m : messages) {
      if (!first) std::printf("\n");
      first = false;
      Details d;
      d.Add("id", Text(m, "id"));
      d.Add("deliveries", Text(m, "deliveryCount"));
      d.Add("receipt", Text(m, "receipt"));
      d.Add("lease expires at", Text(m, "leaseExpiresAt"));
      d.Add("idempotency key", Text(m, "idempotencyKey"));
      d.Add("attributes", CompactJson(At(m, "attributes")));
      AddBody(&d, m);
      d.Print(stdout);
    }
    if (messages.empty()) std::fprintf(stderr, "no messages\n");
  }
  std::fflush(stdout);

  if (!f.ack || messages.empty()) return kExitOk;
  std::vector<std::string> receipts;
  for (const auto& m : messages) receipts.push_back(Text(m, "receipt", ""));
  auto acked = ctx.client.Post(ctx.QueuePath(f.queue) + "/ack", {{"receipts", receipts}});
  if (!acked.ok()) return ctx.Fail(acked.error());
  int failed = 0;
  for (const auto& item : Items(acked.value(), "results")) {
    if (Text(item, "status") == "ok") continue;
    ++failed;
    const json& e = At(item, "error");
    std::fprintf(stderr, "error: %s: %s: %s\n", Printable(Text(item, "receipt")).c_str(),
                 Printable(Text(e, "code")).c_str(), Printable(Text(e, "message", "")).c_str());
  }
  if (!ctx.settings.json && !f.body_only) {
    std::fprintf(stderr, "acked %zu of %zu\n", messages.size() - failed, messages.size());
  }
  return failed == 0 ? kExitOk : kExitServerError;
}

int Ack(Context& ctx, const Flags& f) {
  auto r = ctx.client.Post(ctx.QueuePath(f.queue) + "/ack", {{"receipts", f.receipts}});
  if (!r.ok()) return ctx.Fail(r.error());
  return ReportBatch(ctx, r.value(), "acked");
}

int Nack(Context& ctx, const Flags& f) {
  json nacks = json::array();
  for (const auto& receipt : f.receipts) {
    json n = {{"receipt", receipt}};
    if (!f.reason.empty()) n["reason"] = f.reason;
    if (!f.error.empty()) n["error"] = f.error;
    if (!f.delay.empty()) n["delay"] = f.delay;
    if (f.dead_letter) n["deadLetter"] = true;
    nacks.push_back(std::move(n));
  }
  auto r = ctx.client.Post(ctx.QueuePath(f.queue) + "/nack", {{"nacks", nacks}});
  if (!r.ok()) return ctx.Fail(r.error());
  return ReportBatch(ctx, r.value(), f.dead_letter ? "rejected" : "nacked");
}

int Extend(Context& ctx, const Flags& f) {
  auto r = ctx.client.Post(ctx.QueuePath(f.queue) + "/extend",
                           {{"receipts", f.receipts}, {"visibilityTimeout", f.visibility_timeout}});
  if (!r.ok()) return ctx.Fail(r.error());
  return ReportBatch(ctx, r.value(), "extended");
}

}  // namespace

void AddMessageCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf) {
  // send
  auto* send = app.add_subcommand("send", "Publish one message");
  send->add_option("QUEUE", f->queue, "Queue name")->required();
  auto* body_opt = send->add_option("BODY", f->body, "Message body (default: --file or stdin)");
  send->add_option("--file", f->file, "Read the body from this file");
  send->add_option("--attr", f->attrs, "Attribute KEY=VALUE (repeatable)")->allow_extra_args(false);
  send->add_option("--key", f->key, "Idempotency key");
  send->add_option("--delay", f->delay, "Hide the message this long")->check(DurationCheck());
  send->add_flag("--base64", f->base64,
                 "Send the body base64-encoded (automatic when it is not UTF-8)");
  add_leaf(send, true, [body_opt](Context& ctx, const Flags& flags) {
    return Send(ctx, flags, body_opt->count() > 0);
  });

  // receive
  auto* receive = app.add_subcommand("receive", "Receive (lease) messages and print them");
  receive->add_option("QUEUE", f->queue, "Queue name")->required();
  receive->add_option("--max", f->max, "Most messages to receive (default 1)");
  receive->add_option("--wait", f->wait, "Long-poll up to this long for a first message")
      ->check(DurationCheck());
  receive
      ->add_option("--visibility-timeout", f->visibility_timeout,
                   "Lease length (default: the queue's)")
      ->check(DurationCheck());
  receive->add_flag("--ack", f->ack, "Ack the messages after printing them");
  receive->add_flag("--body-only", f->body_only,
                    "Print only the bodies, as raw bytes (decoded from base64)");
  add_leaf(receive, true, Receive);

  // ack, nack, extend
  auto* ack = app.add_subcommand("ack", "Ack received messages: they are done");
  ack->add_option("QUEUE", f->queue, "Queue name")->required();
  ack->add_option("RECEIPT", f->receipts, "Receipts from receive")->required();
  add_leaf(ack, true, Ack);
  auto* nack = app.add_subcommand("nack", "Nack received messages: retry later or dead-letter");
  nack->add_option("QUEUE", f->queue, "Queue name")->required();
  nack->add_option("RECEIPT", f->receipts, "Receipts from receive")->required();
  nack->add_option("--reason", f->reason, "Short reason, kept in the attempt journal");
  nack->add_option("--error", f->error, "Error text, kept in the attempt journal");
  auto* nack_delay = nack->add_option("--delay", f->delay,
                                      "Retry after this long (default: "
                                      "the queue's backoff)")
                         ->check(DurationCheck());
  nack->add_flag("--dead-letter", f->dead_letter, "Dead-letter now (reason 'rejected')")
      ->excludes(nack_delay);
  add_leaf(nack, true, Nack);
  auto* extend = app.add_subcommand("extend", "Extend the leases of received messages");
  extend->add_option("QUEUE", f->queue, "Queue name")->required();
  extend->add_option("RECEIPT", f->receipts, "Receipts from receive")->required();
  extend->add_option("--visibility-timeout", f->visibility_timeout, "New lease length from now")
      ->required()
      ->check(DurationCheck());
  add_leaf(extend, true, Extend);
}

}  // namespace redrive::cli
