// audit: the tenant's audit log, or the server's.
#include <algorithm>
#include <cstdio>

#include "cli/commands_common.h"

namespace redrive::cli {
namespace {

constexpr size_t kDetailWidth = 80;

// An audit entry's detail on one line, what was acted on first: "key=value" pairs with the
// job, target, queue and destination leading, an action's result as its counts, then the rest
// as compact JSON. A detail that is not an object is shown as JSON.
std::string AuditDetail(const json& detail) {
  if (!detail.is_object()) return CompactJson(detail);
  std::vector<std::string> order = {"tenant",          "token",       "queue",  "job",   "target",
                                    "deadLetterQueue", "destination", "toMove", "result"};
  for (auto it = detail.begin(); it != detail.end(); ++it) {
    if (std::find(order.begin(), order.end(), it.key()) == order.end()) order.push_back(it.key());
  }
  std::string out;
  auto add = [&](const std::string& key, const json& v) {
    out += (out.empty() ? "" : " ") + key + "=" +
           (v.is_string() ? v.get<std::string>() : CompactJson(v));
  };
  for (const auto& key : order) {
    auto it = detail.find(key);
    if (it == detail.end()) continue;
    if (key == "result" && it->is_object()) {
      for (const char* k : {"matched", "done", "skipped"}) {
        if (it->contains(k)) add(k, (*it)[k]);
      }
    } else {
      add(key, *it);
    }
  }
  return out;
}

int AuditList(Context& ctx, const Flags& f) {
  QueryParams query = {{"_queryFilter", f.filter},
                       {"_pageSize", f.limit > 0 ? std::to_string(f.limit) : ""},
                       {"_pagedResultsCookie", f.cursor}};
  if (!f.server && ctx.settings.tenant.empty()) {
    return Usage(
        "no tenant: pass --tenant, set REDRIVE_TENANT, or set tenant in the config file (or "
        "--server for the server-wide log)");
  }
  auto r = ctx.client.Get(f.server ? "/v1/audit" : ctx.TenantPath() + "/audit", query);
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"id", "at", "actor", "action", "detail"});
  for (const auto& e : Items(r.value(), "result")) {
    t.AddRow({Text(e, "id"), Text(e, "at"), Text(e, "actor"), Text(e, "action"),
              Truncate(Printable(AuditDetail(At(e, "detail"))), kDetailWidth)});
  }
  if (t.rows() == 0) {
    std::fprintf(stderr, "no audit entries\n");
  } else {
    t.Print(stdout);
  }
  PrintNextCursor(r.value());
  return kExitOk;
}

}  // namespace

void AddAuditCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf) {
  auto* audit =
      app.add_subcommand("audit", "The audit log: dead-letter actions and administrative changes");
  audit->require_subcommand(1);
  auto* audit_ls = audit->add_subcommand("ls", "List audit entries, oldest first");
  audit_ls->add_option("--filter", f->filter, "Query filter, e.g. '/action sw \"job.\"'");
  audit_ls->add_option("--limit", f->limit, "Page size (server default 100, at most 1000)")
      ->check(CLI::Range(1, 1000));
  audit_ls->add_option("--cursor", f->cursor, "Continue after a previous page (its next cursor)");
  audit_ls->add_flag("--server", f->server,
                     "The server-wide log (tenants, operator tokens, quotas; operator token)");
  add_leaf(audit_ls, false, AuditList);
}

}  // namespace redrive::cli
