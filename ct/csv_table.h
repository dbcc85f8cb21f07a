#pragma once

#include <string>
#include <vector>

#include "dlwpt/weights/errors.h"

namespace dlwpt::ct {

/// A CSV file with a header line, as LUNA's candidates.csv and annotations.csv and the book's
/// annotations_with_malignancy.csv are: fields in double quotes may hold commas. Columns are
/// found by name; every error (unreadable file, missing column, short line, bad number) is a
/// FileError naming the file, and the line where there is one.
class CsvTable {
 public:
  /// `what` names the file's role in messages ("annotations", "candidates").
  static CsvTable read(const std::string& path, const std::string& what = "CSV");

  const std::string& path() const { return path_; }
  size_t rows() const { return rows_.size(); }

  /// The column's index, or -1 when the header has no such name.
  int column(const std::string& name) const;
  /// The column's index; throws naming the file and the column when absent.
  int required_column(const std::string& name) const;

  const std::string& text(size_t row, int column) const;
  double number(size_t row, int column) const;
  /// "True"/"False" (pandas) or "1"/"0".
  bool boolean(size_t row, int column) const;

 private:
  [[noreturn]] void fail(size_t row, const std::string& message) const;

  std::string path_;
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<int> line_numbers_;
};

}  // namespace dlwpt::ct
