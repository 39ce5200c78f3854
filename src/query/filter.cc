#include "query/filter.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <utility>

namespace redrive::query {
namespace {

using nlohmann::json;

constexpr std::string_view kParam = "_queryFilter";
constexpr std::string_view kOperators = "(eq co sw lt le gt ge pr)";

Status QueryError(std::string_view param, size_t position, const std::string& what) {
  return Status(ErrorCode::kInvalidQuery,
                std::string(param) + ": at position " + std::to_string(position) + ": " + what);
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Characters that end a word (a pointer, keyword, operator or unquoted literal).
bool EndsWord(char c) { return IsSpace(c) || c == '(' || c == ')' || c == '"'; }

// Quotes a piece of user text for an error message: at most 32 bytes, and every byte outside
// printable ASCII as \xNN, so a message is always short, printable and valid UTF-8.
std::string Excerpt(std::string_view s) {
  constexpr size_t kMax = 32;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    }
  }
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

// Offset of the first byte that is not part of well-formed UTF-8, or npos.
size_t FindInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t min;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return i;
    }
    if (s.size() - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

std::optional<Op> ComparisonOp(std::string_view word) {
  static constexpr std::pair<std::string_view, Op> kOps[] = {
      {"eq", Op::kEq}, {"co", Op::kCo}, {"sw", Op::kSw}, {"lt", Op::kLt},
      {"le", Op::kLe}, {"gt", Op::kGt}, {"ge", Op::kGe}, {"pr", Op::kPr}};
  for (const auto& [name, op] : kOps) {
    if (word == name) return op;
  }
  return std::nullopt;
}

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kEq:
      return "eq";
    case Op::kCo:
      return "co";
    case Op::kSw:
      return "sw";
    case Op::kLt:
      return "lt";
    case Op::kLe:
      return "le";
    case Op::kGt:
      return "gt";
    case Op::kGe:
      return "ge";
    case Op::kPr:
      return "pr";
    default:
      return "";
  }
}

// Recursive descent over the grammar in filter.h. Each function returns nullptr after
// recording the first error in error_; recursion happens only through '(' and '!', both of
// which count against kMaxFilterDepth before recursing.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<std::unique_ptr<Expr>> Parse() {
    if (text_.size() > kMaxFilterBytes) {
      return QueryError(
          kParam, kMaxFilterBytes,
          "the filter is longer than the limit of " + std::to_string(kMaxFilterBytes) + " bytes");
    }
    if (size_t bad = FindInvalidUtf8(text_); bad != std::string_view::npos) {
      return QueryError(kParam, bad, "the filter is not valid UTF-8");
    }
    std::unique_ptr<Expr> e = ParseOr();
    if (e) {
      SkipSpace();
      if (pos_ < text_.size()) {
        Fail(pos_, "expected 'and', 'or' or the end of the filter, found " + Found(pos_));
      }
    }
    if (!error_.ok()) return error_;
    return e;
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
  }

  // The word starting at `at` (possibly empty).
  std::string_view WordAt(size_t at) const {
    size_t end = at;
    while (end < text_.size() && !EndsWord(text_[end])) ++end;
    return text_.substr(at, end - at);
  }

  // Whether `keyword` starts at pos_ as a word of its own. A '!' may follow it directly
  // ("or!(...)"), since only a 'not' can come next.
  bool AtKeyword(std::string_view keyword) const {
    if (text_.substr(pos_, keyword.size()) != keyword) return false;
    size_t end = pos_ + keyword.size();
    return end == text_.size() || EndsWord(text_[end]) || text_[end] == '!';
  }

  std::string Found(size_t at) const {
    if (at >= text_.size()) return "the end of the filter";
    std::string_view word = WordAt(at);
    if (word.empty()) return "'" + std::string(1, text_[at]) + "'";
    return Excerpt(word);
  }

  std::nullptr_t Fail(size_t at, const std::string& what) {
    if (error_.ok()) error_ = QueryError(kParam, at, what);
    return nullptr;
  }

  bool Enter(size_t at) {
    if (++depth_ > kMaxFilterDepth) {
      Fail(at, "the filter nests deeper than the limit of " + std::to_string(kMaxFilterDepth) +
                   " levels of '(' and '!'");
      return false;
    }
    return true;
  }

  // Parses `child ('keyword' child)*`, returning the single child or a kind node over them.
  template <typename ParseChild>
  std::unique_ptr<Expr> ParseList(std::string_view keyword, Op kind, ParseChild parse_child) {
    std::unique_ptr<Expr> first = parse_child();
    if (!first) return nullptr;
    std::unique_ptr<Expr> list;
    while (true) {
      size_t save = pos_;
      SkipSpace();
      if (!AtKeyword(keyword)) {
        pos_ = save;
        break;
      }
      pos_ += keyword.size();
      std::unique_ptr<Expr> next = parse_child();
      if (!next) return nullptr;
      if (!list) {
        list = std::make_unique<Expr>();
        list->op = kind;
        list->children.push_back(std::move(first));
      }
      list->children.push_back(std::move(next));
    }
    return list ? std::move(list) : std::move(first);
  }

  std::unique_ptr<Expr> ParseOr() {
    return ParseList("or", Op::kOr, [this] { return ParseAnd(); });
  }

  std::unique_ptr<Expr> ParseAnd() {
    return ParseList("and", Op::kAnd, [this] { return ParseNot(); });
  }

  std::unique_ptr<Expr> ParseNot() {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '!') {
      if (!Enter(pos_)) return nullptr;
      ++pos_;
      std::unique_ptr<Expr> child = ParseNot();
      if (!child) return nullptr;
      --depth_;
      auto e = std::make_unique<Expr>();
      e->op = Op::kNot;
      e->children.push_back(std::move(child));
      return e;
    }
    return ParsePrimary();
  }

  std::unique_ptr<Expr> ParsePrimary() {
    SkipSpace();
    size_t start = pos_;
    if (start < text_.size() && text_[start] == '(') {
      if (!Enter(start)) return nullptr;
      ++pos_;
      std::unique_ptr<Expr> inner = ParseOr();
      if (!inner) return nullptr;
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ')') {
        return Fail(pos_, "expected 'and', 'or' or ')' to close the '(' at position " +
                              std::to_string(start) + ", found " + Found(pos_));
      }
      ++pos_;
      --depth_;
      return inner;
    }
    std::string_view word = WordAt(start);
    if (word.empty()) {
      return Fail(start,
                  "expected a comparison, 'true', 'false', '!' or '(', found " + Found(start));
    }
    pos_ += word.size();
    if (word == "true" || word == "false") {
      auto e = std::make_unique<Expr>();
      e->op = word == "true" ? Op::kTrue : Op::kFalse;
      return e;
    }
    return ParseComparison(start, word);
  }

  std::unique_ptr<Expr> ParseComparison(size_t start, std::string_view pointer) {
    auto path = DecodePointer(pointer, kParam, start);
    if (!path.ok()) {
      if (error_.ok()) error_ = path.status();
      return nullptr;
    }
    if (++comparisons_ > kMaxFilterComparisons) {
      return Fail(start, "the filter has more comparisons than the limit of " +
                             std::to_string(kMaxFilterComparisons));
    }
    auto e = std::make_unique<Expr>();
    e->path = std::move(path).value();
    SkipSpace();
    size_t op_at = pos_;
    std::string_view op_word = WordAt(op_at);
    std::optional<Op> op = ComparisonOp(op_word);
    if (!op) {
      return Fail(op_at, "expected an operator " + std::string(kOperators) + " after " +
                             Excerpt(pointer) + ", found " + Found(op_at));
    }
    pos_ += op_word.size();
    e->op = *op;
    if (*op == Op::kPr) return e;
    if (!ParseLiteral(op_word, &e->value)) return nullptr;
    return e;
  }

  bool ParseLiteral(std::string_view op_word, json* out) {
    SkipSpace();
    size_t at = pos_;
    if (at < text_.size() && text_[at] == '"') return ParseString(out);
    std::string_view word = WordAt(at);
    if (word == "true" || word == "false") {
      *out = word == "true";
    } else if (word == "null") {
      *out = nullptr;
    } else if (!word.empty() && IsJsonNumber(word)) {
      // The grammar is checked above, so the only failure left is a number out of range.
      *out = json::parse(word.begin(), word.end(), nullptr, /*allow_exceptions=*/false);
      if (out->is_discarded()) {
        Fail(at, "the number " + Excerpt(word) + " is out of range");
        return false;
      }
    } else {
      Fail(at,
           "expected a value (a JSON string in double quotes, a number, true, false or "
           "null) after '" +
               std::string(op_word) + "', found " + Found(at));
      return false;
    }
    pos_ += word.size();
    return true;
  }

  bool ReadHex4(size_t at, uint32_t* cp) const {
    if (text_.size() - at < 4) return false;
    *cp = 0;
    for (size_t i = at; i < at + 4; ++i) {
      char c = text_[i];
      uint32_t d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        return false;
      }
      *cp = (*cp << 4) | d;
    }
    return true;
  }

  // A JSON string starting at the '"' under pos_.
  bool ParseString(json* out) {
    size_t open = pos_++;
    std::string s;
    while (true) {
      if (pos_ >= text_.size()) {
        Fail(open,
             "expected a closing '\"' for the string that starts here, found the end of "
             "the filter");
        return false;
      }
      char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        break;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        Fail(pos_, "expected an escape sequence for control character " +
                       Excerpt(text_.substr(pos_, 1)) + " in a string, found it raw");
        return false;
      }
      if (c != '\\') {
        s += c;
        ++pos_;
        continue;
      }
      size_t esc = pos_;
      char e = esc + 1 < text_.size() ? text_[esc + 1] : '\0';
      std::string_view bad_escape =
          "expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX) in a string, found ";
      switch (e) {
        case '"':
        case '\\':
        case '/':
          s += e;
          break;
        case 'b':
          s += '\b';
          break;
        case 'f':
          s += '\f';
          break;
        case 'n':
          s += '\n';
          break;
        case 'r':
          s += '\r';
          break;
        case 't':
          s += '\t';
          break;
        case 'u': {
          uint32_t cp;
          if (!ReadHex4(esc + 2, &cp)) {
            Fail(esc, std::string(bad_escape) + Excerpt(text_.substr(esc, 6)));
            return false;
          }
          pos_ = esc + 6;
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            Fail(esc, "expected a high surrogate before the low surrogate " +
                          Excerpt(text_.substr(esc, 6)) + ", found none");
            return false;
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low;
            if (pos_ + 1 >= text_.size() || text_[pos_] != '\\' || text_[pos_ + 1] != 'u' ||
                !ReadHex4(pos_ + 2, &low) || low < 0xDC00 || low > 0xDFFF) {
              Fail(esc, "expected a \\uDC00-\\uDFFF low surrogate after the high surrogate " +
                            Excerpt(text_.substr(esc, 6)) + ", found " +
                            (pos_ >= text_.size() ? std::string("the end of the filter")
                                                  : Excerpt(text_.substr(pos_, 6))));
              return false;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            pos_ += 6;
          }
          AppendUtf8(cp, &s);
          continue;
        }
        default:
          Fail(esc, std::string(bad_escape) + (esc + 1 < text_.size()
                                                   ? Excerpt(text_.substr(esc, 2))
                                                   : std::string("the end of the filter")));
          return false;
      }
      pos_ = esc + 2;
    }
    *out = std::move(s);
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  int depth_ = 0;
  int comparisons_ = 0;
  Status error_;
};

// ---- evaluation ----

bool ScalarEquals(const json& v, const json& lit) {
  if (v.is_number() && lit.is_number()) return CompareNumbers(v, lit) == 0;
  // nlohmann's == would compare numbers across types too, lossily; they are handled above.
  if (v.type() != lit.type()) return false;
  return v == lit;
}

bool ScalarMatches(Op op, const json& v, const json& lit) {
  switch (op) {
    case Op::kEq:
      return ScalarEquals(v, lit);
    case Op::kCo:
    case Op::kSw: {
      if (!v.is_string() || !lit.is_string()) return false;
      const std::string& hay = v.get_ref<const std::string&>();
      const std::string& needle = lit.get_ref<const std::string&>();
      return op == Op::kCo ? hay.find(needle) != std::string::npos
                           : hay.compare(0, needle.size(), needle) == 0;
    }
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe: {
      int c;
      if (v.is_number() && lit.is_number()) {
        // NaN is unordered for a filter, even though CompareNumbers orders it for sorting.
        if ((v.is_number_float() && std::isnan(v.get<double>())) ||
            (lit.is_number_float() && std::isnan(lit.get<double>()))) {
          return false;
        }
        c = CompareNumbers(v, lit);
      } else if (v.is_string() && lit.is_string()) {
        c = v.get_ref<const std::string&>().compare(lit.get_ref<const std::string&>());
      } else {
        return false;
      }
      switch (op) {
        case Op::kLt:
          return c < 0;
        case Op::kLe:
          return c <= 0;
        case Op::kGt:
          return c > 0;
        default:
          return c >= 0;
      }
    }
    default:
      return false;
  }
}

// ---- canonical text ----

std::string FormatNumber(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  double d = v.get<double>();
  // Not reachable from parsed text; keep the output parseable anyway.
  if (!std::isfinite(d)) return "null";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  if (ec != std::errc()) return v.dump();
  std::string raw(buf, end);
  // to_chars writes "1e+05" / "1e-07"; drop the '+' and the exponent's leading zeros.
  std::string out;
  size_t e = raw.find('e');
  if (e == std::string::npos) {
    out = raw;
    if (out.find('.') == std::string::npos) out += ".0";  // stay a float when re-parsed
    return out;
  }
  out = raw.substr(0, e + 1);
  size_t i = e + 1;
  if (raw[i] == '+') {
    ++i;
  } else if (raw[i] == '-') {
    out += '-';
    ++i;
  }
  while (i + 1 < raw.size() && raw[i] == '0') ++i;
  out += raw.substr(i);
  return out;
}

std::string FormatLiteral(const json& v) {
  if (v.is_number()) return FormatNumber(v);
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

void AppendCanonical(const Expr& e, std::string* out);

bool IsList(const Expr& e) { return e.op == Op::kAnd || e.op == Op::kOr; }

void AppendList(const Expr& e, std::string* out) {
  if (e.children.empty()) {
    *out += e.op == Op::kAnd ? "true" : "false";
    return;
  }
  if (e.children.size() == 1) {
    AppendCanonical(*e.children[0], out);
    return;
  }
  bool first = true;
  for (const auto& child : e.children) {
    if (!first) *out += e.op == Op::kAnd ? " and " : " or ";
    first = false;
    // 'and' binds tighter than 'or', so only an 'and' inside an 'or' goes without parentheses.
    bool parens = IsList(*child) && !(e.op == Op::kOr && child->op == Op::kAnd);
    if (parens) *out += '(';
    AppendCanonical(*child, out);
    if (parens) *out += ')';
  }
}

void AppendCanonical(const Expr& e, std::string* out) {
  switch (e.op) {
    case Op::kTrue:
      *out += "true";
      return;
    case Op::kFalse:
      *out += "false";
      return;
    case Op::kAnd:
    case Op::kOr:
      AppendList(e, out);
      return;
    case Op::kNot: {
      *out += '!';
      if (e.children.empty()) {
        *out += "true";
        return;
      }
      const Expr& child = *e.children[0];
      bool parens = IsList(child);
      if (parens) *out += '(';
      AppendCanonical(child, out);
      if (parens) *out += ')';
      return;
    }
    case Op::kPr:
      *out += EncodePointer(e.path);
      *out += " pr";
      return;
    default:
      *out += EncodePointer(e.path);
      *out += ' ';
      *out += OpName(e.op);
      *out += ' ';
      *out += FormatLiteral(e.value);
      return;
  }
}

// ---- indexed constraints ----

// The fields of a timestamp in FormatTime's form "YYYY-MM-DDTHH:MM:SS.mmmZ".
struct CanonicalTime {
  int year, month, day, hour, minute, second, milli;
};

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

std::optional<CanonicalTime> ParseCanonicalTime(std::string_view s) {
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (s.size() != kShape.size()) return std::nullopt;
  for (size_t i = 0; i < s.size(); ++i) {
    bool ok = kShape[i] == 'd' ? (s[i] >= '0' && s[i] <= '9') : s[i] == kShape[i];
    if (!ok) return std::nullopt;
  }
  auto num = [&](size_t at, size_t len) {
    int v = 0;
    for (size_t i = at; i < at + len; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  CanonicalTime t{num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2), num(20, 3)};
  if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > DaysInMonth(t.year, t.month) ||
      t.hour > 23 || t.minute > 59 || t.second > 59) {
    return std::nullopt;
  }
  return t;
}

// `t` plus one millisecond, in the same form; nullopt past year 9999.
std::optional<std::string> NextMillisecond(CanonicalTime t) {
  if (++t.milli == 1000) {
    t.milli = 0;
    if (++t.second == 60) {
      t.second = 0;
      if (++t.minute == 60) {
        t.minute = 0;
        if (++t.hour == 24) {
          t.hour = 0;
          if (++t.day > DaysInMonth(t.year, t.month)) {
            t.day = 1;
            if (++t.month > 12) {
              t.month = 1;
              if (++t.year > 9999) return std::nullopt;
            }
          }
        }
      }
    }
  }
  char buf[96];  // the fields are in range; the size only quiets -Wformat-truncation
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.year, t.month, t.day, t.hour,
           t.minute, t.second, t.milli);
  return std::string(buf);
}

void Tighten(std::optional<std::string>* bound, std::string value, bool keep_larger) {
  if (!*bound || (keep_larger ? value > **bound : value < **bound)) *bound = std::move(value);
}

void CollectIndexed(const Expr& e, IndexedConstraints* out) {
  if (e.op == Op::kAnd) {
    for (const auto& child : e.children) CollectIndexed(*child, out);
    return;
  }
  if (e.path.size() != 1 || !e.value.is_string()) return;
  const std::string& field = e.path[0];
  const std::string& value = e.value.get_ref<const std::string&>();
  if (e.op == Op::kEq) {
    std::optional<std::string>* slot = field == "origin"            ? &out->origin
                                       : field == "reason"          ? &out->reason
                                       : field == "group"           ? &out->group
                                       : field == "deadLetterQueue" ? &out->dlq
                                                                    : nullptr;
    if (slot && !*slot) *slot = value;
    return;
  }
  if (field != "deadLetteredAt") return;
  std::optional<CanonicalTime> t = ParseCanonicalTime(value);
  if (!t) return;
  switch (e.op) {
    case Op::kGe:
      Tighten(&out->since, value, /*keep_larger=*/true);
      break;
    case Op::kGt:
      if (auto next = NextMillisecond(*t)) Tighten(&out->since, *next, true);
      break;
    case Op::kLt:
      Tighten(&out->until, value, /*keep_larger=*/false);
      break;
    case Op::kLe:
      if (auto next = NextMillisecond(*t)) Tighten(&out->until, *next, false);
      break;
    default:
      break;
  }
}

// Three-way comparison of an exact integer with a double. REQUIRES: !isnan(d).
template <typename Int>
int CompareIntDouble(Int i, double d) {
  // 2^63 and 2^64 are exact doubles; beyond the integer type's range the sign decides.
  constexpr double kMax = std::is_signed_v<Int> ? 9223372036854775808.0 : 18446744073709551616.0;
  constexpr double kMin = std::is_signed_v<Int> ? -9223372036854775808.0 : 0.0;
  if (d >= kMax) return -1;
  if (d < kMin) return 1;
  double whole = std::trunc(d);  // in range, so the cast below is exact
  Int t = static_cast<Int>(whole);
  if (i != t) return i < t ? -1 : 1;
  double frac = d - whole;
  return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

}  // namespace

Result<std::unique_ptr<Expr>> ParseFilter(std::string_view text) { return Parser(text).Parse(); }

bool Evaluate(const Expr& e, const json& doc) {
  switch (e.op) {
    case Op::kTrue:
      return true;
    case Op::kFalse:
      return false;
    case Op::kAnd:
      for (const auto& child : e.children) {
        if (!Evaluate(*child, doc)) return false;
      }
      return true;
    case Op::kOr:
      for (const auto& child : e.children) {
        if (Evaluate(*child, doc)) return true;
      }
      return false;
    case Op::kNot:
      return !e.children.empty() && !Evaluate(*e.children[0], doc);
    case Op::kPr: {
      const json* v = ResolvePointer(doc, e.path);
      return v != nullptr && !v->is_null();
    }
    default: {
      const json* v = ResolvePointer(doc, e.path);
      if (v == nullptr) return false;
      if (!v->is_array()) return ScalarMatches(e.op, *v, e.value);
      for (const json& element : *v) {
        if (ScalarMatches(e.op, element, e.value)) return true;
      }
      return false;
    }
  }
}

std::string ToString(const Expr& e) {
  std::string out;
  AppendCanonical(e, &out);
  return out;
}

IndexedConstraints ExtractIndexed(const Expr& e) {
  IndexedConstraints out;
  CollectIndexed(e, &out);
  return out;
}

Result<std::vector<std::string>> DecodePointer(std::string_view text, std::string_view param,
                                               size_t base_position) {
  if (text.empty()) return QueryError(param, base_position, "expected a field pointer, found none");
  std::vector<std::string> tokens;
  size_t i = text[0] == '/' ? 1 : 0;
  while (true) {
    size_t token_start = i;
    std::string token;
    while (i < text.size() && text[i] != '/') {
      if (text[i] != '~') {
        token += text[i++];
        continue;
      }
      char next = i + 1 < text.size() ? text[i + 1] : '\0';
      if (next != '0' && next != '1') {
        return QueryError(param, base_position + i,
                          "expected '~0' or '~1' in the pointer " + Excerpt(text) + ", found " +
                              Excerpt(text.substr(i, 2)));
      }
      token += next == '0' ? '~' : '/';
      i += 2;
    }
    if (token.empty()) {
      return QueryError(
          param, base_position + token_start,
          "expected a field name in the pointer " + Excerpt(text) + ", found an empty one");
    }
    tokens.push_back(std::move(token));
    if (i >= text.size()) break;
    ++i;  // the '/'
  }
  return tokens;
}

std::string EncodePointer(const std::vector<std::string>& path) {
  std::string out;
  for (const std::string& token : path) {
    out += '/';
    for (char c : token) {
      if (c == '~') {
        out += "~0";
      } else if (c == '/') {
        out += "~1";
      } else {
        out += c;
      }
    }
  }
  return out;
}

const json* ResolvePointer(const json& doc, const std::vector<std::string>& path) {
  const json* cur = &doc;
  for (const std::string& token : path) {
    if (cur->is_object()) {
      auto it = cur->find(token);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (cur->is_array()) {
      if (token.empty() || token.size() > 19 || (token.size() > 1 && token[0] == '0')) {
        return nullptr;
      }
      size_t index = 0;
      auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), index);
      if (ec != std::errc() || end != token.data() + token.size() || index >= cur->size()) {
        return nullptr;
      }
      cur = &(*cur)[index];
    } else {
      return nullptr;
    }
  }
  return cur;
}

int CompareNumbers(const json& a, const json& b) {
  bool a_nan = a.is_number_float() && std::isnan(a.get<double>());
  bool b_nan = b.is_number_float() && std::isnan(b.get<double>());
  if (a_nan || b_nan) return a_nan == b_nan ? 0 : a_nan ? -1 : 1;
  if (a.is_number_float() && b.is_number_float()) {
    double x = a.get<double>(), y = b.get<double>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (b.is_number_float()) {
    double y = b.get<double>();
    return a.is_number_unsigned() ? CompareIntDouble(a.get<uint64_t>(), y)
                                  : CompareIntDouble(a.get<int64_t>(), y);
  }
  if (a.is_number_float()) return -CompareNumbers(b, a);
  // Both integers, signed or unsigned.
  if (a.is_number_unsigned() && b.is_number_unsigned()) {
    uint64_t x = a.get<uint64_t>(), y = b.get<uint64_t>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_number_unsigned()) return -CompareNumbers(b, a);
  int64_t x = a.get<int64_t>();
  if (b.is_number_unsigned()) {
    uint64_t y = b.get<uint64_t>();
    return x < 0 || static_cast<uint64_t>(x) < y ? -1 : static_cast<uint64_t>(x) > y ? 1 : 0;
  }
  int64_t y = b.get<int64_t>();
  return x < y ? -1 : x > y ? 1 : 0;
}

}  // namespace redrive::query
