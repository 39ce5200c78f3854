// tenant, token and operator-token: tenants with their quotas, and the tokens that act for
// them or for the operator.
#include <array>
#include <cstdio>
#include <limits>
#include <string_view>

#include "cli/commands_common.h"

namespace redrive::cli {
namespace {

// ------------------------------------------------------------------ tenant

int TenantCreate(Context& ctx, const Flags& f) {
  auto r = ctx.client.Post("/v1/tenants", {{"name", f.name}});
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] {
    std::printf("created tenant %s\n", Printable(Text(r.value(), "name")).c_str());
  });
}

int TenantList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get("/v1/tenants");
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"name", "created at"});
  for (const auto& item : Items(r.value(), "tenants")) {
    t.AddRow({Text(item, "name"), Text(item, "createdAt")});
  }
  t.Print(stdout);
  return kExitOk;
}

std::string TenantPathOf(const std::string& name) { return "/v1/tenants/" + UrlEscape(name); }

void PrintTenant(const json& t) {
  Details d;
  d.Add("name", Text(t, "name"));
  d.Add("state", Text(t, "state"));
  d.Add("created at", Text(t, "createdAt"));
  const json& usage = At(t, "usage");
  const json& quotas = At(t, "quotas");
  const json& overrides = At(t, "quotaOverrides");
  // One line per quota: the limit (0 = unlimited), where it comes from, and the usage.
  struct Row {
    const char* field;
    const char* label;
    const char* usage;
  };
  for (const Row& row :
       {Row{"maxQueues", "max queues", "queues"}, Row{"maxMessages", "max messages", "messages"},
        Row{"maxBytes", "max bytes", "bytes"}, Row{"requestRate", "request rate", ""},
        Row{"requestBurst", "request burst", ""}}) {
    const json& limit = At(quotas, row.field);
    bool burst = std::string_view(row.field) == "requestBurst";
    std::string text = limit == 0 ? (burst ? "the request rate" : "unlimited") : Text(limit);
    text += overrides.contains(row.field) ? " (tenant)" : " (default)";
    if (*row.usage) text += ", using " + Text(usage, row.usage);
    d.Add(row.label, text);
  }
  d.Print(stdout);
}

int TenantShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(TenantPathOf(f.name));
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] { PrintTenant(r.value()); });
}

int TenantSetQuota(Context& ctx, const Flags& f) {
  json quotas = f.quota_flags;
  for (const auto& u : f.unset) {
    if (quotas.contains(u)) return Usage("--unset " + u + " and a value for it exclude each other");
    quotas[u] = nullptr;
  }
  if (quotas.empty()) {
    return Usage("nothing to set: give at least one quota flag or --unset");
  }
  auto r = ctx.client.Patch(TenantPathOf(f.name), {{"quotas", quotas}});
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] { PrintTenant(r.value()); });
}

int TenantRemove(Context& ctx, const Flags& f) {
  std::string path = TenantPathOf(f.name) + (f.force ? "?force=true" : "");
  auto r = ctx.client.Delete(path);
  if (!r.ok()) {
    int rc = ctx.Fail(r.error());
    if (r.error().code == "tenant-not-empty") {
      std::fprintf(stderr,
                   "hint: --force deletes the tenant with its queues, messages, dead letters, "
                   "tokens and audit log\n");
    }
    return rc;
  }
  return ctx.Answer(r.value(),
                    [&] { std::printf("deleted tenant %s\n", Printable(f.name).c_str()); });
}

// ------------------------------------------------------------------ token

// A new token's answer (create, rotate): every field, the secret last, and the warning.
int PrintNewToken(Context& ctx, const json& t) {
  if (ctx.settings.json) {
    ctx.PrintJson(t);
    return kExitOk;
  }
  Details d;
  d.Add("id", Text(t, "id"));
  d.Add("tenant", Text(t, "tenant"));
  d.Add("label", Text(t, "label"));
  d.Add("scopes", Text(t, "scopes"));
  d.Add("expires at", Text(t, "expiresAt", "never"));
  const json& replaces = At(t, "replaces");
  if (replaces.is_object()) {
    d.Add("replaces", Text(replaces, "id") + ", accepted until " + Text(replaces, "expiresAt"));
  }
  d.Add("token", Text(t, "token"));
  d.Print(stdout);
  std::printf("\nThis is the only time the token is shown: the server keeps just its hash.\n");
  return kExitOk;
}

int PrintTokens(Context& ctx, const json& answer) {
  if (ctx.settings.json) {
    ctx.PrintJson(answer);
    return kExitOk;
  }
  Table t({"id", "label", "scopes", "state", "created at", "expires at", "last used at"});
  for (const auto& item : Items(answer, "tokens")) {
    t.AddRow({Text(item, "id"), Text(item, "label"), Text(item, "scopes"), Text(item, "state"),
              Text(item, "createdAt"), Text(item, "expiresAt"), Text(item, "lastUsedAt")});
  }
  t.Print(stdout);
  return kExitOk;
}

// A rotation's body: the flags given, else no body (the server's default overlap).
json RotationBody(const Flags& f) {
  json body = json::object();
  if (!f.overlap.empty()) body["overlap"] = f.overlap;
  if (!f.expires_in.empty()) body["expiresIn"] = f.expires_in;
  return body;
}

int TokenCreate(Context& ctx, const Flags& f) {
  json body = {{"label", f.label}};
  if (!f.scopes.empty()) body["scopes"] = f.scopes;
  if (!f.expires_in.empty()) body["expiresIn"] = f.expires_in;
  auto r = ctx.client.Post(ctx.TenantPath() + "/tokens", body);
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintNewToken(ctx, r.value());
}

int TokenList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/tokens");
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintTokens(ctx, r.value());
}

int TokenRotate(Context& ctx, const Flags& f) {
  auto r = ctx.client.Post(ctx.TenantPath() + "/tokens/" + UrlEscape(f.token_id) + "/rotate",
                           RotationBody(f));
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintNewToken(ctx, r.value());
}

int OperatorTokenCreate(Context& ctx, const Flags& f) {
  json body = {{"label", f.label}};
  if (!f.expires_in.empty()) body["expiresIn"] = f.expires_in;
  auto r = ctx.client.Post("/v1/operator-tokens", body);
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintNewToken(ctx, r.value());
}

int OperatorTokenList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get("/v1/operator-tokens");
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintTokens(ctx, r.value());
}

int OperatorTokenRevoke(Context& ctx, const Flags& f) {
  auto r = ctx.client.Delete("/v1/operator-tokens/" + UrlEscape(f.token_id));
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] {
    std::printf("revoked operator token %s\n", Printable(f.token_id).c_str());
  });
}

int OperatorTokenRotate(Context& ctx, const Flags& f) {
  auto r =
      ctx.client.Post("/v1/operator-tokens/" + UrlEscape(f.token_id) + "/rotate", RotationBody(f));
  if (!r.ok()) return ctx.Fail(r.error());
  return PrintNewToken(ctx, r.value());
}

int TokenRevoke(Context& ctx, const Flags& f) {
  auto r = ctx.client.Delete(ctx.TenantPath() + "/tokens/" + UrlEscape(f.token_id));
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(),
                    [&] { std::printf("revoked token %s\n", Printable(f.token_id).c_str()); });
}

}  // namespace

void AddTenancyCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf) {
  // tenant
  auto* tenant = app.add_subcommand("tenant", "Create and list tenants (operator token)");
  tenant->require_subcommand(1);
  auto* tenant_create = tenant->add_subcommand("create", "Create a tenant");
  tenant_create->add_option("NAME", f->name, "Tenant name")->required();
  add_leaf(tenant_create, false, TenantCreate);
  add_leaf(tenant->add_subcommand("ls", "List tenants"), false, TenantList);
  auto* tenant_show =
      tenant->add_subcommand("show", "Show a tenant's quotas and what it uses of them");
  tenant_show->add_option("NAME", f->name, "Tenant name")->required();
  add_leaf(tenant_show, false, TenantShow);
  auto* tenant_quota =
      tenant->add_subcommand("set-quota", "Override the default quotas of a tenant (operator)");
  tenant_quota->add_option("NAME", f->name, "Tenant name")->required();
  for (const auto& [flag, field, help] : std::vector<std::array<const char*, 3>>{
           {"--max-queues", "maxQueues", "Most standard queues (0 = unlimited)"},
           {"--max-messages", "maxMessages",
            "Most stored messages, dead letters included (0 = unlimited)"},
           {"--max-bytes", "maxBytes", "Most body bytes of those messages (0 = unlimited)"},
           {"--request-rate", "requestRate", "Requests per second (0 = unlimited)"},
           {"--request-burst", "requestBurst", "Requests at once (0 = the rate)"}}) {
    json* q = &f->quota_flags;
    std::string name = field;
    tenant_quota
        ->add_option_function<int64_t>(
            flag, [q, name](const int64_t& v) { (*q)[name] = v; }, help)
        ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()));
  }
  tenant_quota
      ->add_option("--unset", f->unset,
                   "Back to the server default for this quota (repeatable): maxQueues, "
                   "maxMessages, maxBytes, requestRate, requestBurst")
      ->check(
          CLI::IsMember({"maxQueues", "maxMessages", "maxBytes", "requestRate", "requestBurst"}))
      ->allow_extra_args(false);
  add_leaf(tenant_quota, false, TenantSetQuota);
  auto* tenant_rm = tenant->add_subcommand("rm", "Delete a tenant (operator)");
  tenant_rm->add_option("NAME", f->name, "Tenant name")->required();
  tenant_rm->add_flag("--force", f->force,
                      "Also when it has queues: delete everything it holds, for good");
  add_leaf(tenant_rm, false, TenantRemove);

  // token
  auto* token = app.add_subcommand("token", "Create, list and revoke the tenant's tokens");
  token->require_subcommand(1);
  auto* token_create = token->add_subcommand("create", "Create a token; prints its secret once");
  token_create->add_option("--label", f->label, "What the token is for")->required();
  token_create
      ->add_option("--scope", f->scopes,
                   "A scope (repeatable): publish, consume, dlq:read, dlq:write, dlq:export, "
                   "admin, dlq:read-unredacted; default all but dlq:read-unredacted")
      ->allow_extra_args(false);
  token_create->add_option("--expires-in", f->expires_in, "Refuse the token after this long")
      ->check(DurationCheck());
  add_leaf(token_create, true, TokenCreate);
  add_leaf(token->add_subcommand("ls", "List tokens"), true, TokenList);
  auto* token_revoke = token->add_subcommand("revoke", "Revoke a token");
  token_revoke->add_option("ID", f->token_id, "Token id (tok_...)")->required();
  add_leaf(token_revoke, true, TokenRevoke);
  // The rotate subcommand of `token` and `operator-token`.
  auto add_rotate = [f](CLI::App* parent) {
    auto* rotate = parent->add_subcommand(
        "rotate", "Issue a replacement with the same scopes; the old one works for --overlap");
    rotate->add_option("ID", f->token_id, "Token id (tok_...)")->required();
    rotate
        ->add_option("--overlap", f->overlap,
                     "How long the old token stays valid (default 24h, at most 30d; 0s = now)")
        ->check(DurationCheck());
    rotate->add_option("--expires-in", f->expires_in, "Refuse the new token after this long")
        ->check(DurationCheck());
    return rotate;
  };
  add_leaf(add_rotate(token), true, TokenRotate);

  // operator-token
  auto* op_token = app.add_subcommand(
      "operator-token", "Create, list, rotate and revoke operator tokens (operator token)");
  op_token->require_subcommand(1);
  auto* op_create =
      op_token->add_subcommand("create", "Create an operator token; prints its secret once");
  op_create->add_option("--label", f->label, "What the token is for")->required();
  op_create->add_option("--expires-in", f->expires_in, "Refuse the token after this long")
      ->check(DurationCheck());
  add_leaf(op_create, false, OperatorTokenCreate);
  add_leaf(op_token->add_subcommand("ls", "List operator tokens"), false, OperatorTokenList);
  auto* op_revoke =
      op_token->add_subcommand("revoke", "Revoke an operator token (never the last active one)");
  op_revoke->add_option("ID", f->token_id, "Token id (tok_...)")->required();
  add_leaf(op_revoke, false, OperatorTokenRevoke);
  add_leaf(add_rotate(op_token), false, OperatorTokenRotate);
}

}  // namespace redrive::cli
