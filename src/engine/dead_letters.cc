// Dead letters: query, failure groups, statistics, delete, purge, restore and reroute
// (dead_letters.h). Redrive jobs are in redrive_jobs.cc.
#include "engine/dead_letters.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "common/text.h"
#include "engine/audit_log.h"
#include "engine/dead_letter_doc.h"
#include "engine/delivery_outcomes.h"
#include "engine/failure_group.h"
#include "engine/internal/cookie.h"
#include "engine/internal/selector.h"
#include "engine/redaction.h"
#include "engine/tenancy.h"
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
  if (!t.ticket.empty()) j["ticket"] = t.ticket;
  if (!t.dlq.empty()) j["deadLetterQueue"] = t.dlq;
  if (t.since) j["since"] = FormatTime(*t.since);
  if (t.until) j["until"] = FormatTime(*t.until);
  return j;
}

}  // namespace

bool SeesUnredacted(const Principal& viewer) {
  return !viewer.tenant.empty() && viewer.HasScope(kScopeDlqReadUnredacted);
}

Result<std::shared_ptr<const DeadLetters::Selector>> DeadLetters::Compile(const std::string& tenant,
                                                                          const DeadLetterTarget& t,
                                                                          bool redacted) {
  auto sel = std::make_shared<Selector>();
  sel->tenant = tenant;
  sel->redacted = redacted;
  sel->scan.tenant = tenant;
  if (!t.ids.empty()) {
    if (t.ids.size() > kMaxIds) {
      return Status(ErrorCode::kBatchTooLarge,
                    "at most " + std::to_string(kMaxIds) + " ids per call; use a filter");
    }
    if (!t.filter.empty() || !t.group.empty() || !t.ticket.empty()) {
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
  sel->scan.ticket = t.ticket;
  if (t.since) sel->scan.since = std::max(sel->scan.since, *t.since);
  if (t.until) sel->scan.until = sel->scan.until ? std::min(sel->scan.until, *t.until) : *t.until;
  return std::shared_ptr<const Selector>(sel);
}

Result<std::vector<DeadLetterRecord>> DeadLetters::NextMatches(
    const Selector& sel, const store::DeadLetterSnapshot& snapshot, int limit, int64_t* cursor,
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
        if (sel.redacted) REDRIVE_RETURN_IF_ERROR(redactor_.RedactDeadLetter(&*d));
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
      if (sel.redacted) REDRIVE_RETURN_IF_ERROR(redactor_.RedactDeadLetter(&d));
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

Result<DeadLetterQueryResult> DeadLetters::QueryDeadLetters(const std::string& tenant,
                                                            const DeadLetterQuery& q) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
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
  REDRIVE_ASSIGN_OR_RETURN(auto sel_const, Compile(tenant, target, !q.unredacted));
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
GroupFacts FactsOf(const store::FailureGroupRow& g) {
  GroupFacts f;
  f.origin = g.origin;
  f.reason = g.reason;
  f.cause = std::string(CauseOfSignature(g.signature, g.origin, g.reason));
  f.first_seen = g.first_seen;
  f.last_seen = g.last_seen;
  return f;
}

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

Result<std::vector<FailureGroup>> DeadLetters::ListFailureGroups(const std::string& tenant,
                                                                 const std::string& dlq) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(CheckDeadLetterQueue(control_, tenant, dlq));
  REDRIVE_ASSIGN_OR_RETURN(auto rows, control_.ListFailureGroups(tenant, dlq));
  for (auto& row : rows) REDRIVE_RETURN_IF_ERROR(ScrubSignature(tenant, &row));
  // Each origin's counts are read once, however many of its groups there are, from where the
  // earliest of them needs them.
  TimeMs kept_from = clock_.Now() - outcomes_.retention();
  std::map<std::string, TimeMs> since;
  for (const auto& row : rows) {
    TimeMs from = std::max(kept_from, row.first_seen - kDiagnosisLookback);
    auto [it, fresh] = since.emplace(row.origin, from);
    if (!fresh) it->second = std::min(it->second, from);
  }
  std::map<std::string, std::vector<MinuteOutcomes>> series;
  for (const auto& [origin, from] : since) {
    REDRIVE_ASSIGN_OR_RETURN(series[origin], outcomes_.Series(tenant, origin, from));
  }
  std::vector<FailureGroup> out;
  out.reserve(rows.size());
  for (auto& row : rows) {
    FailureGroup g;
    g.row = std::move(row);
    g.diagnosis = DiagnoseFailureGroup(FactsOf(g.row), series[g.row.origin]);
    out.push_back(std::move(g));
  }
  return out;
}

Result<std::optional<Diagnosis>> DeadLetters::Diagnose(const std::string& tenant,
                                                       const store::FailureGroupRow& group) {
  TimeMs from =
      std::max(clock_.Now() - outcomes_.retention(), group.first_seen - kDiagnosisLookback);
  REDRIVE_ASSIGN_OR_RETURN(auto s, outcomes_.Series(tenant, group.origin, from));
  return DiagnoseFailureGroup(FactsOf(group), s);
}

Result<store::DeadLetterStats> DeadLetters::GetDeadLetterStats(const std::string& tenant,
                                                               const std::string& dlq) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(CheckDeadLetterQueue(control_, tenant, dlq));
  return control_.GetDeadLetterStats(tenant, dlq, "");
}

Result<ActionResult> DeadLetters::DeleteDeadLetters(const Principal& actor,
                                                    const std::string& tenant,
                                                    const DeadLetterTarget& target) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  if (target.ids.empty() && target.filter.empty() && target.group.empty() &&
      target.ticket.empty()) {
    return Status(ErrorCode::kInvalidArgument,
                  "say which dead letters: ids, a filter or a group (purge empties a queue)");
  }
  REDRIVE_ASSIGN_OR_RETURN(auto sel, Compile(tenant, target, !SeesUnredacted(actor)));
  REDRIVE_ASSIGN_OR_RETURN(auto snapshot, control_.SnapshotDeadLetters(tenant));
  ActionResult result;
  int64_t cursor = 0;
  bool exhausted = false;
  auto audit = [&](const Status& error) {
    json detail = {{"target", TargetJson(target)}, {"result", ActionJson(result)}};
    if (!error.ok()) detail["error"] = error.ToString();
    audit_.Write(tenant, actor.token_id, "dead-letter.delete", std::move(detail));
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

Result<ActionResult> DeadLetters::PurgeDeadLetterQueue(const Principal& actor,
                                                       const std::string& tenant,
                                                       const std::string& dlq,
                                                       const std::string& confirm) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
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
  audit_.Write(tenant, actor.token_id, "dead-letter.purge", std::move(detail));
  spdlog::warn("purged {} dead letters from {}/{} (token {})", n, tenant, dlq, actor.token_id);
  return result;
}

Status DeadLetters::MoveBatch(const std::string& tenant, const std::vector<DeadLetterRecord>& batch,
                              const std::string& destination, const std::string& by,
                              bool allow_redacted, ActionResult* result) {
  TimeMs now = clock_.Now();
  std::vector<store::RedriveItem> items;
  std::vector<const DeadLetterRecord*> sources;
  for (const auto& d : batch) {
    ++result->matched;
    if (d.seq == 0) {
      Skip(result, d.id, "not-found");
      continue;
    }
    if (d.redacted && !allow_redacted) {
      Skip(result, d.id, "redacted", "stored redacted; allowRedacted moves it as it is");
      continue;
    }
    const std::string& dest = destination.empty() ? d.origin : destination;
    auto q = queues_.Lookup(tenant, dest);
    if (!q.ok()) {
      if (q.status().code() != ErrorCode::kQueueNotFound) return q.status();
      Skip(result, d.id, "origin-missing", "queue '" + dest + "' no longer exists");
      continue;
    }
    const CachedQueue& cq = *q.value();
    if (cq.record.kind != store::QueueKind::kStandard) {
      Skip(result, d.id, "origin-missing",
           cq.record.kind == store::QueueKind::kTopic
               ? "'" + dest +
                     "' is a topic (the message matched no subscription); reroute it "
                     "to a subscription's queue"
               : "'" + dest + "' is a dead-letter queue");
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
      coordinator_.SignalReady(items[i].dest_queue_id);
    } else {
      Skip(result, sources[i]->id, OutcomeName(outcomes[i]), "destination " + items[i].dest_name);
    }
  }
  return Status::Ok();
}

Result<ActionResult> DeadLetters::MoveDeadLetters(const Principal& actor, const std::string& tenant,
                                                  const DeadLetterTarget& target,
                                                  const std::string& destination,
                                                  const char* action) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  if (target.ids.empty() && target.filter.empty() && target.group.empty() &&
      target.ticket.empty()) {
    return Status(ErrorCode::kInvalidArgument, "say which dead letters: ids, a filter or a group");
  }
  if (!destination.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(auto q, queues_.Lookup(tenant, destination));
    if (q->record.kind == store::QueueKind::kTopic) {
      return Status(ErrorCode::kNotAQueue, "'" + destination +
                                               "' is a topic; reroute to one of its "
                                               "subscriptions' queues (<topic>:<subscription>)");
    }
    if (q->record.kind != store::QueueKind::kStandard) {
      return Status(ErrorCode::kDeadLetterQueueReadOnly,
                    "'" + destination + "' is a dead-letter queue; reroute to a standard queue");
    }
  }
  REDRIVE_ASSIGN_OR_RETURN(auto sel, Compile(tenant, target, !SeesUnredacted(actor)));
  REDRIVE_ASSIGN_OR_RETURN(auto snapshot, control_.SnapshotDeadLetters(tenant));
  if (!target.allow_redacted) REDRIVE_RETURN_IF_ERROR(RefuseRedacted(*sel, snapshot));
  ActionResult result;
  int64_t cursor = 0;
  bool exhausted = false;
  const std::string by = "request:" + actor.token_id;
  auto audit = [&](const Status& error) {
    json detail = {{"target", TargetJson(target)}, {"result", ActionJson(result)}};
    if (!destination.empty()) detail["destination"] = destination;
    if (target.allow_redacted) detail["allowRedacted"] = true;
    if (!error.ok()) detail["error"] = error.ToString();
    audit_.Write(tenant, actor.token_id, action, std::move(detail));
  };
  while (!exhausted) {
    auto next = NextMatches(*sel, snapshot, options_.redrive_chunk, &cursor, &exhausted);
    Status st =
        next.ok() ? MoveBatch(tenant, next.value(), destination, by, target.allow_redacted, &result)
                  : next.status();
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

Result<ActionResult> DeadLetters::RestoreDeadLetters(const Principal& actor,
                                                     const std::string& tenant,
                                                     const DeadLetterTarget& target) {
  return MoveDeadLetters(actor, tenant, target, "", "dead-letter.restore");
}

Result<ActionResult> DeadLetters::RerouteDeadLetters(const Principal& actor,
                                                     const std::string& tenant,
                                                     const DeadLetterTarget& target,
                                                     const std::string& destination) {
  if (destination.empty()) {
    return Status(ErrorCode::kMissingField, "a reroute needs a destination queue");
  }
  return MoveDeadLetters(actor, tenant, target, destination, "dead-letter.reroute");
}

DeadLetters::DeadLetters(store::ControlStore& control, Clock& clock, Random& random,
                         const EngineOptions& options, Queues& queues, Tenancy& tenancy,
                         Coordinator& coordinator, AuditLog& audit, DeliveryOutcomes& outcomes,
                         Redactor& redactor)
    : control_(control),
      clock_(clock),
      random_(random),
      options_(options),
      queues_(queues),
      tenancy_(tenancy),
      coordinator_(coordinator),
      audit_(audit),
      outcomes_(outcomes),
      redactor_(redactor) {}

void DeadLetters::SetJobWaker(std::function<void()> wake) { wake_runner_ = std::move(wake); }

void DeadLetters::WakeRunner() {
  if (wake_runner_) wake_runner_();
}

Result<store::DeadLetterRecord> DeadLetters::GetDeadLetter(const std::string& tenant,
                                                           const std::string& id) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto d, control_.GetDeadLetter(tenant, id));
  if (!d) return Status(ErrorCode::kDeadLetterNotFound, "dead letter '" + id + "' not found");
  return std::move(*d);
}

Result<store::DeadLetterRecord> DeadLetters::GetDeadLetter(const Principal& viewer,
                                                           const std::string& tenant,
                                                           const std::string& id) {
  REDRIVE_ASSIGN_OR_RETURN(auto d, GetDeadLetter(tenant, id));
  if (!SeesUnredacted(viewer)) REDRIVE_RETURN_IF_ERROR(redactor_.RedactDeadLetter(&d));
  return d;
}

Result<json> DeadLetters::RedactedDocument(const store::DeadLetterRecord& d) {
  store::DeadLetterRecord copy = d;
  REDRIVE_RETURN_IF_ERROR(redactor_.RedactDeadLetter(&copy));
  return DeadLetterDocument(copy);
}

Status DeadLetters::ScrubSignature(const std::string& tenant, store::FailureGroupRow* group) {
  if (group->sample_ids.empty() || !redactor_.HasRules(tenant, group->origin)) {
    return Status::Ok();
  }
  // The dead letters of a group share its signature: one of them tells which values it quotes.
  REDRIVE_ASSIGN_OR_RETURN(auto d, control_.GetDeadLetter(tenant, group->sample_ids[0]));
  if (!d || d->signature != group->signature) return Status::Ok();
  REDRIVE_RETURN_IF_ERROR(redactor_.RedactDeadLetter(&*d));
  group->signature = std::move(d->signature);
  return Status::Ok();
}

Status DeadLetters::RefuseRedacted(const Selector& selector,
                                   const store::DeadLetterSnapshot& snapshot) {
  auto refuse = [](const std::string& id) {
    return Status(ErrorCode::kDeadLetterRedacted,
                  "dead letter '" + id +
                      "' was stored redacted (its queue's redaction.storeRedacted): it would be "
                      "delivered with the redacted values; say \"allowRedacted\": true to move it "
                      "as it is");
  };
  Selector only = selector;
  if (only.ids.empty()) {
    // Most tenants have none: a count over the indexed scope says so without evaluating.
    store::DeadLetterScan count = only.scan;
    count.snapshot = snapshot;
    count.redacted_only = true;
    REDRIVE_ASSIGN_OR_RETURN(int64_t n, control_.CountDeadLetters(count));
    if (n == 0) return Status::Ok();
    only.scan.redacted_only = true;
  }
  int64_t cursor = 0;
  bool exhausted = false;
  while (!exhausted) {
    REDRIVE_ASSIGN_OR_RETURN(auto batch, NextMatches(only, snapshot, 1000, &cursor, &exhausted));
    for (const auto& d : batch) {
      if (d.redacted) return refuse(d.id);
    }
  }
  return Status::Ok();
}

Result<AuditQueryResult> DeadLetters::QueryAudit(const std::string& tenant, const AuditQuery& q) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  return audit_.Read(tenant, q);
}

Result<int64_t> DeadLetters::SweepOnce() {
  TimeMs now = clock_.Now();
  REDRIVE_ASSIGN_OR_RETURN(int64_t removed,
                           control_.DeleteRetainedDeadLetters(now, options_.sweep_batch));
  REDRIVE_ASSIGN_OR_RETURN(int64_t jobs, control_.DeleteFinishedJobs(now - options_.job_history));
  (void)jobs;
  REDRIVE_RETURN_IF_ERROR(SweepExports(now));
  return removed;
}

}  // namespace redrive::engine
