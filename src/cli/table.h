// Plain-text output for the CLI: aligned tables and "key: value" blocks.
//
// Cells are made printable first: control characters (newlines, tabs, escapes) become spaces,
// so a multi-line cause or a hostile attribute cannot break the layout or drive the terminal.
// Widths count UTF-8 code points, which is right for the text redrive prints (names, ids,
// times, reasons, causes) short of wide CJK glyphs.
//
// Thread-safety: value types; not thread-safe while being filled.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace redrive::cli {

// `text` with every control character (and DEL) replaced by a space.
std::string Printable(std::string_view text);

// The number of UTF-8 code points in `text` (bytes that are not continuation bytes).
size_t DisplayWidth(std::string_view text);

// `text` cut to at most `width` code points, ending in "..." when cut. REQUIRES: width >= 3.
std::string Truncate(std::string_view text, size_t width);

// Columns separated by two spaces, each as wide as its widest cell; the header is upper case.
// The last column is not padded, so lines carry no trailing blanks.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);

  // A row with fewer cells than headers is padded with empty cells; extra cells are dropped.
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }

  std::string Render() const;
  void Print(std::FILE* out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// "key: value" lines with the values aligned, for one resource (queue show, dlq show).
class Details {
 public:
  // `value` is made printable, on one line.
  void Add(std::string key, std::string_view value);
  // `value` keeps its inner line breaks (other control characters become spaces; trailing line
  // breaks are dropped); the lines after the first are indented under the first.
  void AddMultiline(std::string key, std::string_view value);
  std::string Render() const;
  void Print(std::FILE* out) const;

 private:
  struct Line {
    std::string key;
    std::string value;
    bool multiline = false;
  };
  std::vector<Line> lines_;
};

}  // namespace redrive::cli
