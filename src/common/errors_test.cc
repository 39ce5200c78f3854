#include "common/errors.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace redrive {
namespace {

TEST(ErrorCatalogueTest, CodesAreUniqueAndStatusesAreErrors) {
  size_t n = 0;
  const ErrorInfo* all = AllErrors(&n);
  std::set<std::string> seen;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_TRUE(seen.insert(std::string(all[i].wire_code)).second) << all[i].wire_code;
    EXPECT_EQ(&GetErrorInfo(all[i].code), &all[i]);
    if (all[i].code != ErrorCode::kOk) {
      EXPECT_GE(all[i].http_status, 400) << all[i].wire_code;
      EXPECT_FALSE(all[i].description.empty());
    }
  }
}

// The API reference must list every code of the catalogue, so the docs cannot drift from it.
TEST(ErrorCatalogueTest, EveryCodeIsDocumentedInTheApiReference) {
  std::ifstream in(std::string(REDRIVE_SOURCE_DIR) + "/docs/api.md");
  ASSERT_TRUE(in.good()) << "docs/api.md is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  size_t n = 0;
  const ErrorInfo* all = AllErrors(&n);
  for (size_t i = 0; i < n; ++i) {
    if (all[i].code == ErrorCode::kOk) continue;
    std::string needle = "`" + std::string(all[i].wire_code) + "`";
    EXPECT_NE(doc.find(needle), std::string::npos) << needle << " is not in docs/api.md";
  }
}

}  // namespace
}  // namespace redrive
