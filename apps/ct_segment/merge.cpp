#include "apps/ct_segment/merge.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/ct_segment/report.h"
#include "apps/ct_segment/run_records.h"
#include "apps/ct_segment/scan_output.h"
#include "dlwpt/weights/atomic_file.h"
#include "dlwpt/weights/errors.h"

namespace dlwpt::ct_segment {

namespace fs = std::filesystem;
using Status = MergedScan::Status;
using ct::operator+=;

namespace {

constexpr const char* kResultsFile = "candidates.json";
// About 250 bytes per candidate: a million candidates.
constexpr uintmax_t kMaxResultsBytes = uintmax_t{256} << 20;

// A complete scan's results, read back from its candidates.json.
struct ScanResults {
  std::string series_uid;
  std::vector<ct::Candidate> candidates;  ///< in the file's order (by probability)
  bool malignancy = false;
};

double json_double(const nlohmann::json& value) {
  return value.is_null() ? std::numeric_limits<double>::quiet_NaN() : value.get<double>();
}

template <size_t N>
std::array<double, N> json_array(const nlohmann::json& values) {
  if (!values.is_array() || values.size() != N) throw FileError("expected an array of " + std::to_string(N) + " numbers");
  std::array<double, N> array{};
  for (size_t i = 0; i < N; ++i) array[i] = json_double(values[i]);
  return array;
}

// A count: an integer JSON number from 0 to 2^63 - 1 (not 1e300, not -5).
int64_t json_count(const nlohmann::json& item, const char* name) {
  const auto& value = item.at(name);
  const bool fits = value.is_number_unsigned() ? value.get<uint64_t>() <= uint64_t{INT64_MAX}
                                               : value.is_number_integer() && value.get<int64_t>() >= 0;
  if (!fits) throw FileError(std::string("'") + name + "' is " + value.dump() + ", not a count");
  return value.get<int64_t>();
}

// The results of the scan whose results folder is `key`.
ScanResults read_results(const fs::path& file, const std::string& key) {
  try {
    const auto json = nlohmann::json::parse(read_run_file(file.string(), "candidates file", kMaxResultsBytes));
    ScanResults results;
    results.series_uid = json.at("series_uid").get<std::string>();
    // Its results folder is named after it: a UID of another scan, or of a million characters
    // repeated on every row of the merged table, is not this scan's.
    if (scan_folder_name(results.series_uid) != key) {
      throw FileError("it names series '" + results.series_uid.substr(0, 80) + "', whose results would not be in '" +
                      key + "'");
    }
    if (!json.at("candidates").is_array()) throw FileError("'candidates' is not an array");
    for (const auto& item : json.at("candidates")) {
      ct::Candidate candidate;
      candidate.id = json_count(item, "id");
      candidate.center_irc = json_array<3>(item.at("center_irc"));
      candidate.center_xyz = json_array<3>(item.at("center_xyz"));
      candidate.voxels = json_count(item, "voxels");
      candidate.nodule_probability = json_double(item.at("nodule_probability"));
      if (item.contains("malignancy_probability")) {
        candidate.malignancy_probability = json_double(item.at("malignancy_probability"));
        results.malignancy = true;
      }
      results.candidates.push_back(candidate);
    }
    return results;
  } catch (const nlohmann::json::exception& error) {
    throw FileError("'" + file.string() + "' is not a ct-segment candidates.json: " + error.what());
  } catch (const std::exception& error) {  // FileError, and the stream's own failures
    throw FileError("'" + file.string() + "': " + error.what());
  }
}

// The merge writes two tables that belong together: neither is written when either cannot be
// (a folder in the way would fail the second after the first was replaced).
void check_replaceable(const fs::path& path) {
  std::error_code error;
  const auto status = fs::symlink_status(path, error);
  if (fs::exists(status) && !fs::is_regular_file(status)) {
    throw FileError("'" + path.string() + "' is in the way of the merged table (it is not a regular file)");
  }
}

// Keys and messages come from files: no terminal control characters reach the console.
std::string printable(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return text;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// The keys of the complete result folders: visible folders that hold their candidates.
std::set<std::string> complete_folders(const std::string& run_folder) {
  std::set<std::string> keys;
  for (const auto& entry : fs::directory_iterator(run_folder)) {
    const std::string name = entry.path().filename().string();
    std::error_code error;
    if (name[0] != '.' && entry.is_directory(error) && fs::exists(entry.path() / kResultsFile, error)) {
      keys.insert(name);
    }
  }
  return keys;
}

// Prefixes every line but the header of a scan's candidates table with its series UID.
void append_rows(std::string& table, const ScanResults& results, bool malignancy) {
  const std::string rows = candidates_csv(results.candidates, malignancy);
  std::istringstream lines(rows.substr(rows.find('\n') + 1));
  for (std::string line; std::getline(lines, line);) table += csv_field(results.series_uid) + "," + line + "\n";
}

std::string scans_csv(const std::vector<MergedScan>& scans) {
  std::string text = "scan,series_uid,status,shard,candidates,nodules,input,detail\n";
  for (const auto& scan : scans) {
    const bool done = scan.status == Status::done;
    text += csv_field(scan.key) + "," + csv_field(scan.series_uid) + "," + status_name(scan.status) + "," +
            scan.shard + "," + (done ? std::to_string(scan.candidates) : "") + "," +
            (done ? std::to_string(scan.nodules) : "") + "," + csv_field(scan.input) + "," +
            csv_field(scan.detail) + "\n";
  }
  return text;
}

}  // namespace

std::string status_name(Status status) {
  switch (status) {
    case Status::done: return "done";
    case Status::failed: return "failed";
    case Status::missing: return "missing";
  }
  return "?";
}

int64_t MergeReport::count(Status status) const {
  int64_t total = 0;
  for (const auto& scan : scans) total += scan.status == status;
  return total;
}

int64_t MergeReport::candidates() const {
  int64_t total = 0;
  for (const auto& scan : scans) total += scan.candidates;
  return total;
}

int64_t MergeReport::nodules() const {
  int64_t total = 0;
  for (const auto& scan : scans) total += scan.nodules;
  return total;
}

MergeReport merge_run(const std::string& run_folder,
                      const std::map<std::string, std::vector<ct::Annotation>>* annotations) {
  std::error_code error;
  if (!fs::is_directory(run_folder, error)) throw FileError("'" + run_folder + "' is not a folder");
  const auto plans = read_plans(run_folder);
  const auto failures = read_failures(run_folder);
  const auto complete = complete_folders(run_folder);
  if (plans.empty() && failures.empty() && complete.empty()) {
    throw FileError("'" + run_folder + "' holds no ct-segment run (no plans, results or failures)");
  }
  std::set<std::string> listed_folders;
  for (const auto& [key, plan] : plans) {
    if (!plan.listed_from.empty()) listed_folders.insert(plan.listed_from);
  }
  std::map<std::string, MergedScan> scans;
  for (const auto& [key, plan] : plans) {
    if (listed_folders.count(key)) continue;  // its series stand for it
    auto& scan = scans[key];
    scan.input = plan.label;
    scan.shard = std::to_string(plan.shard) + "/" + std::to_string(plan.shards);
    scan.detail = plan.listed_from.empty() && key.rfind("input_", 0) == 0
                      ? "no process listed or completed it (shard " + scan.shard + ")"
                      : "no process completed it (shard " + scan.shard + ")";
  }
  for (const auto& [key, failure] : failures) {
    auto& scan = scans[key];
    scan.status = Status::failed;
    if (scan.input.empty()) scan.input = failure.label;
    scan.detail = failure.message + " (" + failure.who + ")";
  }

  MergeReport report;
  std::vector<ScanResults> done;
  for (const auto& key : complete) {
    auto& scan = scans[key];
    try {
      done.push_back(read_results(fs::path(run_folder) / key / kResultsFile, key));
    } catch (const FileError& damaged) {
      scan.status = Status::failed;
      scan.detail = std::string("its results are damaged: ") + damaged.what();
      continue;
    }
    const auto& results = done.back();
    scan.status = Status::done;
    scan.detail.clear();
    scan.series_uid = results.series_uid;
    scan.candidates = static_cast<int64_t>(results.candidates.size());
    for (const auto& candidate : results.candidates) scan.nodules += candidate.nodule_probability > 0.5;
  }

  bool malignancy = false;
  for (const auto& results : done) malignancy = malignancy || results.malignancy;
  std::string table = "series_uid," + candidates_csv({}, malignancy);
  for (const auto& results : done) append_rows(table, results, malignancy);
  if (annotations) {
    ct::Confusion confusion{};
    for (const auto& results : done) {
      const auto truth = annotations->find(results.series_uid);
      if (truth != annotations->end()) confusion += ct::match_and_score(results.candidates, truth->second);
    }
    report.confusion = confusion;
  }
  for (auto& [key, scan] : scans) {
    scan.key = key;
    report.scans.push_back(std::move(scan));
  }
  const fs::path candidates_path = fs::path(run_folder) / "candidates.csv";
  const fs::path scans_path = fs::path(run_folder) / "scans.csv";
  check_replaceable(candidates_path);
  check_replaceable(scans_path);
  write_file_atomically(candidates_path.string(), table);
  write_file_atomically(scans_path.string(), scans_csv(report.scans));
  return report;
}

std::string format_merge_report(const MergeReport& report, bool every_scan) {
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-64s %-8s %10s %8s  %s\n", "scan", "status", "candidates", "nodules", "detail");
  out << line;
  for (const auto& scan : report.scans) {
    if (!every_scan && scan.status == Status::done) continue;
    const bool done = scan.status == Status::done;
    std::snprintf(line, sizeof line, "%-64s %-8s %10s %8s  %s\n", printable(scan.key.substr(0, 64)).c_str(),
                  status_name(scan.status).c_str(), done ? std::to_string(scan.candidates).c_str() : "",
                  done ? std::to_string(scan.nodules).c_str() : "", printable(scan.detail.substr(0, 200)).c_str());
    out << line;
  }
  out << "\n" << report.scans.size() << " scans: " << report.count(Status::done) << " done, "
      << report.count(Status::failed) << " failed, " << report.count(Status::missing) << " missing; "
      << report.candidates() << " candidates, " << report.nodules() << " with nodule probability > 0.5\n";
  if (report.confusion) out << "\nDetections against the annotations:\n" << ct::format_confusion(*report.confusion);
  return out.str();
}

}  // namespace dlwpt::ct_segment
