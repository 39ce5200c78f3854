// RestApi::AddTicketRoutes: a tenant's notification settings, the digest, tickets and their
// answers, and the single-use answer links (the only routes here without a token: the link's
// secret is the authority).
#include <string>

#include "api/api.h"
#include "api/api_internal.h"
#include "common/text.h"

namespace redrive::api {
namespace {

using engine::Principal;
using http::Request;
using http::Response;

json TicketJson(const engine::TicketInfo& t) {
  json j = engine::TicketDocument(t);
  const std::string self = "/v1/tenants/" + t.record.tenant + "/tickets/" + t.record.id;
  // _queryFilter=ticket eq "<id>", percent-encoded (ticket ids are [0-9A-Za-z_]).
  j["_links"] = {
      {"self", self},
      {"answer", self + "/answer"},
      {"deadLetters", "/v1/tenants/" + t.record.tenant +
                          "/dead-letters?_queryFilter=ticket%20eq%20%22" + t.record.id + "%22"}};
  return j;
}

std::string Html(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A small self-contained page: no script, no external resource, a strict policy.
Response Page(int status, const std::string& title, const std::string& body) {
  Response r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body =
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>" +
      Html(title) +
      "</title><style>"
      "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;"
      "line-height:1.45}table{border-collapse:collapse}td,th{padding:.2rem .6rem;"
      "text-align:left;border-bottom:1px solid #8884}button{font-size:1rem;padding:.5rem 1rem;"
      "margin:.3rem .6rem .3rem 0}@media(prefers-color-scheme:dark){body{background:#111;"
      "color:#eee}}</style></head><body><h1>" +
      Html(title) + "</h1>" + body + "</body></html>";
  r.headers = {{"content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                "frame-ancestors 'none'"},
               {"x-frame-options", "DENY"},
               {"cache-control", "no-store"},
               {"referrer-policy", "no-referrer"}};
  return r;
}

Response ErrorPage(const Status& st) {
  const auto& info = GetErrorInfo(st.code());
  return Page(info.http_status, "This link cannot be used",
              "<p>" + Html(st.message()) + "</p><p><code>" + Html(std::string(info.wire_code)) +
                  "</code></p>");
}

std::string LinkPage(const engine::TicketInfo& t) {
  const json& s = t.data.value("summary", json::object());
  std::string body = "<p><strong>" + std::to_string(t.record.count) +
                     "</strong> dead letter(s) of tenant <strong>" + Html(t.record.tenant) +
                     "</strong> are waiting for an answer. Answer by <strong>" +
                     Html(FormatTime(t.record.expires_at)) + "</strong>; unanswered, they are " +
                     (t.data.value("onExpiry", "remove") == "keep" ? "kept" : "removed") +
                     ".</p><table><tr><th>Count</th><th>Origin</th><th>Reason</th>"
                     "<th>Diagnosis</th></tr>";
  for (const auto& g : s.value("byGroup", json::array())) {
    std::string diagnosis;
    if (g.contains("diagnosis") && g["diagnosis"].is_object()) {
      diagnosis = g["diagnosis"].value("kind", "") + ": " + g["diagnosis"].value("summary", "");
    }
    body += "<tr><td>" + std::to_string(g.value("count", int64_t{0})) + "</td><td>" +
            Html(g.value("origin", "")) + "</td><td>" + Html(g.value("reason", "")) + "</td><td>" +
            Html(diagnosis) + "</td></tr>";
  }
  body +=
      "</table><form method=\"post\"><button name=\"action\" value=\"retry\">Retry: send "
      "them back to their queues</button><button name=\"action\" value=\"discard\">"
      "Discard: delete them</button></form><p>This link works once.</p>";
  return body;
}

// "action=retry" from the link page's form, or {"action": "retry"}.
std::string ActionOf(const Request& req) {
  if (req.Header("content-type").find("application/json") != std::string_view::npos) {
    json j = json::parse(req.body, nullptr, false);
    return j.is_object() && j.contains("action") && j["action"].is_string()
               ? j["action"].get<std::string>()
               : "";
  }
  std::vector<std::pair<std::string, std::string>> form;
  if (!http::ParseQuery(req.body, &form)) return "";
  for (const auto& [k, v] : form) {
    if (k == "action") return v;
  }
  return "";
}

}  // namespace

void RestApi::AddTicketRoutes() {
  using namespace engine;  // NOLINT: scope names
  const std::string kTenant = "/v1/tenants/{tenant}";
  Add("GET", kTenant + "/notifications", "notifications_get", {kScopeAdmin},
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto s, engine_.notifications().GetSettings(p.Get("tenant")));
        return Json(200, NotificationSettingsToJson(s, false));
      });
  Add("PUT", kTenant + "/notifications", "notifications_set", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_ASSIGN_OR_RETURN(auto s, NotificationSettingsFromJson(body));
        REDRIVE_ASSIGN_OR_RETURN(s, engine_.notifications().SetSettings(who, p.Get("tenant"), s));
        // The secret of a webhook channel's new subscription is shown here, once.
        return Json(200, NotificationSettingsToJson(s, true));
      });
  Add("POST", kTenant + "/notifications/test", "notifications_test", {kScopeAdmin},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto sent, engine_.notifications().SendTest(who, p.Get("tenant")));
        return Json(200, {{"sent", sent}});
      });
  // The digest now, whatever its schedule: opens a ticket when a dead letter needs one.
  Add("POST", kTenant + "/digest", "digest_run", {kScopeAdmin, kScopeDlqWrite},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto t, engine_.notifications().RunDigest(who, p.Get("tenant")));
        if (!t) return Json(200, {{"ticket", nullptr}});
        return Json(201, {{"ticket", TicketJson(*t)},
                          {"answerLink", engine_.notifications().LinkUrl(t->link_secret)}});
      });
  Add("GET", kTenant + "/tickets", "ticket_list", {kScopeAdmin, kScopeDlqRead},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        TicketQuery q;
        q.filter = std::string(req.Query("_queryFilter"));
        q.cookie = std::string(req.Query("_pagedResultsCookie"));
        REDRIVE_ASSIGN_OR_RETURN(q.page_size, IntQuery(req, "_pageSize", 50));
        REDRIVE_ASSIGN_OR_RETURN(auto r, engine_.notifications().QueryTickets(p.Get("tenant"), q));
        json items = json::array();
        for (const auto& t : r.items) items.push_back(TicketJson(t));
        return Json(200, {{"result", items},
                          {"resultCount", items.size()},
                          {"totalPagedResults", r.total},
                          {"pagedResultsCookie",
                           r.next_cookie.empty() ? json(nullptr) : json(r.next_cookie)}});
      },
      {"_queryFilter", "_pageSize", "_pagedResultsCookie"});
  Add("GET", kTenant + "/tickets/{ticket}", "ticket_get", {kScopeAdmin, kScopeDlqRead},
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(
            auto t, engine_.notifications().GetTicket(p.Get("tenant"), p.Get("ticket")));
        return Json(200, TicketJson(t));
      });
  Add("POST", kTenant + "/tickets/{ticket}/answer", "ticket_answer", {kScopeAdmin, kScopeDlqWrite},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"action"}));
        REDRIVE_ASSIGN_OR_RETURN(std::string action, RequiredString(body, "action"));
        REDRIVE_ASSIGN_OR_RETURN(
            auto t, engine_.notifications().Answer(who, p.Get("tenant"), p.Get("ticket"), action));
        return Json(200, TicketJson(t));
      });
  // The link of a notification: a page that shows the ticket and answers it once.
  Add("GET", "/v1/ticket-links/{secret}", "ticket_link_page", {},
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        auto t = engine_.notifications().TicketOfLink(p.Get("secret"));
        if (!t.ok()) return ErrorPage(t.status());
        return Page(200, "redrive: ticket " + t->record.id, LinkPage(*t));
      });
  Add("POST", "/v1/ticket-links/{secret}", "ticket_link_answer", {},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        auto t = engine_.notifications().AnswerByLink(p.Get("secret"), ActionOf(req));
        if (!t.ok()) return ErrorPage(t.status());
        const json& a = t->data["answer"];
        std::string done =
            a.value("action", "") == "retry"
                ? "Redrive job " + a.value("job", "") + " is sending " +
                      std::to_string(a.value("toMove", int64_t{0})) +
                      " dead letter(s) back to their queues."
                : std::to_string(a.value("deleted", int64_t{0})) + " dead letter(s) were deleted.";
        return Page(200, "Answered: " + a.value("action", ""),
                    "<p>Ticket " + Html(t->record.id) + " is answered. " + Html(done) + "</p>");
      });
}

}  // namespace redrive::api
