#include "http/file_response.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace redrive::http {
namespace {

// ---- Range (RFC 9110 §14.1.2)

TEST(ParseRangeTest, FirstToLastIsInclusive) {
  ByteRange r;
  ASSERT_EQ(ParseRange("bytes=0-499", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.length, 500u);
  ASSERT_EQ(ParseRange("bytes=500-999", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.first, 500u);
  EXPECT_EQ(r.length, 500u);
  ASSERT_EQ(ParseRange("bytes=7-7", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.length, 1u);
}

TEST(ParseRangeTest, OpenEndedRunsToTheEnd) {
  ByteRange r;
  ASSERT_EQ(ParseRange("bytes=900-", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.first, 900u);
  EXPECT_EQ(r.length, 100u);
  ASSERT_EQ(ParseRange("bytes=999-", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.length, 1u);
}

TEST(ParseRangeTest, LastBeyondTheEndIsCutAtTheEnd) {
  ByteRange r;
  ASSERT_EQ(ParseRange("bytes=990-5000", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.first, 990u);
  EXPECT_EQ(r.length, 10u);
  ASSERT_EQ(ParseRange("bytes=0-99999999999999999999999", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.length, 1000u);
}

TEST(ParseRangeTest, SuffixIsTheLastBytesOrTheWholeFile) {
  ByteRange r;
  ASSERT_EQ(ParseRange("bytes=-100", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.first, 900u);
  EXPECT_EQ(r.length, 100u);
  ASSERT_EQ(ParseRange("bytes=-5000", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.length, 1000u);
}

TEST(ParseRangeTest, UnitIsCaseInsensitiveAndListWhitespaceIsAllowed) {
  ByteRange r;
  ASSERT_EQ(ParseRange("  Bytes= 10-19 ", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.first, 10u);
  EXPECT_EQ(r.length, 10u);
  // Empty list elements do not count (RFC 9110 §5.6.1).
  ASSERT_EQ(ParseRange("bytes=, 10-19 ,", 1000, &r), RangeOutcome::kPartial);
  EXPECT_EQ(r.first, 10u);
}

TEST(ParseRangeTest, NothingOfTheFileIsUnsatisfiable) {
  ByteRange r;
  EXPECT_EQ(ParseRange("bytes=1000-", 1000, &r), RangeOutcome::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=1000-2000", 1000, &r), RangeOutcome::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=99999999999999999999999-", 1000, &r), RangeOutcome::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=-0", 1000, &r), RangeOutcome::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=0-", 0, &r), RangeOutcome::kUnsatisfiable);
}

TEST(ParseRangeTest, InvalidOrMultipleRangesAreIgnored) {
  ByteRange r;
  for (const char* header : {"", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=5-1",
                             "bytes=1-2-3", "bytes=+1-2", "bytes=1 -2", "items=0-10", "bytes0-10",
                             "bytes=0-10,20-30", "bytes=0-10, -5", "bytes=0x10-"}) {
    EXPECT_EQ(ParseRange(header, 1000, &r), RangeOutcome::kWhole) << header;
  }
  // A suffix of an empty file selects nothing, but is not an error: the whole (empty) file.
  EXPECT_EQ(ParseRange("bytes=-10", 0, &r), RangeOutcome::kWhole);
}

// ---- validators

TEST(EntityTagTest, IfNoneMatchComparesWeakly) {
  EXPECT_TRUE(IfNoneMatchMatches("\"v1\"", "v1"));
  EXPECT_TRUE(IfNoneMatchMatches("W/\"v1\"", "v1"));
  EXPECT_TRUE(IfNoneMatchMatches("\"a\", W/\"b\" ,\"v1\"", "v1"));
  EXPECT_TRUE(IfNoneMatchMatches(" * ", "v1"));
  EXPECT_FALSE(IfNoneMatchMatches("\"v2\"", "v1"));
  EXPECT_FALSE(IfNoneMatchMatches("\"v1", "v1"));
  EXPECT_FALSE(IfNoneMatchMatches("v1", "v1"));
  EXPECT_FALSE(IfNoneMatchMatches("\"\"", "v1"));
}

TEST(EntityTagTest, IfRangeComparesStronglyAndNeverMatchesADate) {
  EXPECT_TRUE(IfRangeMatches("\"v1\"", "v1"));
  EXPECT_TRUE(IfRangeMatches(" \"v1\" ", "v1"));
  EXPECT_FALSE(IfRangeMatches("W/\"v1\"", "v1"));
  EXPECT_FALSE(IfRangeMatches("\"v2\"", "v1"));
  EXPECT_FALSE(IfRangeMatches("\"v1\", \"v2\"", "v1"));
  EXPECT_FALSE(IfRangeMatches("Sun, 06 Nov 1994 08:49:37 GMT", "v1"));
}

TEST(EntityTagTest, DefaultTagChangesWithTheFile) {
  ReadOnlyFile::Info a{100, 7, 1700000000, 5};
  ReadOnlyFile::Info b = a;
  b.mtime_nsec = 6;
  ReadOnlyFile::Info c = a;
  c.size = 101;
  ReadOnlyFile::Info d = a;
  d.inode = 8;
  EXPECT_NE(DefaultEntityTag(a), DefaultEntityTag(b));
  EXPECT_NE(DefaultEntityTag(a), DefaultEntityTag(c));
  EXPECT_NE(DefaultEntityTag(a), DefaultEntityTag(d));
  EXPECT_EQ(DefaultEntityTag(a), DefaultEntityTag(a));
  EXPECT_EQ(DefaultEntityTag(a).find('"'), std::string::npos);
}

TEST(HttpDateTest, IsAnImfFixdate) {
  EXPECT_EQ(HttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(HttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
}

// ---- FileResponse's answers, as values (server_file_test.cc sends them over sockets)

class FileResponseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/redrive-file-XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    path_ = dir_ + "/data.ndjson";
    std::ofstream(path_, std::ios::binary) << content_;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static Request Get(std::vector<std::pair<std::string, std::string>> headers = {}) {
    Request req;
    req.method = "GET";
    req.path = req.target = "/file";
    req.headers = std::move(headers);
    return req;
  }
  static std::string HeaderOf(const Response& r, std::string_view name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }
  static std::string CodeOf(const Response& r) {
    return nlohmann::json::parse(r.body)["error"]["code"];
  }

  std::string dir_;
  std::string path_;
  const std::string content_ = "0123456789abcdefghijklmnopqrstuvwxyz\n";  // 37 bytes
};

TEST_F(FileResponseTest, WholeFileCarriesValidatorsAndTheCallersHeaders) {
  Response r = FileResponse(Get(), path_, "application/gzip", "v1", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/gzip");
  ASSERT_TRUE(r.file.has_value());
  EXPECT_EQ(r.file->offset, 0u);
  EXPECT_EQ(r.file->length, content_.size());
  EXPECT_EQ(HeaderOf(r, "ETag"), "\"v1\"");
  EXPECT_EQ(HeaderOf(r, "Accept-Ranges"), "bytes");
  EXPECT_EQ(HeaderOf(r, "Content-Encoding"), "gzip");
  EXPECT_EQ(HeaderOf(r, "Content-Range"), "");
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(HeaderOf(r, "Last-Modified"), HttpDate(st.st_mtim.tv_sec));
  EXPECT_TRUE(r.body.empty());
}

TEST_F(FileResponseTest, RangeIsPartialContentWithContentRange) {
  Response r = FileResponse(Get({{"range", "bytes=10-19"}}), path_, "text/plain", "v1",
                            {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(r.status, 206);
  ASSERT_TRUE(r.file.has_value());
  EXPECT_EQ(r.file->offset, 10u);
  EXPECT_EQ(r.file->length, 10u);
  EXPECT_EQ(HeaderOf(r, "Content-Range"), "bytes 10-19/37");
  EXPECT_EQ(HeaderOf(r, "ETag"), "\"v1\"");
  EXPECT_EQ(HeaderOf(r, "Content-Encoding"), "gzip");
}

TEST_F(FileResponseTest, UnsatisfiableRangeIs416FromTheCatalogueWithTheSize) {
  Response r = FileResponse(Get({{"range", "bytes=37-"}}), path_, "text/plain", "v1");
  EXPECT_EQ(r.status, 416);
  EXPECT_FALSE(r.file.has_value());
  EXPECT_EQ(CodeOf(r), "range-not-satisfiable");
  EXPECT_EQ(HeaderOf(r, "Content-Range"), "bytes */37");
}

TEST_F(FileResponseTest, IfNoneMatchIs304WithoutBodyOrFile) {
  Response r = FileResponse(Get({{"if-none-match", "\"v1\""}, {"range", "bytes=0-1"}}), path_,
                            "text/plain", "v1", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(r.status, 304);
  EXPECT_FALSE(r.file.has_value());
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(HeaderOf(r, "ETag"), "\"v1\"");
  EXPECT_EQ(HeaderOf(r, "Content-Encoding"), "");
}

TEST_F(FileResponseTest, IfRangeDecidesWhetherTheRangeApplies) {
  Response match =
      FileResponse(Get({{"range", "bytes=5-"}, {"if-range", "\"v1\""}}), path_, "text/plain", "v1");
  EXPECT_EQ(match.status, 206);
  EXPECT_EQ(match.file->offset, 5u);
  Response stale =
      FileResponse(Get({{"range", "bytes=5-"}, {"if-range", "\"v0\""}}), path_, "text/plain", "v1");
  EXPECT_EQ(stale.status, 200);
  EXPECT_EQ(stale.file->offset, 0u);
  EXPECT_EQ(stale.file->length, content_.size());
  // Even an unsatisfiable range is ignored when If-Range does not match: the new file is sent.
  Response replaced = FileResponse(Get({{"range", "bytes=500-"}, {"if-range", "\"v0\""}}), path_,
                                   "text/plain", "v1");
  EXPECT_EQ(replaced.status, 200);
}

TEST_F(FileResponseTest, RangeAppliesToGetOnly) {
  Request req = Get({{"range", "bytes=5-"}, {"if-none-match", "*"}});
  req.method = "POST";
  Response r = FileResponse(req, path_, "text/plain", "v1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.file->length, content_.size());
}

TEST_F(FileResponseTest, EmptyTagIsDerivedFromTheFileAndBadCharactersAreReplaced) {
  auto file = ReadOnlyFile::Open(path_);
  ASSERT_TRUE(file.ok());
  std::string derived = DefaultEntityTag(file.value()->info());
  Response r = FileResponse(Get(), file.value(), "text/plain");
  EXPECT_EQ(HeaderOf(r, "ETag"), "\"" + derived + "\"");
  Response bad = FileResponse(Get(), path_, "text/plain", "a \"b\"\r\n");
  EXPECT_EQ(HeaderOf(bad, "ETag"), "\"a__b___\"");
  // And the sanitized tag is the one compared.
  Response again =
      FileResponse(Get({{"if-none-match", "\"a__b___\""}}), path_, "text/plain", "a \"b\"\r\n");
  EXPECT_EQ(again.status, 304);
}

TEST_F(FileResponseTest, MissingFileIs404FileNotFound) {
  Response r = FileResponse(Get(), dir_ + "/nope.ndjson", "text/plain", "v1");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(CodeOf(r), "file-not-found");
  EXPECT_FALSE(r.file.has_value());
  Response under_a_file = FileResponse(Get(), path_ + "/x", "text/plain", "v1");
  EXPECT_EQ(under_a_file.status, 404);
}

TEST_F(FileResponseTest, UnservableFileIs500WithoutThePath) {
  Response dir = FileResponse(Get(), dir_, "text/plain", "v1");
  EXPECT_EQ(dir.status, 500);
  EXPECT_EQ(CodeOf(dir), "internal");
  EXPECT_EQ(dir.body.find(dir_), std::string::npos);
  // A FIFO is refused without blocking on it.
  std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(FileResponse(Get(), fifo, "text/plain", "v1").status, 500);
  if (geteuid() != 0) {
    ASSERT_EQ(chmod(path_.c_str(), 0), 0);
    Response denied = FileResponse(Get(), path_, "text/plain", "v1");
    EXPECT_EQ(denied.status, 500);
    EXPECT_NE(nlohmann::json::parse(denied.body)["error"]["message"].get<std::string>().find(
                  "Permission denied"),
              std::string::npos)
        << denied.body;
  }
}

TEST_F(FileResponseTest, OpenFileServesTheBytesItOpenedAfterTheNameIsGone) {
  auto file = ReadOnlyFile::Open(path_);
  ASSERT_TRUE(file.ok());
  ASSERT_EQ(unlink(path_.c_str()), 0);
  char buf[64];
  auto n = file.value()->ReadAt(10, buf, sizeof(buf));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(buf, n.value()), content_.substr(10));
  auto end = file.value()->ReadAt(content_.size(), buf, sizeof(buf));
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end.value(), 0u);
}

}  // namespace
}  // namespace redrive::http
