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
constexpr const char* kPlanHeader = "# ct-segment plan 1: key, shard, shards, input, listed from";
// A plan line is about 150 bytes: a million scans. A failure record is three short lines.
constexpr uintmax_t kMaxPlanBytes = uintmax_t{256} << 20;
constexpr uintmax_t kMaxFailureBytes = uintmax_t{64} << 10;

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

fs::path failure_path(const std::string& run_folder, const std::string& key) {
  return fs::path(run_folder) / kFailureFolder / (key + ".txt");
}

// The files of a record folder, oldest first; none when the folder does not exist. A folder
// that cannot be read is an error: records silently skipped would turn missing scans into none.
std::vector<fs::path> records_in(const fs::path& folder, const std::string& extension) {
  std::vector<std::pair<fs::file_time_type, fs::path>> found;
  std::error_code error;
  fs::directory_iterator it(folder, error);
  if (error == std::errc::no_such_file_or_directory) return {};
  for (fs::directory_iterator end; !error && it != end; it.increment(error)) {
    const auto& path = it->path();
    // Atomic writes leave hidden temporaries only while they run (or after a crash).
    if (path.extension() != extension || path.filename().string()[0] == '.') continue;
    std::error_code time_error;
    found.emplace_back(fs::last_write_time(path, time_error), path);
  }
  if (error) throw FileError("cannot read the run's records in '" + folder.string() + "': " + error.message());
  std::sort(found.begin(), found.end());
  std::vector<fs::path> paths;
  for (auto& [time, path] : found) paths.push_back(std::move(path));
  return paths;
}

int64_t plan_number(const std::string& text, const fs::path& file, int line) {
  const bool digits = !text.empty() && text.size() <= 18 &&
                      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) {
    throw FileError("plan '" + file.string() + "' line " + std::to_string(line) + ": '" + text +
                    "' is not a whole number");
  }
  return std::stoll(text);
}

void read_plan(const fs::path& file, std::map<std::string, PlannedScan>& plans) {
  std::istringstream in(read_run_file(file.string(), "plan", kMaxPlanBytes));
  std::string line;
  if (!std::getline(in, line) || line != kPlanHeader) {
    throw FileError("'" + file.string() + "' is not a ct-segment plan (its first line is not '" + kPlanHeader + "')");
  }
  for (int number = 2; std::getline(in, line); ++number) {
    const auto fields = split_tabs(line);
    if (fields.size() != 5 || fields[0].empty()) {
      throw FileError("plan '" + file.string() + "' line " + std::to_string(number) + ": expected 5 tab-separated fields");
    }
    PlannedScan scan{fields[0], fields[3], plan_number(fields[1], file, number), plan_number(fields[2], file, number),
                     fields[4]};
    if (scan.shards < 1 || scan.shard >= scan.shards) {
      throw FileError("plan '" + file.string() + "' line " + std::to_string(number) + ": shard " + fields[1] +
                      " of " + fields[2] + " shards");
    }
    plans[scan.key] = std::move(scan);
  }
}

}  // namespace

std::string read_run_file(const std::string& path, const std::string& role, uintmax_t max_bytes) {
  require_regular_file(path, role);
  std::error_code error;
  const uintmax_t size = fs::file_size(path, error);
  if (error) throw FileError("the " + role + " '" + path + "' cannot be read: " + error.message());
  if (size > max_bytes) {
    throw FileError("the " + role + " '" + path + "' is " + std::to_string(size) + " bytes, more than a " + role +
                    " can be (" + std::to_string(max_bytes) + ")");
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size)) || in.gcount() != static_cast<std::streamsize>(size)) {
    throw FileError("the " + role + " '" + path + "' cannot be read");
  }
  return bytes;
}

void record_plan(const std::string& run_folder, const std::vector<ScanSource>& scans, int64_t shard_count) {
  std::string text = std::string(kPlanHeader) + "\n";
  for (const auto& scan : scans) {
    text += scan_key(scan) + "\t" + std::to_string(shard_of(shard_key(scan), shard_count)) + "\t" +
            std::to_string(shard_count) + "\t" + field(scan.label) + "\t" + scan.listed_from + "\n";
  }
  const fs::path folder = fs::path(run_folder) / kPlanFolder;
  fs::create_directories(folder);
  // Processes with the same inputs have the same plan, named by its hash: the first writes it,
  // the others (a thousand tasks of an array, on a shared filesystem) find it there.
  const fs::path path = folder / (stable_hash_hex(text) + ".tsv");
  std::error_code error;
  if (!fs::exists(path, error)) write_file_atomically(path.string(), text);
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
    std::istringstream in(read_run_file(file.string(), "failure record", kMaxFailureBytes));
    FailureRecord record;
    std::getline(in, record.label);
    std::getline(in, record.message);
    std::getline(in, record.who);
    failures[file.stem().string()] = std::move(record);
  }
  return failures;
}

}  // namespace dlwpt::ct_segment
