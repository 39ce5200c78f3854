// FuzzServer: what the request_fuzz and json_fuzz targets run their inputs against, the real
// request path behind the socket (RestApi over an Engine over an SQLite store).
//
// The state is prepared once per process through the API itself: an operator token, a tenant
// "t" with queues "q" and "r", a consumer token, messages ready and leased, a dead letter with
// its failure group, and a finished redrive job. Inputs run on a copy of that database file (in
// /dev/shm when there is one), with a manual clock and seeded randomness. A copy is reused by
// the next input only while inputs leave it as prepared (nothing written to the database, or
// only refused requests and the state checked to read back the same), for at most kMaxReuse
// inputs; after a request that changed it the next input gets a fresh copy. So an input sees
// the prepared state whatever ran before it, and a crash replays from its file.
//
// Inputs name the prepared ids with placeholders that Substitute() replaces: $OP (the operator
// token's secret), $DL (the dead letter's id), $GRP (its failure group), $JOB, $TOK (the
// consumer token's id), $RCPT (the leased message's receipt), $SRCPT (the subscription sb's
// leased copy's receipt) and $TMSG (the id of the topic tp's message).
//
// Checks shared by the targets (each aborts with a message, which libFuzzer reports):
// CheckResponse: no 5xx, an error body is the documented JSON shape with a catalogue code whose
// HTTP status is the response's, a success body is JSON; End: after requests that were all
// refused, the state is as prepared ("bad input changes nothing"): the database files are
// untouched, or if something was written, every read route answers exactly as before.
//
// Not thread-safe: libFuzzer calls one input at a time.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api/api.h"
#include "common/clock.h"
#include "engine/engine.h"
#include "http/http.h"
#include "store/store.h"

namespace redrive::server {

class FuzzServer {
 public:
  static constexpr int kMaxReuse = 256;

  // A copy of the prepared state with its engine and API.
  struct Session {
    std::unique_ptr<store::Store> store;
    ManualClock clock;
    SeededRandom random{7};
    std::unique_ptr<engine::Engine> engine;
    std::unique_ptr<api::RestApi> api;
  };

  // The process's instance, prepared on first use; its files are removed at exit.
  static FuzzServer& Get();

  // The session for one input (see the file comment). REQUIRES: End() after each Begin().
  Session& Begin();
  // Ends the input. `all_refused`: every request it made was refused (4xx); then the state must
  // be unchanged, or this aborts with `why` in the message.
  // What the engine and the API keep in memory (token and queue caches, the counters and
  // latency histograms of /metrics) lives as long as the session: only /metrics shows it.
  void End(bool all_refused, const std::string& why);

  // Replaces every placeholder ($OP, $DL, ...) in `text`.
  std::string Substitute(std::string_view text) const;
  // Aborts unless `response` to `request` is well formed (see the file comment).
  static void CheckResponse(const http::Request& request, const http::Response& response);
  // A request as the server hands it to the API: operator token, JSON content type.
  http::Request MakeRequest(std::string method, std::string target, std::string body) const;

 private:
  FuzzServer();
  void Prepare();
  std::unique_ptr<Session> NewSession();
  std::string Digest(api::RestApi& api);
  // Size and modification time of the database and its WAL: equal stamps, nothing written.
  std::string FileStamp() const;

  std::string dir_;
  std::string template_path_;
  std::string work_path_;
  std::string operator_token_;
  std::vector<std::pair<std::string, std::string>> placeholders_;
  std::string initial_digest_;
  std::unique_ptr<Session> session_;
  std::string session_stamp_;  // FileStamp() when the session's current input began
  int session_uses_ = 0;
};

}  // namespace redrive::server
