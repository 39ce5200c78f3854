// A compiled DeadLetterTarget, shared by the workbench's actions and the redrive jobs
// (internal to the engine).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/dead_letters.h"
#include "query/filter.h"
#include "store/control_store.h"

namespace redrive::engine {

struct DeadLetters::Selector {
  std::string tenant;
  std::vector<std::string> ids;  // explicit ids: no scan
  std::shared_ptr<query::Expr> filter;
  bool parse_body = false;
  bool covered = true;    // the scan alone decides membership
  bool redacted = false;  // matches are redacted (Redactor) before the filter sees them
  store::DeadLetterScan scan;
};

}  // namespace redrive::engine
