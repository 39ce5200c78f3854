// Export jobs over HTTP against the real `redrive serve` binary: start, follow, list, cancel,
// download (whole, gzip, resumed with Range), the refusals; and the file checked line by line
// with jq (Debian's, not redrive's JSON code) against a dead-letter query of the same filter.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/harness.h"

namespace redrive::testing {
namespace {

std::string Gunzip(const std::string& data) {
  z_stream z{};
  inflateInit2(&z, 16 + MAX_WBITS);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[65536];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : "";
}

// Runs `command` with `input` on stdin (through a temporary file); its stdout.
std::string RunWithStdin(const std::string& command, const std::string& input, int* status) {
  std::string in_path = ::testing::TempDir() + "/jq-in-" + std::to_string(getpid());
  {
    std::ofstream f(in_path, std::ios::binary);
    f << input;
  }
  FILE* p = popen((command + " < " + in_path).c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n = 0;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *status = p ? pclose(p) : -1;
  std::remove(in_path.c_str());
  return out;
}

class ExportsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>();
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    op_ = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
    CreateTenant(*op_, "acme");
    app_ = std::make_unique<HttpClient>(server_->url(), CreateToken(*op_, "acme", "app"));
  }
  // `n` dead letters from `queue`, with attributes region=eu for even i, us for odd.
  void DeadLetter(const std::string& queue, int n) {
    ASSERT_EQ(
        app_->Post("/v1/tenants/acme/queues",
                   {{"name", queue}, {"attributes", {{"retryPolicy", {{"maxDeliveries", 1}}}}}})
            .status,
        201);
    json messages = json::array();
    for (int i = 0; i < n; ++i) {
      messages.push_back({{"body", "{\"order\":" + std::to_string(i) + ",\"note\":\"caf\\u00e9\"}"},
                          {"attributes", {{"region", i % 2 == 0 ? "eu" : "us"}}}});
    }
    ASSERT_EQ(app_->Post("/v1/tenants/acme/queues/" + queue + "/messages", {{"messages", messages}})
                  .status,
              201);
    auto got = app_->Post("/v1/tenants/acme/queues/" + queue + "/receive", {{"maxMessages", n}});
    json nacks = json::array();
    json received = got.Json();
    for (const auto& m : received["messages"]) {
      nacks.push_back({{"receipt", m["receipt"]}, {"error", "HTTP 503 from the CRM"}});
    }
    auto nacked = app_->Post("/v1/tenants/acme/queues/" + queue + "/nack", {{"nacks", nacks}});
    ASSERT_EQ(nacked.status, 200) << nacked.body;
  }
  json WaitDone(const std::string& id) {
    json e;
    for (int i = 0; i < 500; ++i) {
      e = app_->Get("/v1/tenants/acme/exports/" + id).Json();
      if (e["state"] != "processing") return e;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "export still processing: " << e.dump();
    return e;
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> op_, app_;
};

TEST_F(ExportsHttpTest, AnExportMatchesTheSameQueryLineByLineReadWithJq) {
  DeadLetter("orders", 30);
  DeadLetter("billing", 5);
  const std::string filter = "/attributes/region eq \"eu\" and /origin eq \"orders\"";
  auto started = app_->Post("/v1/tenants/acme/exports", {{"filter", filter}});
  ASSERT_EQ(started.status, 202) << started.body;
  std::string id = started.Json()["id"];
  EXPECT_EQ(started.Json()["_links"]["download"], "/v1/tenants/acme/exports/" + id + "/file");
  json done = WaitDone(id);
  ASSERT_EQ(done["state"], "completed") << done.dump();
  EXPECT_EQ(done["count"], 15);

  auto file = app_->Get("/v1/tenants/acme/exports/" + id + "/file");
  ASSERT_EQ(file.status, 200) << file.body;
  EXPECT_EQ(file.body.size(), done["bytes"].get<size_t>());
  EXPECT_FALSE(file.Header("etag").empty());
  EXPECT_EQ(file.Header("content-length"), std::to_string(file.body.size()));
  ASSERT_FALSE(file.body.empty());
  EXPECT_EQ(file.body.back(), '\n');

  // jq reads every line on its own (-c: one compact object out per line in).
  int status = 0;
  std::string ids = RunWithStdin("jq -r -c '.id'", file.body, &status);
  ASSERT_EQ(status, 0) << "jq could not read the export (is Debian's jq installed?)";
  EXPECT_EQ(std::count(ids.begin(), ids.end(), '\n'), 15);
  std::string lines = RunWithStdin("jq -c 'del(.formatVersion, .exportedAt)'", file.body, &status);
  ASSERT_EQ(status, 0);
  std::string versions = RunWithStdin("jq -r '.formatVersion'", file.body, &status);
  std::set<std::string> seen_versions;
  std::istringstream vs(versions);
  for (std::string v; std::getline(vs, v);) seen_versions.insert(v);
  EXPECT_EQ(seen_versions, std::set<std::string>{"1"});

  // The same filter as a dead-letter query: the same dead letters, field for field.
  auto query = app_->Get("/v1/tenants/acme/dead-letters?_pageSize=1000&_queryFilter=" +
                         std::string("%2Fattributes%2Fregion%20eq%20%22eu%22%20and%20%2Forigin%20"
                                     "eq%20%22orders%22"));
  ASSERT_EQ(query.status, 200) << query.body;
  std::map<std::string, json> by_id;
  json result = query.Json();
  for (const auto& d : result["result"]) by_id[d["id"]] = d;
  ASSERT_EQ(by_id.size(), 15u);
  std::istringstream in(lines);
  int count = 0;
  for (std::string line; std::getline(in, line); ++count) {
    json l = json::parse(line);
    ASSERT_TRUE(by_id.count(l["id"])) << line;
    json d = by_id[l["id"]];
    d.erase("exportedAt");
    l.erase("exportedAt");
    EXPECT_EQ(l, d) << "export: " << line << "\nquery: " << d.dump();
  }
  EXPECT_EQ(count, 15);
  // Stamped: the dead letters now carry exportedAt, the export's start.
  auto one = app_->Get("/v1/tenants/acme/dead-letters/" + by_id.begin()->first).Json();
  EXPECT_EQ(one["exportedAt"], done["createdAt"]);

  // gzip: the same bytes; and a broken download resumes with Range.
  auto gz = app_->Send("GET", "/v1/tenants/acme/exports/" + id + "/file", "", "",
                       {"Accept-Encoding: gzip"});
  ASSERT_EQ(gz.status, 200);
  EXPECT_EQ(gz.Header("content-encoding"), "gzip");
  EXPECT_EQ(Gunzip(gz.body), file.body);
  auto gz2 = app_->Get("/v1/tenants/acme/exports/" + id + "/file?gzip=true");
  EXPECT_EQ(Gunzip(gz2.body), file.body);
  auto tail =
      app_->Send("GET", "/v1/tenants/acme/exports/" + id + "/file", "", "", {"Range: bytes=100-"});
  ASSERT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body, file.body.substr(100));
  EXPECT_EQ(tail.Header("content-range"), "bytes 100-" + std::to_string(file.body.size() - 1) +
                                              "/" + std::to_string(file.body.size()));

  // Once: the next export of the same filter takes none; it is listed.
  auto next = app_->Post("/v1/tenants/acme/exports", {{"filter", filter}});
  ASSERT_EQ(next.status, 202);
  EXPECT_EQ(WaitDone(next.Json()["id"])["count"], 0);
  auto list = app_->Get("/v1/tenants/acme/exports").Json()["exports"];
  EXPECT_EQ(list.size(), 2u);
}

TEST_F(ExportsHttpTest, RefusalsHaveStableCodesAndChangeNothing) {
  DeadLetter("orders", 3);
  EXPECT_EQ(app_->Post("/v1/tenants/acme/exports", {{"filter", "/reason eq"}}).ErrorCode(),
            "invalid-query");
  EXPECT_EQ(app_->Post("/v1/tenants/acme/exports", {{"ids", {"x"}}}).ErrorCode(), "unknown-field");
  EXPECT_EQ(app_->Post("/v1/tenants/acme/exports", {{"subscription", "crm"}}).ErrorCode(),
            "invalid-argument");
  EXPECT_EQ(app_->Post("/v1/tenants/acme/exports",
                       {{"since", "2026-12-07T10:00:00Z"}, {"until", "2026-12-07T09:00:00Z"}})
                .ErrorCode(),
            "invalid-argument");
  EXPECT_EQ(app_->Get("/v1/tenants/acme/exports/exp_nope").ErrorCode(), "export-not-found");
  EXPECT_EQ(app_->Get("/v1/tenants/acme/exports/exp_nope/file").ErrorCode(), "export-not-found");
  EXPECT_TRUE(app_->Get("/v1/tenants/acme/exports").Json()["exports"].empty());
  // A token without dlq:export may not start one.
  HttpClient reader(server_->url(), CreateToken(*op_, "acme", "reader", {"dlq:read"}));
  EXPECT_EQ(reader.Post("/v1/tenants/acme/exports", json::object()).ErrorCode(), "forbidden");
  // Nothing was stamped by any of these: one export takes all three.
  auto e = app_->Post("/v1/tenants/acme/exports", json::object());
  ASSERT_EQ(e.status, 202);
  EXPECT_EQ(WaitDone(e.Json()["id"])["count"], 3);
  // A cancelled one has no file.
  auto c = app_->Post("/v1/tenants/acme/exports/" + e.Json()["id"].get<std::string>() + "/cancel",
                      json::object());
  EXPECT_EQ(c.ErrorCode(), "job-state-conflict");
}

}  // namespace
}  // namespace redrive::testing
