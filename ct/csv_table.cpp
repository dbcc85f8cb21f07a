#include "dlwpt/ct/csv_table.h"

#include <cmath>
#include <fstream>
#include <stdexcept>

#include "dlwpt/weights/numbers.h"

namespace dlwpt::ct {

namespace {

// Splits one CSV line, honouring double quotes (mal_details holds "[4, 2, 4, 2]").
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (const char c : line) {
    if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  return fields;
}

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \r\t") == std::string::npos;
}

}  // namespace

CsvTable CsvTable::read(const std::string& path, const std::string& what) {
  require_regular_file(path, what + " file");
  std::ifstream file(path);
  if (!file) throw FileError("cannot read the " + what + " file '" + path + "'");
  CsvTable table;
  table.path_ = path;
  std::string line;
  if (!std::getline(file, line) || is_blank(line)) {
    throw FileError("'" + path + "' is empty: a header line is needed");
  }
  // Spreadsheet programs start UTF-8 CSVs with a byte order mark.
  if (line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
  table.header_ = split_csv(line);
  for (int number = 2; std::getline(file, line); ++number) {
    if (is_blank(line)) continue;
    auto fields = split_csv(line);
    if (fields.size() < table.header_.size()) {
      throw FileError("'" + path + "' line " + std::to_string(number) + ": " +
                               std::to_string(fields.size()) + " fields, the header has " +
                               std::to_string(table.header_.size()));
    }
    table.rows_.push_back(std::move(fields));
    table.line_numbers_.push_back(number);
  }
  return table;
}

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header_.size(); ++i) {
    if (header_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

int CsvTable::required_column(const std::string& name) const {
  const int index = column(name);
  if (index < 0) throw FileError("'" + path_ + "' lacks the column '" + name + "'");
  return index;
}

const std::string& CsvTable::text(size_t row, int column) const {
  return rows_.at(row).at(static_cast<size_t>(column));
}

double CsvTable::number(size_t row, int column) const {
  const std::string& field = text(row, column);
  if (const auto value = parse_double(field); value && std::isfinite(*value)) return *value;
  fail(row, "'" + field + "' in column '" + header_[static_cast<size_t>(column)] +
                "' is not a number");
}

bool CsvTable::boolean(size_t row, int column) const {
  const std::string& field = text(row, column);
  if (field == "True" || field == "true" || field == "1") return true;
  if (field == "False" || field == "false" || field == "0") return false;
  fail(row, "'" + field + "' in column '" + header_[static_cast<size_t>(column)] +
                "' is not True/False or 1/0");
}

void CsvTable::fail(size_t row, const std::string& message) const {
  throw FileError("'" + path_ + "' line " + std::to_string(line_numbers_.at(row)) +
                           ": " + message);
}

}  // namespace dlwpt::ct
