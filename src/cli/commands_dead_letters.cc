// dlq: browse dead letters (list, show, failure groups, stats) and act on them (rm, restore,
// reroute, purge).
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "cli/commands_common.h"

namespace redrive::cli {
namespace {

constexpr size_t kCauseWidth = 60;

// The entries of a _fields value, trimmed, without a leading '/'.
std::vector<std::string> FieldList(const std::string& fields) {
  std::vector<std::string> out;
  std::string entry;
  std::istringstream in(fields);
  while (std::getline(in, entry, ',')) {
    size_t a = entry.find_first_not_of(' '), b = entry.find_last_not_of(' ');
    if (a == std::string::npos) continue;
    entry = entry.substr(a, b - a + 1);
    if (entry[0] == '/') entry.erase(0, 1);
    if (!entry.empty() && std::find(out.begin(), out.end(), entry) == out.end()) {
      out.push_back(entry);
    }
  }
  return out;
}

// The value at a JSON pointer without its leading '/' ("attributes/region", "~1" for '/',
// "~0" for '~'), or null when there is none.
const json& AtPointer(const json& doc, const std::string& pointer) {
  static const json kNull;
  const json* cur = &doc;
  std::string token;
  std::istringstream in(pointer);
  while (std::getline(in, token, '/')) {
    std::string decoded;
    for (size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
        decoded += token[++i] == '0' ? '~' : '/';
      } else {
        decoded += token[i];
      }
    }
    if (cur->is_object()) {
      auto it = cur->find(decoded);
      if (it == cur->end()) return kNull;
      cur = &*it;
    } else if (cur->is_array() && !decoded.empty() &&
               decoded.find_first_not_of("0123456789") == std::string::npos &&
               decoded.size() < 10 && std::stoul(decoded) < cur->size()) {
      cur = &(*cur)[std::stoul(decoded)];
    } else {
      return kNull;
    }
  }
  return *cur;
}

int DlqList(Context& ctx, const Flags& f) {
  std::string filter =
      AndFilter(f.filter, {f.dlq_reason.empty() ? "" : Clause("/reason", "eq", f.dlq_reason),
                           f.since.empty() ? "" : Clause("/deadLetteredAt", "ge", f.since),
                           f.until.empty() ? "" : Clause("/deadLetteredAt", "lt", f.until)});
  QueryParams query = {{"_queryFilter", filter},
                       {"_fields", f.fields},
                       {"_sortKeys", f.sort},
                       {"_pageSize", f.limit > 0 ? std::to_string(f.limit) : ""},
                       {"_pagedResultsCookie", f.cursor},
                       {"_totalPagedResultsPolicy", f.total ? "EXACT" : ""},
                       {"queue", f.dlq},
                       {"origin", f.origin}};
  std::string path = ctx.TenantPath() + "/dead-letters";
  if (!f.group.empty()) {
    path = ctx.TenantPath() + "/failure-groups/" + UrlEscape(f.group) + "/dead-letters";
  }
  auto r = ctx.client.Get(path, query);
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  const json& items = Items(r.value(), "result");
  size_t rows = 0;
  if (f.fields.empty()) {
    Table t({"id", "origin", "reason", "deliveries", "dead-lettered at", "group", "cause"});
    for (const auto& d : items) {
      t.AddRow({Text(d, "id"), Text(d, "origin"), Text(d, "reason"), Text(d, "deliveryCount"),
                Text(d, "deadLetteredAt"), Text(d, "group"),
                Truncate(Printable(Text(d, "cause", "")), kCauseWidth)});
    }
    rows = t.rows();
    if (rows > 0) t.Print(stdout);
  } else {
    // The columns are what was asked for, id first (the server always keeps it).
    std::vector<std::string> columns = {"id"};
    for (const auto& field : FieldList(f.fields)) {
      if (field != "id") columns.push_back(field);
    }
    Table t(columns);
    for (const auto& d : items) {
      std::vector<std::string> cells;
      for (const auto& c : columns) {
        cells.push_back(Truncate(Printable(Text(AtPointer(d, c))), kCauseWidth));
      }
      t.AddRow(std::move(cells));
    }
    rows = t.rows();
    if (rows > 0) t.Print(stdout);
  }
  if (rows == 0) std::fprintf(stderr, "no dead letters\n");
  const json& total = At(r.value(), "totalPagedResults");
  if (rows > 0 && total.is_number_integer() && total.get<int64_t>() >= 0) {
    std::printf("total: %lld\n", static_cast<long long>(total.get<int64_t>()));
  }
  PrintNextCursor(r.value());
  return kExitOk;
}

int DlqShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/dead-letters/" + UrlEscape(f.id));
  if (!r.ok()) return ctx.Fail(r.error());
  const json& d = r.value();
  if (ctx.settings.json) {
    ctx.PrintJson(d);
    return kExitOk;
  }
  Details details;
  details.Add("id", Text(d, "id"));
  details.Add("dead-letter queue", Text(d, "deadLetterQueue"));
  details.Add("origin", Text(d, "origin"));
  details.Add("reason", Text(d, "reason"));
  details.AddMultiline("cause", Text(d, "cause", ""));
  details.Add("group", Text(d, "group"));
  details.Add("signature", Text(d, "signature"));
  details.Add("deliveries", Text(d, "deliveryCount"));
  details.Add("idempotency key", Text(d, "idempotencyKey"));
  details.Add("published at", Text(d, "publishedAt"));
  details.Add("first delivered at", Text(d, "firstDeliveredAt"));
  details.Add("last delivered at", Text(d, "lastDeliveredAt"));
  details.Add("dead-lettered at", Text(d, "deadLetteredAt"));
  details.Add("expires at", Text(d, "expiresAt"));
  const json& lineage = At(d, "lineage");
  details.Add("original queue", Text(lineage, "originalQueue"));
  details.Add("redrives", Text(lineage, "redriveCount", "0"));
  details.Add("last redriven at", Text(lineage, "lastRedrivenAt"));
  details.Add("last redriven by", Text(lineage, "lastRedrivenBy"));
  details.AddMultiline("redrive error", Text(d, "redriveError"));
  details.Add("attributes", CompactJson(At(d, "attributes")));
  AddBody(&details, d);
  details.Print(stdout);

  const json& attempts = Items(d, "attempts");
  std::string title = "attempts (" + std::to_string(attempts.size());
  std::string omitted = Text(d, "attemptsOmitted", "0");
  if (omitted != "0") title += ", and " + omitted + " in between not kept";
  std::printf("\n%s):\n", title.c_str());
  Table t({"at", "outcome", "consumer", "reason", "error"});
  for (const auto& a : attempts) {
    t.AddRow({Text(a, "at"), Text(a, "outcome"), Text(a, "consumer"), Text(a, "reason", ""),
              Text(a, "error", "")});
  }
  t.Print(stdout);
  return kExitOk;
}

int DlqGroups(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/failure-groups", {{"queue", f.dlq}});
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"group", "count", "origin", "reason", "diagnosis", "last seen", "signature"});
  for (const auto& g : Items(r.value(), "groups")) {
    // The kind only; --json (or the API) has the evidence.
    std::string diagnosis = "-";
    if (g.contains("diagnosis") && g["diagnosis"].is_object()) {
      diagnosis = Text(g["diagnosis"], "kind", "-");
    }
    // The signature is "origin | reason | normalised cause"; the first two have their columns.
    std::string signature = Text(g, "signature", "");
    std::string prefix = Text(g, "origin", "") + " | " + Text(g, "reason", "") + " | ";
    if (signature.rfind(prefix, 0) == 0) signature.erase(0, prefix.size());
    t.AddRow({Text(g, "id"), Text(g, "count"), Text(g, "origin"), Text(g, "reason"), diagnosis,
              Text(g, "lastSeen"), Truncate(Printable(signature), kCauseWidth)});
  }
  if (t.rows() == 0) {
    std::fprintf(stderr, "no failure groups\n");
  } else {
    t.Print(stdout);
  }
  return kExitOk;
}

int DlqStats(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/dead-letter-stats", {{"queue", f.dlq}});
  if (!r.ok()) return ctx.Fail(r.error());
  const json& s = r.value();
  if (ctx.settings.json) {
    ctx.PrintJson(s);
    return kExitOk;
  }
  std::printf("total: %s\n", IntText(s, "total").c_str());
  // One table per breakdown: largest first, or in time order (with a bar) for the hours.
  auto section = [&](const char* key, const char* title, bool hours) {
    const json& counts = At(s, key);
    if (!counts.is_object() || counts.empty()) return;
    std::vector<std::pair<std::string, int64_t>> rows;
    int64_t most = 0;
    for (auto it = counts.begin(); it != counts.end(); ++it) {
      int64_t n = it->is_number_integer() ? it->get<int64_t>() : 0;
      rows.emplace_back(it.key(), n);
      most = std::max(most, n);
    }
    if (!hours) {
      std::stable_sort(rows.begin(), rows.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
    }
    Table t = hours ? Table({title, "count", ""}) : Table({title, "count"});
    constexpr int64_t kBarWidth = 40;
    for (const auto& [k, n] : rows) {
      int64_t bar = most > 0 ? std::max<int64_t>(n > 0 ? 1 : 0, n * kBarWidth / most) : 0;
      t.AddRow({k, std::to_string(n), std::string(static_cast<size_t>(bar), '#')});
    }
    std::printf("\n");
    t.Print(stdout);
  };
  section("byOrigin", "origin", false);
  section("byReason", "reason", false);
  section("byGroup", "group", false);
  section("byHour", "hour", true);
  return kExitOk;
}

// The target of rm, restore and reroute: the IDs, or the selection flags (not both).
Result<json> TargetBody(const Flags& f) {
  json body = json::object();
  AddSelection(f, &body);
  if (!f.ids.empty()) {
    if (!body.empty()) {
      return Invalid(
          "give dead letter IDs or selection flags (--filter, --group, --reason, --origin, "
          "--queue, --since, --until), not both");
    }
    // Each id once: the server would count a repeat as matched, then skipped as not-found.
    std::vector<std::string> ids;
    for (const auto& id : f.ids) {
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
    body["ids"] = ids;
    return body;
  }
  if (!body.contains("filter") && !body.contains("group")) {
    return Invalid(
        "say which dead letters: IDs, or --filter, --group, --reason or --origin "
        "(--filter true selects every one; 'dlq purge' empties a dead-letter queue)");
  }
  return body;
}

// Prints an action's result (matched, done, skipped) on stdout, or the answer with --json, and
// each skipped dead letter on stderr. The call succeeded, so skips do not change the exit code.
int ReportAction(Context& ctx, const json& answer, const char* verb) {
  if (ctx.settings.json) {
    ctx.PrintJson(answer);
  } else {
    std::printf("matched %s, %s %s, skipped %s\n", IntText(answer, "matched").c_str(), verb,
                IntText(answer, "done").c_str(), IntText(answer, "skipped").c_str());
  }
  const json& items = Items(answer, "skippedItems");
  for (const auto& s : items) {
    std::string detail = Text(s, "detail", "");
    std::fprintf(stderr, "skipped %s: %s%s\n", Printable(Text(s, "id")).c_str(),
                 Printable(Text(s, "reason")).c_str(),
                 detail.empty() ? "" : Printable(" (" + detail + ")").c_str());
  }
  int64_t unlisted = Int(answer, "skipped") - static_cast<int64_t>(items.size());
  if (unlisted > 0) {
    std::fprintf(stderr, "... and %lld more skipped (the server lists the first %zu)\n",
                 static_cast<long long>(unlisted), items.size());
  }
  return kExitOk;
}

// Bulk actions can touch many rows in one call; give them longer than a browse.
constexpr long kActionTimeoutMs = 600'000;

int DlqAction(Context& ctx, const Flags& f, const std::string& action, const char* verb) {
  auto body = TargetBody(f);
  if (!body.ok()) return Usage(body.status().message());
  if (action == "reroute") (*body)["destination"] = f.to;
  if (f.allow_redacted) (*body)["allowRedacted"] = true;
  auto r =
      ctx.client.Post(ctx.TenantPath() + "/dead-letters/" + action, body.value(), kActionTimeoutMs);
  if (!r.ok()) return ctx.Fail(r.error());
  return ReportAction(ctx, r.value(), verb);
}

int DlqRemove(Context& ctx, const Flags& f) { return DlqAction(ctx, f, "delete", "deleted"); }
int DlqRestore(Context& ctx, const Flags& f) { return DlqAction(ctx, f, "restore", "restored"); }
int DlqReroute(Context& ctx, const Flags& f) { return DlqAction(ctx, f, "reroute", "rerouted"); }

int DlqPurge(Context& ctx, const Flags& f) {
  if (!f.yes) {
    // Say what it would do, with the count when the server tells it.
    std::string what = "every dead letter";
    auto stats = ctx.client.Get(ctx.TenantPath() + "/dead-letter-stats", {{"queue", f.dlq}});
    if (stats.ok() && At(stats.value(), "total").is_number_integer()) {
      what = "all " + IntText(stats.value(), "total") + " dead letters";
    }
    std::fprintf(stderr, "purge would delete %s in '%s', for good\n", what.c_str(),
                 Printable(f.dlq).c_str());
    return Usage("nothing purged: add --yes to purge");
  }
  auto r = ctx.client.Post(ctx.TenantPath() + "/dead-letter-queues/" + UrlEscape(f.dlq) + "/purge",
                           {{"confirm", f.dlq}}, kActionTimeoutMs);
  if (!r.ok()) return ctx.Fail(r.error());
  return ReportAction(ctx, r.value(), "purged");
}

}  // namespace

void AddDeadLetterCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf) {
  auto* dlq = app.add_subcommand("dlq", "Browse, group, delete, restore and reroute dead letters");
  dlq->require_subcommand(1);
  auto* dlq_ls = dlq->add_subcommand("ls", "List dead letters (query, project, sort, page)");
  dlq_ls->add_option("--filter", f->filter,
                     "Query filter, e.g. '/reason eq \"rejected\" and /attributes/region sw "
                     "\"eu\"'");
  dlq_ls->add_option("--reason", f->dlq_reason,
                     "Only this reason (max-deliveries, rejected, expired, overflow); ANDed "
                     "with --filter");
  dlq_ls->add_option("--since", f->since, "Dead-lettered at or after: RFC 3339 time or 2h (ago)")
      ->transform(TimeCheck());
  dlq_ls->add_option("--until", f->until, "Dead-lettered before: RFC 3339 time or 2h (ago)")
      ->transform(TimeCheck());
  dlq_ls->add_option("--queue", f->dlq, "Only this dead-letter queue");
  dlq_ls->add_option("--origin", f->origin, "Only those that came from this queue");
  dlq_ls->add_option("--group", f->group, "Only this failure group (see dlq groups)");
  dlq_ls->add_option("--fields", f->fields,
                     "Comma list of fields to return and show, e.g. id,attributes/region");
  dlq_ls->add_option("--sort", f->sort,
                     "Sort keys, e.g. -deadLetteredAt,origin (default: arrival)");
  dlq_ls->add_option("--limit", f->limit, "Page size (server default 100, at most 1000)")
      ->check(CLI::Range(1, 1000));
  dlq_ls->add_option("--cursor", f->cursor, "Continue after a previous page (its next cursor)");
  dlq_ls->add_flag("--total", f->total, "Count every match, even when that needs a full scan");
  add_leaf(dlq_ls, true, DlqList);
  auto* dlq_show = dlq->add_subcommand("show", "Show one dead letter with its attempt journal");
  dlq_show->add_option("ID", f->id, "Dead letter id")->required();
  add_leaf(dlq_show, true, DlqShow);
  auto* dlq_groups = dlq->add_subcommand(
      "groups", "List failure groups: dead letters with one cause, largest first");
  dlq_groups->add_option("--queue", f->dlq, "Only this dead-letter queue");
  add_leaf(dlq_groups, true, DlqGroups);
  auto* dlq_stats =
      dlq->add_subcommand("stats", "Count dead letters by origin, reason, group, hour");
  dlq_stats->add_option("--queue", f->dlq, "Only this dead-letter queue");
  add_leaf(dlq_stats, true, DlqStats);
  auto add_action = [&](const char* name, const char* help, int (*fn)(Context&, const Flags&)) {
    auto* cmd = dlq->add_subcommand(name, help);
    cmd->add_option("ID", f->ids, "Dead letter ids (or select with the flags)");
    AddSelectionOptions(cmd, f);
    add_leaf(cmd, true, fn);
    return cmd;
  };
  add_action("rm", "Delete dead letters for good", DlqRemove);
  const char* kAllowRedacted =
      "Also move dead letters stored redacted (storeRedacted), as they are: their values are gone";
  add_action("restore", "Move dead letters back to the queues they came from", DlqRestore)
      ->add_flag("--allow-redacted", f->allow_redacted, kAllowRedacted);
  auto* dlq_reroute = add_action("reroute", "Move dead letters to another queue", DlqReroute);
  dlq_reroute->add_option("--to", f->to, "The queue to move them to")->required();
  dlq_reroute->add_flag("--allow-redacted", f->allow_redacted, kAllowRedacted);
  auto* dlq_purge = dlq->add_subcommand("purge", "Delete every dead letter of a dead-letter queue");
  dlq_purge->add_option("DLQ", f->dlq, "Dead-letter queue name")->required();
  dlq_purge->add_flag("--yes", f->yes, "Really purge (without it, say what would go and exit 2)");
  add_leaf(dlq_purge, true, DlqPurge);
}

}  // namespace redrive::cli
