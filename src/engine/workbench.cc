// The dead-letter workbench: query, failure groups, delete, purge, restore, reroute, redrive
// jobs and the audit log. Part of Engine (see engine.h for the contracts).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "common/text.h"
#include "engine/dead_letter_doc.h"
#include "engine/engine.h"
#include "query/fields.h"
#include "query/filter.h"

namespace redrive::engine {
namespace {

using nlohmann::json;
using store::DeadLetterRecord;

constexpr int kMaxSortedMatches = 100'000;
constexpr size_t kMaxSkippedItems = 100;
constexpr size_t kMaxIds = 10'000;

bool MentionsBody(const query::Expr& e) {
  if (!e.path.empty() && e.path[0] == "body") return true;
  for (const auto& c : e.children) {
    if (MentionsBody(*c)) return true;
  }
  return false;
}

// Timestamps in the document are FormatTime strings and compare as strings; a literal written
// another valid way ("...T02:00:00Z", no milliseconds) is rewritten to that form, so that it
// compares by time and the time index can serve it.
void NormalizeTimeLiterals(query::Expr* e) {
  if (e->path.size() == 1 && e->path[0].size() > 2 &&
      e->path[0].compare(e->path[0].size() - 2, 2, "At") == 0 && e->value.is_string()) {
    auto t = ParseTime(e->value.get<std::string>());
    if (t.ok()) e->value = FormatTime(t.value());
  }
  for (auto& c : e->children) NormalizeTimeLiterals(c.get());
}

bool IsExactTime(const json& v) {
  if (!v.is_string()) return false;
  auto t = ParseTime(v.get<std::string>());
  return t.ok() && FormatTime(t.value()) == v.get<std::string>();
}

// True when the store's indexed scan alone decides the filter (no evaluation needed), so
// counting can be done by the store.
bool CoveredByIndex(const query::Expr& e) {
  using query::Op;
  switch (e.op) {
    case Op::kTrue:
      return true;
    case Op::kAnd:
      return std::all_of(e.children.begin(), e.children.end(),
                         [](const auto& c) { return CoveredByIndex(*c); });
    case Op::kEq:
      return e.path.size() == 1 && e.value.is_string() &&
             (e.path[0] == "origin" || e.path[0] == "reason" || e.path[0] == "group" ||
              e.path[0] == "deadLetterQueue");
    case Op::kGe:
    case Op::kGt:
    case Op::kLt:
    case Op::kLe:
      return e.path.size() == 1 && e.path[0] == "deadLetteredAt" && IsExactTime(e.value);
    default:
      return false;
  }
}

// The bound a time comparison puts on dead_lettered_at, in ms: since (inclusive) for ge/gt,
// until (exclusive) for lt/le.
TimeMs TimeBound(const query::Expr& e) {
  TimeMs v = ParseTime(e.value.get<std::string>()).value();
  return (e.op == query::Op::kGt || e.op == query::Op::kLe) ? v + 1 : v;
}

// True when the constraints the index scan applies decide every top-level term exactly, so
// the filter need not be evaluated row by row (and the store may count). An empty value, two
// different values for one field, or a bound the extraction left out all make it false.
bool ConstraintsExact(const query::Expr& e, const query::IndexedConstraints& c) {
  using query::Op;
  if (e.op == Op::kTrue) return true;
  if (e.op == Op::kAnd) {
    return std::all_of(e.children.begin(), e.children.end(),
                       [&](const auto& k) { return ConstraintsExact(*k, c); });
  }
  if (e.op == Op::kEq) {
    const std::string v = e.value.get<std::string>();
    const std::string& f = e.path[0];
    const auto& applied = f == "origin"   ? c.origin
                          : f == "reason" ? c.reason
                          : f == "group"  ? c.group
                                          : c.dlq;
    return !v.empty() && applied && *applied == v;
  }
  // A time bound: the applied bound must be at least as tight as this term's.
  TimeMs b = TimeBound(e);
  if (e.op == Op::kGe || e.op == Op::kGt) {
    return c.since && ParseTime(*c.since).value() >= b;
  }
  return c.until && ParseTime(*c.until).value() <= b;
}

// "<kind>:<a>:<b>", and ":<tail>" when `tail` is not empty (a snapshot's `visible` part, which
// may hold colons itself), base64-encoded.
std::string EncodeCookie(const std::string& kind, int64_t a, int64_t b,
                         const std::string& tail = "") {
  std::string text = kind + ":" + std::to_string(a) + ":" + std::to_string(b);
  if (!tail.empty()) text += ":" + tail;
  return Base64Encode(text);
}

bool DecodeCookie(const std::string& cookie, const std::string& kind, int64_t* a, int64_t* b,
                  std::string* tail = nullptr) {
  auto text = Base64Decode(cookie);
  if (!text.ok() || text->rfind(kind + ":", 0) != 0) return false;
  std::string_view rest(text.value());
  rest.remove_prefix(kind.size() + 1);
  auto colon = rest.find(':');
  if (colon == std::string_view::npos) return false;
  auto second = rest.find(':', colon + 1);
  std::string_view b_text = rest.substr(
      colon + 1, second == std::string_view::npos ? std::string_view::npos : second - colon - 1);
  if (second != std::string_view::npos) {
    if (tail == nullptr || second + 1 == rest.size()) return false;
    *tail = std::string(rest.substr(second + 1));
  }
  auto r1 = std::from_chars(rest.data(), rest.data() + colon, *a);
  auto r2 = std::from_chars(b_text.data(), b_text.data() + b_text.size(), *b);
  return r1.ec == std::errc() && r1.ptr == rest.data() + colon && r2.ec == std::errc() &&
         r2.ptr == b_text.data() + b_text.size() && *a >= 0 && *b >= 0;
}

Status BadCookie() {
  return Status(ErrorCode::kInvalidQuery,
                "_pagedResultsCookie is not one this server issued for this query");
}

const char* OutcomeName(store::RedriveOutcome o) {
  switch (o) {
    case store::RedriveOutcome::kMoved:
      return "moved";
    case store::RedriveOutcome::kGone:
      return "not-found";
    case store::RedriveOutcome::kTooLarge:
      return "too-large";
    case store::RedriveOutcome::kFull:
      return "overflow";
  }
  return "";
}

void Skip(ActionResult* r, const std::string& id, const std::string& reason,
          const std::string& detail = "") {
  ++r->skipped;
  if (r->skipped_items.size() < kMaxSkippedItems) r->skipped_items.push_back({id, reason, detail});
}

json ActionJson(const ActionResult& r) {
  json skipped = json::array();
  for (const auto& s : r.skipped_items) {
    skipped.push_back({{"id", s.id}, {"reason", s.reason}, {"detail", s.detail}});
  }
  return {
      {"matched", r.matched}, {"done", r.done}, {"skipped", r.skipped}, {"skippedItems", skipped}};
}

json TargetJson(const DeadLetterTarget& t) {
  json j = json::object();
  if (!t.ids.empty()) j["ids"] = t.ids.size() <= 20 ? json(t.ids) : json(t.ids.size());
  if (!t.filter.empty()) j["filter"] = t.filter;
  if (!t.group.empty()) j["group"] = t.group;
  if (!t.dlq.empty()) j["deadLetterQueue"] = t.dlq;
  if (t.since) j["since"] = FormatTime(*t.since);
  if (t.until) j["until"] = FormatTime(*t.until);
  return j;
}

json SpecJson(const JobSpec& s) {
  json j = {{"deadLetterQueue", s.dlq},
            {"filter", s.filter},
            {"group", s.group},
            {"destination", s.destination},
            {"rate", s.rate},
            {"canary", s.canary},
            {"canaryWait", s.canary_wait},
            {"canaryMaxFailure", s.canary_max_failure}};
  j["since"] = s.since ? json(*s.since) : json(nullptr);
  j["until"] = s.until ? json(*s.until) : json(nullptr);
  return j;
}

JobSpec SpecFromJson(const json& j) {
  JobSpec s;
  s.dlq = j.value("deadLetterQueue", std::string(kDefaultDeadLetterQueue));
  s.filter = j.value("filter", "");
  s.group = j.value("group", "");
  s.destination = j.value("destination", "");
  s.rate = j.value("rate", 0.0);
  s.canary = j.value("canary", 0);
  s.canary_wait = j.value("canaryWait", DurationMs{30'000});
  s.canary_max_failure = j.value("canaryMaxFailure", 0.1);
  if (j.contains("since") && j["since"].is_number()) s.since = j["since"].get<TimeMs>();
  if (j.contains("until") && j["until"].is_number()) s.until = j["until"].get<TimeMs>();
  return s;
}

DeadLetterTarget TargetOf(const JobSpec& s) {
  DeadLetterTarget t;
  t.filter = s.filter;
  t.group = s.group;
  t.dlq = s.dlq;
  t.since = s.since;
  t.until = s.until;
  return t;
}

// A phase in a job's progress JSON, as the words of job_state.h.
std::string PhaseText(JobPhase phase) { return std::string(store::ToString(phase)); }

JobPhase PhaseOf(const json& progress, JobPhase otherwise) {
  JobPhase phase = otherwise;
  if (progress.contains("phase") && progress["phase"].is_string()) {
    (void)store::FromString(progress["phase"].get<std::string>(), &phase);
  }
  return phase;
}

}  // namespace

struct Engine::Selector {
  std::string tenant;
  std::vector<std::string> ids;  // explicit ids: no scan
  std::shared_ptr<query::Expr> filter;
  bool parse_body = false;
  bool covered = true;  // the scan alone decides membership
  store::DeadLetterScan scan;
};

Result<std::shared_ptr<const Engine::Selector>> Engine::Compile(const std::string& tenant,
                                                                const DeadLetterTarget& t) {
  auto sel = std::make_shared<Selector>();
  sel->tenant = tenant;
  sel->scan.tenant = tenant;
  if (!t.ids.empty()) {
    if (t.ids.size() > kMaxIds) {
      return Status(ErrorCode::kBatchTooLarge,
                    "at most " + std::to_string(kMaxIds) + " ids per call; use a filter");
    }
    if (!t.filter.empty() || !t.group.empty()) {
      return Status(ErrorCode::kInvalidArgument, "give ids, or a filter and/or a group, not both");
    }
    // Each id once, in the order given; the dead-letter queue and time window still apply.
    std::set<std::string> seen;
    for (const auto& id : t.ids) {
      if (seen.insert(id).second) sel->ids.push_back(id);
    }
    sel->scan.dlq = t.dlq;
    if (t.since) sel->scan.since = *t.since;
    if (t.until) sel->scan.until = *t.until;
    return std::shared_ptr<const Selector>(sel);
  }
  if (!t.filter.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(auto expr, query::ParseFilter(t.filter));
    NormalizeTimeLiterals(expr.get());
    sel->filter = std::shared_ptr<query::Expr>(std::move(expr));
    sel->parse_body = MentionsBody(*sel->filter);
    query::IndexedConstraints c = query::ExtractIndexed(*sel->filter);
    sel->covered = CoveredByIndex(*sel->filter) && ConstraintsExact(*sel->filter, c);
    if (c.origin) sel->scan.origin = *c.origin;
    if (c.reason) sel->scan.reason = *c.reason;
    if (c.group) sel->scan.group_id = *c.group;
    if (c.dlq) sel->scan.dlq = *c.dlq;
    if (c.since) sel->scan.since = ParseTime(*c.since).value();
    if (c.until) sel->scan.until = ParseTime(*c.until).value();
  }
  // Explicit scope narrows further; where it contradicts the filter, the filter (still
  // evaluated) matches nothing.
  if (!t.group.empty()) {
    if (!sel->scan.group_id.empty() && sel->scan.group_id != t.group) sel->covered = false;
    sel->scan.group_id = t.group;
  }
  if (!t.dlq.empty()) {
    if (!sel->scan.dlq.empty() && sel->scan.dlq != t.dlq) sel->covered = false;
    sel->scan.dlq = t.dlq;
  }
  if (t.since) sel->scan.since = std::max(sel->scan.since, *t.since);
  if (t.until) sel->scan.until = sel->scan.until ? std::min(sel->scan.until, *t.until) : *t.until;
  return std::shared_ptr<const Selector>(sel);
}

Result<std::vector<DeadLetterRecord>> Engine::NextMatches(const Selector& sel,
                                                          const store::DeadLetterSnapshot& snapshot,
                                                          int limit, int64_t* cursor,
                                                          bool* exhausted) {
  std::vector<DeadLetterRecord> out;
  *exhausted = false;
  if (!sel.ids.empty()) {
    // Explicit ids: `cursor` is the index into the list.
    while (out.size() < static_cast<size_t>(limit) &&
           *cursor < static_cast<int64_t>(sel.ids.size())) {
      const std::string& id = sel.ids[static_cast<size_t>((*cursor)++)];
      REDRIVE_ASSIGN_OR_RETURN(auto d, control_.GetDeadLetter(sel.tenant, id));
      if (d && ((!sel.scan.dlq.empty() && d->dlq != sel.scan.dlq) ||
                (sel.scan.since > 0 && d->dead_lettered_at < sel.scan.since) ||
                (sel.scan.until > 0 && d->dead_lettered_at >= sel.scan.until))) {
        d.reset();  // outside the target's scope: as if not there
      }
      if (d) {
        out.push_back(std::move(*d));
      } else {
        DeadLetterRecord missing;  // seq 0 marks "not found" for the caller
        missing.id = id;
        out.push_back(std::move(missing));
      }
    }
    *exhausted = *cursor >= static_cast<int64_t>(sel.ids.size());
    return out;
  }
  store::DeadLetterScan scan = sel.scan;
  scan.snapshot = snapshot;
  scan.limit = std::max(limit, 200);
  while (out.size() < static_cast<size_t>(limit)) {
    scan.after_seq = *cursor;
    REDRIVE_ASSIGN_OR_RETURN(auto rows, control_.ScanDeadLetters(scan));
    if (rows.empty()) {
      *exhausted = true;
      break;
    }
    for (auto& d : rows) {
      if (out.size() >= static_cast<size_t>(limit)) break;
      *cursor = d.seq;
      if (sel.filter && !sel.covered &&
          !query::Evaluate(*sel.filter, DeadLetterFilterDocument(d, sel.parse_body))) {
        continue;
      }
      out.push_back(std::move(d));
    }
    if (rows.size() < static_cast<size_t>(scan.limit) && out.size() < static_cast<size_t>(limit)) {
      *exhausted = rows.back().seq == *cursor;
      if (*exhausted) break;
    }
  }
  return out;
}

Result<DeadLetterQueryResult> Engine::QueryDeadLetters(const std::string& tenant,
                                                       const DeadLetterQuery& q) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  if (q.page_size < 1 || q.page_size > 1000) {
    return Status(ErrorCode::kInvalidQuery, "_pageSize must be between 1 and 1000");
  }
  if (!q.total_policy.empty() && q.total_policy != "EXACT" && q.total_policy != "NONE") {
    return Status(ErrorCode::kInvalidQuery, "_totalPagedResultsPolicy must be EXACT or NONE");
  }
  std::vector<std::vector<std::string>> fields;
  if (!q.fields.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(fields, query::ParseFields(q.fields));
  }
  std::vector<query::SortKey> sort_keys;
  if (!q.sort_keys.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(sort_keys, query::ParseSortKeys(q.sort_keys));
  }
  DeadLetterTarget target;
  target.filter = q.filter;
  target.group = q.group;
  target.dlq = q.dlq;
  REDRIVE_ASSIGN_OR_RETURN(auto sel_const, Compile(tenant, target));
  Selector sel = *sel_const;
  if (!q.origin.empty()) {
    if (!sel.scan.origin.empty() && sel.scan.origin != q.origin) sel.covered = false;
    sel.scan.origin = q.origin;
  }

  // The page snapshot: dead letters that arrive later are not in this query's pages.
  store::DeadLetterSnapshot snapshot;
  int64_t position = 0;
  const std::string kind = sort_keys.empty() ? "n" : "s";
  if (!q.cookie.empty()) {
    if (!DecodeCookie(q.cookie, kind, &snapshot.max_seq, &position, &snapshot.visible)) {
      return BadCookie();
    }
  } else {
    REDRIVE_ASSIGN_OR_RETURN(snapshot, control_.SnapshotDeadLetters(tenant));
  }
  auto cookie = [&](int64_t at) {
    return EncodeCookie(kind, snapshot.max_seq, at, snapshot.visible);
  };

  DeadLetterQueryResult result;
  auto render = [&](const DeadLetterRecord& d) {
    json doc = DeadLetterDocument(d);
    return fields.empty() ? doc : query::Project(doc, fields);
  };
  if (snapshot.max_seq == 0) {
    result.total = 0;
    return result;
  }
  if (sort_keys.empty()) {
    int64_t cursor = position;
    bool exhausted = false;
    REDRIVE_ASSIGN_OR_RETURN(auto page,
                             NextMatches(sel, snapshot, q.page_size, &cursor, &exhausted));
    for (const auto& d : page) result.items.push_back(render(d));
    if (!exhausted && static_cast<int>(page.size()) == q.page_size) {
      // One more look tells whether a next page exists.
      int64_t probe = cursor;
      bool probe_done = false;
      REDRIVE_ASSIGN_OR_RETURN(auto more, NextMatches(sel, snapshot, 1, &probe, &probe_done));
      if (!more.empty()) result.next_cookie = cookie(cursor);
    }
  } else {
    std::vector<DeadLetterRecord> all;
    int64_t cursor = 0;
    bool exhausted = false;
    while (!exhausted) {
      REDRIVE_ASSIGN_OR_RETURN(auto chunk, NextMatches(sel, snapshot, 1000, &cursor, &exhausted));
      for (auto& d : chunk) all.push_back(std::move(d));
      if (all.size() > static_cast<size_t>(kMaxSortedMatches)) {
        return Status(ErrorCode::kInvalidQuery,
                      "_sortKeys: more than " + std::to_string(kMaxSortedMatches) +
                          " dead letters match; narrow the filter or sort by arrival");
      }
    }
    std::vector<json> docs;
    docs.reserve(all.size());
    for (const auto& d : all) docs.push_back(DeadLetterDocument(d));
    std::stable_sort(docs.begin(), docs.end(), [&](const json& a, const json& b) {
      return query::SortLess(a, b, sort_keys);
    });
    size_t from = static_cast<size_t>(position);
    size_t to = std::min(docs.size(), from + static_cast<size_t>(q.page_size));
    for (size_t i = from; i < to; ++i) {
      result.items.push_back(fields.empty() ? docs[i] : query::Project(docs[i], fields));
    }
    if (to < docs.size()) result.next_cookie = cookie(static_cast<int64_t>(to));
    result.total = static_cast<int64_t>(docs.size());
    return result;
  }

  bool exact = q.total_policy == "EXACT";
  if (q.total_policy != "NONE" && (sel.covered || !sel.filter)) {
    store::DeadLetterScan scan = sel.scan;
    scan.snapshot = snapshot;
    REDRIVE_ASSIGN_OR_RETURN(result.total, control_.CountDeadLetters(scan));
  } else if (exact) {
    int64_t cursor = 0, n = 0;
    bool exhausted = false;
    while (!exhausted) {
      REDRIVE_ASSIGN_OR_RETURN(auto chunk, NextMatches(sel, snapshot, 1000, &cursor, &exhausted));
      n += static_cast<int64_t>(chunk.size());
    }
    result.total = n;
  }
  return result;
}

namespace {
Status CheckDeadLetterQueue(store::ControlStore& store, const std::string& tenant,
                            const std::string& dlq) {
  if (dlq.empty()) return Status::Ok();
  REDRIVE_ASSIGN_OR_RETURN(auto rec, store.GetQueue(tenant, dlq));
  if (!rec || rec->kind != store::QueueKind::kDeadLetter) {
    return Status(ErrorCode::kQueueNotFound, "dead-letter queue '" + dlq + "' not found");
  }
  return Status::Ok();
}
}  // namespace

Result<std::vector<store::FailureGroupRow>> Engine::ListFailureGroups(const std::string& tenant,
                                                                      const std::string& dlq) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(CheckDeadLetterQueue(control_, tenant, dlq));
  return control_.ListFailureGroups(tenant, dlq);
}

Result<store::DeadLetterStats> Engine::GetDeadLetterStats(const std::string& tenant,
                                                          const std::string& dlq) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(CheckDeadLetterQueue(control_, tenant, dlq));
  return control_.GetDeadLetterStats(tenant, dlq);
}

void Engine::Audit(const std::string& tenant, const std::string& actor, const std::string& action,
                   json detail) {
  store::AuditRecord r{0, tenant, clock_.Now(), actor, action, detail.dump()};
  Status st = control_.AppendAudit(r);
  if (!st.ok()) spdlog::error("audit {} {}: {}", tenant, action, st.ToString());
}

Result<ActionResult> Engine::DeleteDeadLetters(const Principal& actor, const std::string& tenant,
                                               const DeadLetterTarget& target) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  if (target.ids.empty() && target.filter.empty() && target.group.empty()) {
    return Status(ErrorCode::kInvalidArgument,
                  "say which dead letters: ids, a filter or a group (purge empties a queue)");
  }
  REDRIVE_ASSIGN_OR_RETURN(auto sel, Compile(tenant, target));
  REDRIVE_ASSIGN_OR_RETURN(auto snapshot, control_.SnapshotDeadLetters(tenant));
  ActionResult result;
  int64_t cursor = 0;
  bool exhausted = false;
  auto audit = [&](const Status& error) {
    json detail = {{"target", TargetJson(target)}, {"result", ActionJson(result)}};
    if (!error.ok()) detail["error"] = error.ToString();
    Audit(tenant, actor.token_id, "dead-letter.delete", std::move(detail));
  };
  while (!exhausted) {
    auto next = NextMatches(*sel, snapshot, options_.redrive_chunk, &cursor, &exhausted);
    if (!next.ok()) {
      audit(next.status());  // the chunks before this one took effect
      return next.status();
    }
    auto batch = std::move(next).value();
    std::vector<int64_t> seqs;
    std::vector<std::string> ids;
    for (const auto& d : batch) {
      ++result.matched;
      if (d.seq == 0) {
        Skip(&result, d.id, "not-found");
        continue;
      }
      seqs.push_back(d.seq);
      ids.push_back(d.id);
    }
    if (seqs.empty()) continue;
    auto del = control_.DeleteDeadLetters(tenant, seqs);
    if (!del.ok()) {
      audit(del.status());
      return del.status();
    }
    auto deleted = std::move(del).value();
    for (size_t i = 0; i < deleted.size(); ++i) {
      if (deleted[i]) {
        ++result.done;
      } else {
        Skip(&result, ids[i], "not-found");
      }
    }
  }
  if (target.ids.size() == 1 && result.done == 0) {
    return Status(ErrorCode::kDeadLetterNotFound, "dead letter '" + target.ids[0] + "' not found");
  }
  audit(Status::Ok());
  return result;
}

Result<ActionResult> Engine::PurgeDeadLetterQueue(const Principal& actor, const std::string& tenant,
                                                  const std::string& dlq,
                                                  const std::string& confirm) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetQueue(tenant, dlq));
  if (!rec || rec->kind != store::QueueKind::kDeadLetter) {
    return Status(ErrorCode::kQueueNotFound, "dead-letter queue '" + dlq + "' not found");
  }
  if (confirm != dlq) {
    return Status(ErrorCode::kInvalidArgument,
                  "purge deletes every dead letter of '" + dlq + "': confirm with its name");
  }
  REDRIVE_ASSIGN_OR_RETURN(int64_t n, control_.PurgeDeadLetters(tenant, dlq));
  ActionResult result;
  result.matched = result.done = n;
  json detail = {{"deadLetterQueue", dlq}, {"result", ActionJson(result)}};
  Audit(tenant, actor.token_id, "dead-letter.purge", std::move(detail));
  spdlog::warn("purged {} dead letters from {}/{} (token {})", n, tenant, dlq, actor.token_id);
  return result;
}

Status Engine::MoveBatch(const std::string& tenant, const std::vector<DeadLetterRecord>& batch,
                         const std::string& destination, const std::string& by,
                         ActionResult* result) {
  TimeMs now = clock_.Now();
  std::vector<store::RedriveItem> items;
  std::vector<const DeadLetterRecord*> sources;
  for (const auto& d : batch) {
    ++result->matched;
    if (d.seq == 0) {
      Skip(result, d.id, "not-found");
      continue;
    }
    const std::string& dest = destination.empty() ? d.origin : destination;
    auto q = LookupQueue(tenant, dest);
    if (!q.ok()) {
      if (q.status().code() != ErrorCode::kQueueNotFound) return q.status();
      Skip(result, d.id, "origin-missing", "queue '" + dest + "' no longer exists");
      continue;
    }
    const CachedQueue& cq = *q.value();
    if (cq.record.kind != store::QueueKind::kStandard) {
      Skip(result, d.id, "origin-missing", "'" + dest + "' is a dead-letter queue");
      continue;
    }
    store::RedriveItem it;
    it.dead_letter_seq = d.seq;
    it.dest_queue_id = cq.record.id;
    it.dest_name = dest;
    it.max_length = cq.config.max_length;
    it.max_message_size = cq.config.max_message_size;
    it.visible_at = now + cq.config.delivery_delay;
    it.expires_at = cq.config.message_ttl > 0 ? now + cq.config.message_ttl : 0;
    it.retain_until = cq.config.retention > 0 ? now + cq.config.retention : 0;
    it.lineage.redrive_count = d.lineage.redrive_count + 1;
    it.lineage.last_redriven_at = now;
    it.lineage.last_redriven_by = by;
    it.lineage.original_queue =
        d.lineage.original_queue.empty() ? d.origin : d.lineage.original_queue;
    items.push_back(std::move(it));
    sources.push_back(&d);
  }
  if (items.empty()) return Status::Ok();
  REDRIVE_ASSIGN_OR_RETURN(auto outcomes, control_.Redrive(tenant, items, now));
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (outcomes[i] == store::RedriveOutcome::kMoved) {
      ++result->done;
      Notify(items[i].dest_queue_id);
    } else {
      Skip(result, sources[i]->id, OutcomeName(outcomes[i]), "destination " + items[i].dest_name);
    }
  }
  return Status::Ok();
}

Result<ActionResult> Engine::MoveDeadLetters(const Principal& actor, const std::string& tenant,
                                             const DeadLetterTarget& target,
                                             const std::string& destination, const char* action) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  if (target.ids.empty() && target.filter.empty() && target.group.empty()) {
    return Status(ErrorCode::kInvalidArgument, "say which dead letters: ids, a filter or a group");
  }
  if (!destination.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(auto q, LookupQueue(tenant, destination));
    if (q->record.kind != store::QueueKind::kStandard) {
      return Status(ErrorCode::kDeadLetterQueueReadOnly,
                    "'" + destination + "' is a dead-letter queue; reroute to a standard queue");
    }
  }
  REDRIVE_ASSIGN_OR_RETURN(auto sel, Compile(tenant, target));
  REDRIVE_ASSIGN_OR_RETURN(auto snapshot, control_.SnapshotDeadLetters(tenant));
  ActionResult result;
  int64_t cursor = 0;
  bool exhausted = false;
  const std::string by = "request:" + actor.token_id;
  auto audit = [&](const Status& error) {
    json detail = {{"target", TargetJson(target)}, {"result", ActionJson(result)}};
    if (!destination.empty()) detail["destination"] = destination;
    if (!error.ok()) detail["error"] = error.ToString();
    Audit(tenant, actor.token_id, action, std::move(detail));
  };
  while (!exhausted) {
    auto next = NextMatches(*sel, snapshot, options_.redrive_chunk, &cursor, &exhausted);
    Status st =
        next.ok() ? MoveBatch(tenant, next.value(), destination, by, &result) : next.status();
    if (!st.ok()) {
      audit(st);  // the chunks before this one took effect
      return st;
    }
  }
  if (target.ids.size() == 1 && result.done == 0 && !result.skipped_items.empty() &&
      result.skipped_items[0].reason == "not-found") {
    return Status(ErrorCode::kDeadLetterNotFound, "dead letter '" + target.ids[0] + "' not found");
  }
  audit(Status::Ok());
  return result;
}

Result<ActionResult> Engine::RestoreDeadLetters(const Principal& actor, const std::string& tenant,
                                                const DeadLetterTarget& target) {
  return MoveDeadLetters(actor, tenant, target, "", "dead-letter.restore");
}

Result<ActionResult> Engine::RerouteDeadLetters(const Principal& actor, const std::string& tenant,
                                                const DeadLetterTarget& target,
                                                const std::string& destination) {
  if (destination.empty()) {
    return Status(ErrorCode::kMissingField, "a reroute needs a destination queue");
  }
  return MoveDeadLetters(actor, tenant, target, destination, "dead-letter.reroute");
}

// ------------------------------------------------------------------ jobs

namespace {

Status ValidateSpec(const JobSpec& s) {
  if (s.rate < 0 || s.rate > 1e7) {
    return Status(ErrorCode::kInvalidArgument, "'rate' must be between 0 and 10000000");
  }
  if (s.canary < 0 || s.canary > 100'000) {
    return Status(ErrorCode::kInvalidArgument, "'canary' must be between 0 and 100000");
  }
  if (s.canary_wait < 0 || s.canary_wait > 86'400'000) {
    return Status(ErrorCode::kInvalidArgument, "'canaryWait' must be between 0s and 1d");
  }
  if (!(s.canary_max_failure >= 0 && s.canary_max_failure <= 1)) {
    return Status(ErrorCode::kInvalidArgument, "'canaryMaxFailure' must be between 0 and 1");
  }
  if (s.since && s.until && *s.until <= *s.since) {
    return Status(ErrorCode::kInvalidArgument, "'until' must be after 'since'");
  }
  return Status::Ok();
}

}  // namespace

Result<DryRunResult> Engine::DryRunJob(const std::string& tenant, const JobSpec& spec) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(ValidateSpec(spec));
  REDRIVE_ASSIGN_OR_RETURN(auto sel, Compile(tenant, TargetOf(spec)));
  REDRIVE_ASSIGN_OR_RETURN(auto snapshot, control_.SnapshotDeadLetters(tenant));
  return DryRun(*sel, snapshot, spec);
}

Result<DryRunResult> Engine::DryRun(const Selector& sel, const store::DeadLetterSnapshot& snapshot,
                                    const JobSpec& spec) {
  DryRunResult r;
  int64_t cursor = 0;
  bool exhausted = false;
  while (!exhausted) {
    REDRIVE_ASSIGN_OR_RETURN(auto batch, NextMatches(sel, snapshot, 1000, &cursor, &exhausted));
    for (const auto& d : batch) {
      ++r.to_move;
      ++r.destinations[spec.destination.empty() ? d.origin : spec.destination];
      if (r.sample.size() < 10) r.sample.push_back(d.id);
    }
  }
  return r;
}

namespace {

JobInfo InfoOf(const store::JobRecord& j) {
  JobInfo info;
  info.id = j.id;
  info.tenant = j.tenant;
  info.state = j.state;
  json spec = json::parse(j.spec_json, nullptr, false);
  if (spec.is_object()) info.spec = SpecFromJson(spec);
  json p = json::parse(j.progress_json, nullptr, false);
  if (p.is_object()) {
    info.phase = PhaseOf(p, JobPhase::kBulk);
    info.to_move = p.value("toMove", int64_t{0});
    info.moved = p.value("moved", int64_t{0});
    info.skipped = p.value("skipped", int64_t{0});
    info.halt_reason = p.value("haltReason", "");
    info.error = p.value("error", "");
    info.created_by = p.value("createdBy", "");
  }
  info.created_at = j.created_at;
  info.updated_at = j.updated_at;
  info.finished_at = j.finished_at;
  return info;
}

}  // namespace

Result<JobInfo> Engine::StartJob(const Principal& actor, const std::string& tenant,
                                 const JobSpec& spec) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(ValidateSpec(spec));
  REDRIVE_ASSIGN_OR_RETURN(auto dlq, control_.GetQueue(tenant, spec.dlq));
  if (!dlq || dlq->kind != store::QueueKind::kDeadLetter) {
    return Status(ErrorCode::kQueueNotFound, "dead-letter queue '" + spec.dlq + "' not found");
  }
  if (!spec.destination.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(auto q, LookupQueue(tenant, spec.destination));
    if (q->record.kind != store::QueueKind::kStandard) {
      return Status(ErrorCode::kDeadLetterQueueReadOnly,
                    "'" + spec.destination + "' is a dead-letter queue");
    }
  }
  REDRIVE_ASSIGN_OR_RETURN(auto sel, Compile(tenant, TargetOf(spec)));
  // What the job covers: the dead letters of this snapshot that match, found in seq order
  // behind a cursor, and nothing else (control_store.h, SnapshotDeadLetters). toMove counts
  // the same set.
  REDRIVE_ASSIGN_OR_RETURN(auto snapshot, control_.SnapshotDeadLetters(tenant));
  store::DeadLetterScan count_scan = sel->scan;
  count_scan.snapshot = snapshot;
  int64_t to_move = 0;
  if (sel->covered) {
    REDRIVE_ASSIGN_OR_RETURN(to_move, control_.CountDeadLetters(count_scan));
  } else {
    REDRIVE_ASSIGN_OR_RETURN(auto dry, DryRun(*sel, snapshot, spec));
    to_move = dry.to_move;
  }
  TimeMs now = clock_.Now();
  store::JobRecord rec;
  rec.id = "job_" + NewUlid(now, random_);
  rec.tenant = tenant;
  rec.scope = spec.dlq;
  rec.state = JobState::kRunning;
  rec.spec_json = SpecJson(spec).dump();
  rec.progress_json = json{
      {"phase", PhaseText(spec.canary > 0 ? JobPhase::kCanary : JobPhase::kBulk)},
      {"toMove", to_move},
      {"moved", 0},
      {"skipped", 0},
      {"cursor", 0},
      {"maxSeq", snapshot.max_seq},
      {"canaryIds", json::array()},
      {"createdBy",
       actor.token_id}}.dump();
  if (!snapshot.visible.empty()) {
    json p = json::parse(rec.progress_json);
    p["snapshot"] = snapshot.visible;
    rec.progress_json = p.dump();
  }
  rec.created_at = rec.updated_at = now;
  Status st = control_.CreateJob(rec);
  if (st.code() == ErrorCode::kAlreadyExists) {
    return Status(ErrorCode::kJobActive, "a redrive job is already active on '" + spec.dlq + "'");
  }
  REDRIVE_RETURN_IF_ERROR(st);
  json detail = {{"job", rec.id}, {"spec", SpecJson(spec)}, {"toMove", to_move}};
  Audit(tenant, actor.token_id, "job.start", std::move(detail));
  stop_cv_.notify_all();  // wake the runner
  return InfoOf(rec);
}

Result<JobInfo> Engine::GetJob(const std::string& tenant, const std::string& id) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetJob(tenant, id));
  if (!rec) return Status(ErrorCode::kJobNotFound, "job '" + id + "' not found");
  JobInfo info = InfoOf(*rec);
  store::DeadLetterScan scan;
  scan.tenant = tenant;
  scan.redriven_by = "job:" + id;
  REDRIVE_ASSIGN_OR_RETURN(info.failed_again, control_.CountDeadLetters(scan));
  return info;
}

Result<std::vector<JobInfo>> Engine::ListJobs(const std::string& tenant) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto recs, control_.ListJobs(tenant));
  std::vector<JobInfo> out;
  for (const auto& r : recs) out.push_back(InfoOf(r));
  return out;
}

Result<JobInfo> Engine::CancelJob(const Principal& actor, const std::string& tenant,
                                  const std::string& id) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetJob(tenant, id));
  if (!rec) return Status(ErrorCode::kJobNotFound, "job '" + id + "' not found");
  if (!store::IsActive(rec->state)) {
    return Status(ErrorCode::kJobStateConflict,
                  "job '" + id + "' is " + std::string(store::ToString(rec->state)));
  }
  TimeMs now = clock_.Now();
  // A halted job is not moving anything: it is cancelled at once. A running one stops at the
  // end of the chunk it is in.
  const JobState was = rec->state;
  rec->state = was == JobState::kHalted ? JobState::kCancelled : JobState::kCancelling;
  if (rec->state == JobState::kCancelled) rec->finished_at = now;
  rec->updated_at = now;
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateJob(*rec, was));
  if (!saved) {
    return Status(ErrorCode::kJobStateConflict,
                  "job '" + id + "' changed state meanwhile; look at it again");
  }
  Audit(tenant, actor.token_id, "job.cancel", json{{"job", id}});
  stop_cv_.notify_all();
  return InfoOf(*rec);
}

Result<JobInfo> Engine::ResumeJob(const Principal& actor, const std::string& tenant,
                                  const std::string& id) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetJob(tenant, id));
  if (!rec) return Status(ErrorCode::kJobNotFound, "job '" + id + "' not found");
  if (rec->state != JobState::kHalted) {
    return Status(ErrorCode::kJobStateConflict, "only a halted job can be resumed; job '" + id +
                                                    "' is " +
                                                    std::string(store::ToString(rec->state)));
  }
  json p = json::parse(rec->progress_json, nullptr, false);
  p["phase"] = PhaseText(JobPhase::kBulk);
  p["haltReason"] = "";
  rec->progress_json = p.dump();
  rec->state = JobState::kRunning;
  rec->updated_at = clock_.Now();
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateJob(*rec, JobState::kHalted));
  if (!saved) {
    return Status(ErrorCode::kJobStateConflict,
                  "job '" + id + "' changed state meanwhile; look at it again");
  }
  Audit(tenant, actor.token_id, "job.resume", json{{"job", id}});
  stop_cv_.notify_all();
  return InfoOf(*rec);
}

Result<bool> Engine::SaveJob(store::JobRecord& job, JobState expected) {
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateJob(job, expected));
  if (saved) return true;
  // Someone changed the state meanwhile (a cancel): keep the progress this step made, under
  // the state they set.
  REDRIVE_ASSIGN_OR_RETURN(auto now_stored, control_.GetJob(job.tenant, job.id));
  if (!now_stored || now_stored->state != JobState::kCancelling) return false;
  job.state = now_stored->state;
  job.finished_at = 0;
  REDRIVE_RETURN_IF_ERROR(control_.UpdateJob(job, JobState::kCancelling).status());
  return false;
}

Result<int64_t> Engine::StepJob(store::JobRecord& job, TimeMs now) {
  const JobState entry_state = job.state;
  json p = json::parse(job.progress_json, nullptr, false);
  if (!p.is_object()) p = json::object();
  auto finish = [&](JobState state) -> Status {
    job.state = state;
    job.finished_at = now;
    job.updated_at = now;
    p["phase"] = PhaseText(JobPhase::kDone);
    job.progress_json = p.dump();
    job_tokens_.erase(job.id);
    REDRIVE_ASSIGN_OR_RETURN(bool saved, SaveJob(job, entry_state));
    if (!saved) return Status::Ok();
    spdlog::info("redrive job {} of {} {}: moved {}, skipped {}", job.id, job.tenant,
                 store::ToString(state), p.value("moved", int64_t{0}),
                 p.value("skipped", int64_t{0}));
    Audit(job.tenant, "system", "job." + std::string(store::ToString(state)),
          json{{"job", job.id},
               {"moved", p.value("moved", int64_t{0})},
               {"skipped", p.value("skipped", int64_t{0})}});
    return Status::Ok();
  };
  if (job.state == JobState::kCancelling) {
    REDRIVE_RETURN_IF_ERROR(finish(JobState::kCancelled));
    return 0;
  }
  JobSpec spec = SpecFromJson(json::parse(job.spec_json, nullptr, false));
  JobPhase phase = PhaseOf(p, JobPhase::kBulk);

  if (phase == JobPhase::kCanaryWait) {
    if (now < p.value("canaryUntil", TimeMs{0})) return 0;
    // How many of the canary came back as dead letters?
    int64_t failed = 0, total = 0;
    for (const auto& id : p.value("canaryIds", json::array())) {
      ++total;
      REDRIVE_ASSIGN_OR_RETURN(auto d, control_.GetDeadLetter(job.tenant, id.get<std::string>()));
      if (d && d->lineage.last_redriven_by == "job:" + job.id) ++failed;
    }
    double share = total ? static_cast<double>(failed) / static_cast<double>(total) : 0.0;
    if (share > spec.canary_max_failure) {
      job.state = JobState::kHalted;
      job.updated_at = now;
      p["phase"] = PhaseText(JobPhase::kCanaryWait);
      p["haltReason"] = std::to_string(failed) + " of " + std::to_string(total) +
                        " canary messages failed again (more than " +
                        std::to_string(static_cast<int>(spec.canary_max_failure * 100)) + "%)";
      job.progress_json = p.dump();
      REDRIVE_ASSIGN_OR_RETURN(bool saved, SaveJob(job, entry_state));
      if (!saved) return 0;
      spdlog::warn("redrive job {} of {} halted: {}", job.id, job.tenant,
                   p["haltReason"].get<std::string>());
      Audit(job.tenant, "system", "job.halted", json{{"job", job.id}, {"reason", p["haltReason"]}});
      return 0;
    }
    p["phase"] = PhaseText(JobPhase::kBulk);
    phase = JobPhase::kBulk;
  }

  // How many this step may move: the chunk, the canary, and the rate limit.
  int64_t limit = options_.redrive_chunk;
  if (phase == JobPhase::kCanary) {
    limit = std::min<int64_t>(limit, spec.canary - p.value("moved", 0));
  }
  if (spec.rate > 0) {
    auto& [tokens, last] = job_tokens_.try_emplace(job.id, 0.0, now).first->second;
    tokens = std::min(tokens + spec.rate * static_cast<double>(now - last) / 1000.0,
                      std::max(spec.rate, 1.0));
    last = now;
    limit = std::min<int64_t>(limit, static_cast<int64_t>(tokens));
    if (limit <= 0) return 0;
  }

  DeadLetterTarget target = TargetOf(spec);
  REDRIVE_ASSIGN_OR_RETURN(auto sel, Compile(job.tenant, target));
  int64_t cursor = p.value("cursor", int64_t{0});
  store::DeadLetterSnapshot snapshot{p.value("maxSeq", int64_t{0}), p.value("snapshot", "")};
  bool exhausted = false;
  REDRIVE_ASSIGN_OR_RETURN(
      auto batch, NextMatches(*sel, snapshot, static_cast<int>(std::max<int64_t>(limit, 1)),
                              &cursor, &exhausted));
  ActionResult r;
  REDRIVE_RETURN_IF_ERROR(MoveBatch(job.tenant, batch, spec.destination, "job:" + job.id, &r));
  if (spec.rate > 0) job_tokens_[job.id].first -= static_cast<double>(r.matched);
  p["cursor"] = cursor;
  p["moved"] = p.value("moved", int64_t{0}) + r.done;
  p["skipped"] = p.value("skipped", int64_t{0}) + r.skipped;
  if (phase == JobPhase::kCanary) {
    json ids = p.value("canaryIds", json::array());
    for (const auto& d : batch) {
      if (d.seq != 0) ids.push_back(d.id);
    }
    p["canaryIds"] = ids;
    if (p["moved"].get<int64_t>() >= spec.canary || exhausted) {
      p["phase"] = PhaseText(JobPhase::kCanaryWait);
      p["canaryUntil"] = now + spec.canary_wait;
      exhausted = false;  // the check comes before completion
    }
  }
  job.updated_at = now;
  job.progress_json = p.dump();
  if (exhausted) {
    REDRIVE_RETURN_IF_ERROR(finish(JobState::kCompleted));
  } else {
    REDRIVE_RETURN_IF_ERROR(SaveJob(job, entry_state).status());
  }
  return r.done;
}

Result<int64_t> Engine::RunJobsOnce() {
  REDRIVE_ASSIGN_OR_RETURN(auto jobs, control_.ListJobs(""));
  int64_t moved = 0;
  TimeMs now = clock_.Now();
  for (auto& job : jobs) {
    if (job.state != JobState::kRunning && job.state != JobState::kCancelling) continue;
    const JobState entry_state = job.state;
    auto r = StepJob(job, now);
    if (!r.ok()) {
      spdlog::error("redrive job {} failed: {}", job.id, r.status().ToString());
      json p = json::parse(job.progress_json, nullptr, false);
      if (!p.is_object()) p = json::object();
      p["error"] = r.status().ToString();
      job.progress_json = p.dump();
      job.state = JobState::kFailed;
      job.finished_at = job.updated_at = now;
      (void)control_.UpdateJob(job, entry_state);
      Audit(job.tenant, "system", "job.failed", json{{"job", job.id}, {"error", p["error"]}});
      continue;
    }
    moved += r.value();
  }
  return moved;
}

void Engine::JobRunnerLoop() {
  std::unique_lock<std::mutex> l(stop_mu_);
  while (!stopping_) {
    l.unlock();
    auto r = RunJobsOnce();
    if (!r.ok()) spdlog::error("job runner: {}", r.status().ToString());
    l.lock();
    if (r.ok() && r.value() > 0) continue;  // keep going while there is work
    clock_.WaitFor(stop_cv_, l, options_.job_tick);
  }
}

// ------------------------------------------------------------------ audit

Result<AuditQueryResult> Engine::QueryAudit(const std::string& tenant, const AuditQuery& q) {
  REDRIVE_RETURN_IF_ERROR(EnsureTenant(tenant));
  return ReadAudit(tenant, q);
}

Result<AuditQueryResult> Engine::ReadAudit(const std::string& tenant, const AuditQuery& q) {
  if (q.page_size < 1 || q.page_size > 1000) {
    return Status(ErrorCode::kInvalidQuery, "_pageSize must be between 1 and 1000");
  }
  std::unique_ptr<query::Expr> filter;
  if (!q.filter.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(filter, query::ParseFilter(q.filter));
  }
  int64_t after = 0, unused = 0;
  if (!q.cookie.empty() && !DecodeCookie(q.cookie, "a", &after, &unused)) return BadCookie();
  AuditQueryResult result;
  int64_t last_returned = after;
  for (;;) {
    REDRIVE_ASSIGN_OR_RETURN(auto rows, control_.ListAudit(tenant, after, 500));
    if (rows.empty()) break;
    for (const auto& r : rows) {
      after = r.seq;
      json doc = {{"id", std::to_string(r.seq)},
                  {"at", FormatTime(r.at)},
                  {"actor", r.actor},
                  {"action", r.action},
                  {"detail", json::parse(r.detail_json, nullptr, false)}};
      if (filter && !query::Evaluate(*filter, doc)) continue;
      if (static_cast<int>(result.items.size()) == q.page_size) {
        result.next_cookie = EncodeCookie("a", last_returned, 0);
        return result;
      }
      result.items.push_back(std::move(doc));
      last_returned = r.seq;
    }
  }
  return result;
}

}  // namespace redrive::engine
