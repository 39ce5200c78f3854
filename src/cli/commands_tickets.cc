// notify, ticket: a tenant's notification settings, its digest, and answering tickets.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands_common.h"

namespace redrive::cli {
namespace {

// The text of `path`, or of stdin for "-"; false when it cannot be read.
bool ReadText(const std::string& path, std::string* out) {
  std::stringstream s;
  if (path == "-") {
    s << std::cin.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    s << in.rdbuf();
  }
  *out = s.str();
  return true;
}

std::string TicketPath(const Context& ctx, const std::string& id) {
  return ctx.TenantPath() + "/tickets/" + UrlEscape(id);
}

void PrintTicket(const json& t) {
  Details d;
  d.Add("id", Text(t, "id"));
  d.Add("state", Text(t, "state"));
  d.Add("dead letters", Text(t, "count"));
  d.Add("created at", Text(t, "createdAt"));
  d.Add("answer by", Text(t, "expiresAt"));
  d.Add("on expiry", Text(t, "onExpiry"));
  const json& answer = At(t, "answer");
  if (answer.is_object()) {
    std::string what =
        Text(answer, "action") + " (" + Text(answer, "via") + ", " + Text(answer, "at") + ")";
    if (answer.contains("job")) what += ": redrive job " + Text(answer, "job");
    if (answer.contains("deleted")) what += ": " + Text(answer, "deleted") + " deleted";
    d.Add("answer", what);
  }
  const json& expiry = At(t, "expiry");
  if (expiry.is_object()) {
    d.Add("expired", Text(expiry, "at") + " (" + Text(expiry, "policy") + ", " +
                         Text(expiry, "removed", "0") + " removed)");
  }
  const json& summary = At(t, "summary");
  if (summary.is_object()) {
    d.Add("oldest", Text(summary, "oldest"));
    d.Add("newest", Text(summary, "newest"));
    for (const auto& g : Items(summary, "byGroup")) {
      std::string line = Text(g, "count") + " " + Text(g, "origin") + " " + Text(g, "reason");
      const json& diagnosis = At(g, "diagnosis");
      if (diagnosis.is_object()) line += " [" + Text(diagnosis, "kind") + "]";
      d.Add("group", line);
    }
  }
  d.Print(stdout);
}

int NotifyShow(Context& ctx, const Flags&) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/notifications");
  if (!r.ok()) return ctx.Fail(r.error());
  ctx.PrintJson(r.value());
  return kExitOk;
}

int NotifySet(Context& ctx, const Flags& f) {
  std::string text;
  if (!ReadText(f.file, &text)) return Usage("cannot read " + f.file);
  json settings = json::parse(text, nullptr, false);
  if (!settings.is_object()) return Usage(f.file + " does not hold a JSON object");
  auto r = ctx.client.Put(ctx.TenantPath() + "/notifications", settings);
  if (!r.ok()) return ctx.Fail(r.error());
  ctx.PrintJson(r.value());
  return kExitOk;
}

int NotifyTest(Context& ctx, const Flags&) {
  auto r = ctx.client.Post(ctx.TenantPath() + "/notifications/test", json::object());
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(),
                    [&] { std::printf("sent: %s\n", At(r.value(), "sent").dump().c_str()); });
}

int DigestRun(Context& ctx, const Flags&) {
  auto r = ctx.client.Post(ctx.TenantPath() + "/digest", json::object());
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] {
    const json& t = At(r.value(), "ticket");
    if (!t.is_object()) {
      std::printf("every dead letter is on an open ticket already: no ticket opened\n");
      return;
    }
    PrintTicket(t);
  });
}

int TicketList(Context& ctx, const Flags& f) {
  QueryParams q;
  if (!f.filter.empty()) q.emplace_back("_queryFilter", f.filter);
  if (f.limit > 0) q.emplace_back("_pageSize", std::to_string(f.limit));
  if (!f.cursor.empty()) q.emplace_back("_pagedResultsCookie", f.cursor);
  auto r = ctx.client.Get(ctx.TenantPath() + "/tickets", q);
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"id", "state", "dead letters", "created", "answer by", "answer"});
  for (const auto& e : Items(r.value(), "result")) {
    const json& answer = At(e, "answer");
    t.AddRow({Text(e, "id"), Text(e, "state"), Text(e, "count"), Text(e, "createdAt"),
              Text(e, "expiresAt"), answer.is_object() ? Text(answer, "action") : "-"});
  }
  t.Print(stdout);
  const json& cookie = At(r.value(), "pagedResultsCookie");
  if (cookie.is_string()) std::printf("more: --cursor %s\n", cookie.get<std::string>().c_str());
  return kExitOk;
}

int TicketShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(TicketPath(ctx, f.id));
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] { PrintTicket(r.value()); });
}

int TicketAnswer(Context& ctx, const Flags& f) {
  if (f.action != "retry" && f.action != "discard") return Usage("ACTION is retry or discard");
  auto r = ctx.client.Post(TicketPath(ctx, f.id) + "/answer", {{"action", f.action}});
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] { PrintTicket(r.value()); });
}

}  // namespace

void AddTicketCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf) {
  auto* notify = app.add_subcommand("notify", "A tenant's notification settings and digest");
  notify->require_subcommand(1);
  add_leaf(notify->add_subcommand("show", "Show the settings (channels, digest, tickets, alerts)"),
           true, NotifyShow);
  auto* set = notify->add_subcommand("set", "Replace the settings with a JSON file's");
  set->add_option("FILE", f->file, "The settings as JSON (docs/api.md, Notifications); - = stdin")
      ->required();
  add_leaf(set, true, NotifySet);
  add_leaf(notify->add_subcommand("test", "Send a test notification to every channel"), true,
           NotifyTest);
  add_leaf(notify->add_subcommand("digest", "Run the digest now: open a ticket if one is needed"),
           true, DigestRun);

  auto* ticket = app.add_subcommand("ticket", "Tickets: dead letters waiting for an answer");
  ticket->require_subcommand(1);
  auto* ls = ticket->add_subcommand("ls", "List tickets, newest first");
  ls->add_option("--filter", f->filter, "_queryFilter, e.g. 'state eq \"open\"'");
  ls->add_option("--limit", f->limit, "Page size (1-1000)");
  ls->add_option("--cursor", f->cursor, "The cursor of the previous page");
  add_leaf(ls, true, TicketList);
  auto* show = ticket->add_subcommand("show", "Show a ticket with its summary");
  show->add_option("ID", f->id, "Ticket id (tkt_...)")->required();
  add_leaf(show, true, TicketShow);
  auto* answer = ticket->add_subcommand("answer", "Answer a ticket: retry or discard");
  answer->add_option("ID", f->id, "Ticket id (tkt_...)")->required();
  answer->add_option("ACTION", f->action, "retry (back to their queues) or discard (delete)")
      ->required();
  add_leaf(answer, true, TicketAnswer);
}

}  // namespace redrive::cli
