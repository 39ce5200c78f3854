#include "cli/table.h"

#include <algorithm>
#include <cctype>

namespace redrive::cli {
namespace {

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7F; }
bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

void AppendPadded(std::string* out, const std::string& cell, size_t width) {
  *out += cell;
  size_t w = DisplayWidth(cell);
  if (w < width) out->append(width - w, ' ');
}

}  // namespace

std::string Printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (IsControl(static_cast<unsigned char>(c))) c = ' ';
  }
  return out;
}

size_t DisplayWidth(std::string_view text) {
  size_t n = 0;
  for (unsigned char c : text) n += IsContinuation(c) ? 0 : 1;
  return n;
}

std::string Truncate(std::string_view text, size_t width) {
  if (DisplayWidth(text) <= width) return std::string(text);
  size_t keep = width - 3, points = 0, i = 0;
  for (; i < text.size(); ++i) {
    if (!IsContinuation(static_cast<unsigned char>(text[i]))) {
      if (points == keep) break;
      ++points;
    }
  }
  return std::string(text.substr(0, i)) + "...";
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  for (auto& c : cells) c = Printable(c);
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) widths[i] = DisplayWidth(headers_[i]);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i + 1 == cells.size()) {
        out += cells[i];
      } else {
        AppendPadded(&out, cells[i], widths[i] + 2);
      }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  };
  std::vector<std::string> header;
  for (const auto& h : headers_) header.push_back(Upper(h));
  line(header);
  for (const auto& row : rows_) line(row);
  return out;
}

void Table::Print(std::FILE* out) const {
  std::string text = Render();
  std::fwrite(text.data(), 1, text.size(), out);
}

void Details::Add(std::string key, std::string_view value) {
  lines_.push_back({std::move(key), Printable(value), false});
}

void Details::AddMultiline(std::string key, std::string_view value) {
  std::string v(value);
  for (char& c : v) {
    if (IsControl(static_cast<unsigned char>(c)) && c != '\n' && c != '\t') c = ' ';
  }
  while (!v.empty() && v.back() == '\n') v.pop_back();
  lines_.push_back({std::move(key), std::move(v), true});
}

std::string Details::Render() const {
  size_t width = 0;
  for (const auto& l : lines_) width = std::max(width, DisplayWidth(l.key) + 1);
  std::string out;
  for (const auto& l : lines_) {
    std::string start = l.key + ":";
    AppendPadded(&out, start, width + 1);
    if (!l.multiline) {
      out += l.value;
    } else {
      std::string indent(width + 1, ' ');
      for (char c : l.value) {
        out += c;
        if (c == '\n') out += indent;
      }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  return out;
}

void Details::Print(std::FILE* out) const {
  std::string text = Render();
  std::fwrite(text.data(), 1, text.size(), out);
}

}  // namespace redrive::cli
