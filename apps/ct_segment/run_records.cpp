#include "apps/ct_segment/run_records.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/common/files.h"
#include "apps/ct_segment/scan_output.h"
#include "apps/ct_segment/sharding.h"
#include "dlwpt/weights/atomic_file.h"
#include "dlwpt/weights/errors.h"

namespace dlwpt::ct_segment {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPlanFolder = ".plans";
constexpr const char* kFailureFolder = ".failed";
constexpr const char* kPlanHeader = "# ct-segment plan 1: key, shard, shards, input";

// Records are lines of tab-separated fields: labels and messages lose their tabs and breaks.
std::string field(std::string text) {
  std::replace_if(text.begin(), text.end(), [](char c) { return c == '\t' || c == '\n' || c == '\r'; }, ' ');
  return text;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields;
  std::istringstream in(line);
  for (std::string part; std::getline(in, part, '\t');) fields.push_back(part);
  if (!line.empty() && line.back() == '\t') fields.emplace_back();
  return fields;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw FileError("cannot read '" + path.string() + "'");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

fs::path failure_path(const std::string& run_folder, const std::string& key) {
  return fs::path(run_folder) / kFailureFolder / (key + ".txt");
}

// The files of a record folder, oldest first; none when the folder does not exist.
std::vector<fs::path> records_in(const fs::path& folder, const std::string& extension) {
  std::vector<std::pair<fs::file_time_type, fs::path>> found;
  std::error_code error;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    const auto& path = it->path();
    // Atomic writes leave hidden temporaries only while they run (or after a crash).
    if (path.extension() != extension || path.filename().string()[0] == '.') continue;
    std::error_code time_error;
    found.emplace_back(fs::last_write_time(path, time_error), path);
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> paths;
  for (auto& [time, path] : found) paths.push_back(std::move(path));
  return paths;
}

int64_t plan_number(const std::string& text, const fs::path& file, int line) {
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size() && value >= 0) return value;
  } catch (const std::exception&) {
  }
  throw FileError("plan '" + file.string() + "' line " + std::to_string(line) + ": '" + text +
                  "' is not a whole number");
}

void read_plan(const fs::path& file, std::map<std::string, PlannedScan>& plans) {
  std::istringstream in(read_text(file));
  std::string line;
  if (!std::getline(in, line) || line != kPlanHeader) {
    throw FileError("'" + file.string() + "' is not a ct-segment plan (its first line is not '" + kPlanHeader + "')");
  }
  for (int number = 2; std::getline(in, line); ++number) {
    const auto fields = split_tabs(line);
    if (fields.size() != 4 || fields[0].empty()) {
      throw FileError("plan '" + file.string() + "' line " + std::to_string(number) + ": expected 4 tab-separated fields");
    }
    PlannedScan scan{fields[0], fields[3], plan_number(fields[1], file, number), plan_number(fields[2], file, number)};
    plans[scan.key] = std::move(scan);
  }
}

}  // namespace

void record_plan(const std::string& run_folder, const std::vector<ScanSource>& scans, int64_t shard_count) {
  std::string text = std::string(kPlanHeader) + "\n";
  for (const auto& scan : scans) {
    const std::string key = scan_key(scan);
    text += key + "\t" + std::to_string(shard_of(key, shard_count)) + "\t" + std::to_string(shard_count) + "\t" +
            field(scan.label) + "\n";
  }
  const fs::path folder = fs::path(run_folder) / kPlanFolder;
  fs::create_directories(folder);
  // Processes with the same inputs write the same bytes to the same name: one file, whoever
  // renames last.
  write_file_atomically((folder / (stable_hash_hex(text) + ".tsv")).string(), text);
}

std::map<std::string, PlannedScan> read_plans(const std::string& run_folder) {
  std::map<std::string, PlannedScan> plans;
  for (const auto& file : records_in(fs::path(run_folder) / kPlanFolder, ".tsv")) read_plan(file, plans);
  return plans;
}

void record_failure(const std::string& run_folder, const std::string& key, const FailureRecord& failure) {
  fs::create_directories(fs::path(run_folder) / kFailureFolder);
  write_file_atomically(failure_path(run_folder, key).string(),
                        field(failure.label) + "\n" + field(failure.message) + "\n" + field(failure.who) + "\n");
}

void clear_failure(const std::string& run_folder, const std::string& key) {
  std::error_code ignored;  // usually there is none
  fs::remove(failure_path(run_folder, key), ignored);
}

std::map<std::string, FailureRecord> read_failures(const std::string& run_folder) {
  std::map<std::string, FailureRecord> failures;
  for (const auto& file : records_in(fs::path(run_folder) / kFailureFolder, ".txt")) {
    std::istringstream in(read_text(file));
    FailureRecord record;
    std::getline(in, record.label);
    std::getline(in, record.message);
    std::getline(in, record.who);
    failures[file.stem().string()] = std::move(record);
  }
  return failures;
}

}  // namespace dlwpt::ct_segment
