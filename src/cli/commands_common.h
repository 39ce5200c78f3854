// What the client commands (commands_*.cc) share: the Context a running command sees, the
// parsed Flags, safe reading of the server's JSON answers, output and flag-validation helpers,
// the selection of dead letters that `dlq` actions and `jobs start` both take, and the
// registration of each command group. Internal to the cli module: main.cc sees commands.h only.
//
// Output conventions (commands.h): results on stdout, errors and notices on stderr; every
// helper that reports an error returns the exit code to return with it.
//
// Thread-safety: not thread-safe; a command runs once, on one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "common/status.h"

namespace redrive::cli {

// ------------------------------------------------------------------ context

struct Context {
  explicit Context(Settings s)
      : settings(std::move(s)), client(settings.url, settings.token, settings.ca_file) {}

  Settings settings;
  Client client;

  std::string TenantPath() const { return "/v1/tenants/" + UrlEscape(settings.tenant); }
  std::string QueuePath(const std::string& queue) const {
    return TenantPath() + "/queues/" + UrlEscape(queue);
  }

  // Reports a failed call on stderr; returns the exit code it maps to.
  int Fail(const CallError& e) const;

  // The server's answer, pretty-printed (nothing for 204 No Content).
  void PrintJson(const json& j) const;
  // The answer of a command that succeeded: pretty-printed with --json, otherwise as `human`
  // prints it for a person. Returns kExitOk.
  int Answer(const json& answer, const std::function<void()>& human) const;
};

// ------------------------------------------------------------------ flags

struct ClientCommands::Flags {
  GlobalOptions global;
  std::string name;  // tenant, queue
  // token
  std::string label;
  std::vector<std::string> scopes;
  std::string token_id;
  std::string expires_in;
  std::string overlap;
  // tenant quotas (set-quota), in API field names; `unset` holds quotas to reset to the default
  json quota_flags = json::object();
  std::vector<std::string> unset;
  bool force = false;
  bool server = false;  // audit ls: the server-wide log
  // queue attributes: the flags write straight into this object, in API field names
  json attribute_flags = json::object();
  std::string attributes_json;
  std::string script_file;  // read into retryPolicy.script
  // messages
  std::string queue;
  std::string body;
  std::string file;
  std::vector<std::string> attrs;
  std::string key;
  std::string delay;
  bool base64 = false;
  int max = 1;
  std::string wait;
  std::string visibility_timeout;
  bool ack = false;
  bool body_only = false;
  std::vector<std::string> receipts;
  std::string reason;
  std::string error;
  bool dead_letter = false;
  // dead letters: which ones
  std::string dlq;
  std::string origin;
  std::string dlq_reason;
  std::string filter;
  std::string group;
  std::string since;  // RFC 3339, already normalised by TimeCheck()
  std::string until;
  std::vector<std::string> ids;
  // dead letters: listing and paging (also audit)
  std::string fields;
  std::string sort;
  bool total = false;
  int limit = 0;
  std::string cursor;
  std::string id;  // a dead letter or a job
  // dead letters: actions
  std::string to;
  std::string action;           // ticket answer
  bool allow_redacted = false;  // dlq restore, reroute: also dead letters stored redacted
  bool yes = false;
  // redrive jobs
  double rate = -1;  // < 0: not given
  int canary = 0;    // 0: not given
  std::string canary_wait;
  double canary_max_failure = -1;  // < 0: not given
  bool dry_run = false;
  bool wait_job = false;
  // topics and subscriptions
  std::string topic;
  json topic_flags = json::object();  // topic attributes, in API field names
  json push_flags = json::object();   // subscription push.*, in API field names
  std::string filter_json;
  std::vector<std::string> push_headers;  // NAME=VALUE
  // exports
  bool include_exported = false;
  bool gzip = false;
};

using Flags = ClientCommands::Flags;

// ------------------------------------------------------------------ registration

// Runs one subcommand with the parsed flags; returns its exit code.
using Command = std::function<int(Context& ctx, const Flags& flags)>;

// Makes `app` a runnable subcommand: adds the connection options to it and records `run` for
// it. Run() refuses a subcommand that `needs_tenant` when no tenant is set.
using AddLeafFn = std::function<void(CLI::App* app, bool needs_tenant, Command run)>;

// The command groups, one file each. Each registers its subcommands on `app`, binds their
// options to `*f` and adds each runnable one through `add_leaf`. The ClientCommands constructor
// calls them in this order, which is the order of `redrive --help`.

// tenant, token, operator-token
void AddTenancyCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf);
// queue
void AddQueueCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf);
// topic, subscription, endpoint
void AddTopicCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf);

// Shared by queue and subscription (commands_queues.cc): the attribute flags, their merge with
// --attributes, and the queue view.
void AddQueueAttributeOptions(CLI::App* cmd, Flags* f);
Result<json> QueueAttributes(const Flags& f);
void PrintQueue(const json& q);
// send, receive, ack, nack, extend
void AddMessageCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf);
// dlq
void AddDeadLetterCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf);
// jobs
void AddJobCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf);
// export
void AddExportCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf);
void AddTicketCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf);
// audit
void AddAuditCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf);

// ------------------------------------------------------------------ errors

// A kInvalidArgument status with `message`.
Status Invalid(std::string message);

// Reports a usage error on stderr; returns kExitUsage.
int Usage(const std::string& message);

// ------------------------------------------------------------------ reading answers

// Safe field access: the CLI never trusts the answer's shape enough to throw on it. `j[key]`,
// or null when `j` is not an object or has no such key.
const json& At(const json& j, const char* key);

// A scalar as text: strings as they are, numbers and booleans as JSON, arrays as their
// elements joined with ", ", null (or an empty array) as `absent`. The second form is the text
// of At(j, key); note that Text(v, "x") with a literal is that form, with key "x".
std::string Text(const json& v, const std::string& absent = "-");
std::string Text(const json& j, const char* key, const std::string& absent = "-");

// The array at `key`, or an empty array when it is absent or not an array.
const json& Items(const json& j, const char* key);

// An integer field, 0 when absent or not an integer; and the same as decimal text.
int64_t Int(const json& j, const char* key);
std::string IntText(const json& j, const char* key);

// `j` on one line (invalid UTF-8 replaced).
std::string CompactJson(const json& j);

// The bytes of a body as the API carries them: a JSON string, base64 when "base64" is true.
Result<std::string> BodyBytes(const json& item);

// Adds a message's or dead letter's body to `d`: "body (base64)" on one line when the API
// carries it as base64, else "body" with its line breaks kept.
void AddBody(Details* d, const json& item);

// Prints "next cursor: C" on stdout when the answer has a next page.
void PrintNextCursor(const json& answer);

// ------------------------------------------------------------------ flags and filters

// Checks a duration flag with the server's own parser, so a typo is a usage error (exit 2).
const CLI::Validator& DurationCheck();

// A point in time: an RFC 3339 UTC time as the API takes it, or a duration with a unit meaning
// that long ago ("2h"). Rewrites the flag's value to the API's form (FormatTime), so an exact
// time also compares exactly in a filter.
const CLI::Validator& TimeCheck();

// A JSON-pointer comparison with `value` as a JSON string literal: /reason eq "rejected".
std::string Clause(const char* pointer, const char* op, const std::string& value);

// The non-empty parts joined with "and"; `user` (a --filter, which may hold "or") is
// parenthesised when anything is added to it.
std::string AndFilter(const std::string& user, const std::vector<std::string>& clauses);

// The options that select dead letters (--filter, --group, --reason, --origin, --queue,
// --since, --until), of dlq rm, restore, reroute and jobs start.
void AddSelectionOptions(CLI::App* cmd, Flags* f);

// Adds what selects dead letters (all but ids) to a bulk-action or job body: the filter (with
// --reason and --origin ANDed in), the group, the dead-letter queue and the time window.
void AddSelection(const Flags& f, json* body);

}  // namespace redrive::cli
