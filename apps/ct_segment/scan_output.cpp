#include "apps/ct_segment/scan_output.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <utility>

#include "dlwpt/weights/atomic_file.h"
#include "dlwpt/weights/errors.h"

namespace dlwpt::ct_segment {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSourceFile = "source.txt";
constexpr const char* kClaimFolder = ".claims";

bool is_safe_character(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void remove_quietly(const fs::path& path) {
  std::error_code ignored;
  fs::remove_all(path, ignored);
}

}  // namespace

uint32_t stable_hash(const std::string& text) {
  uint32_t hash = 2166136261u;
  for (const unsigned char c : text) hash = (hash ^ c) * 16777619u;
  return hash;
}

std::string stable_hash_hex(const std::string& text) {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", stable_hash(text));
  return hex;
}

std::string scan_folder_name(const std::string& series_uid) {
  std::string name;
  for (const char c : series_uid) name += is_safe_character(c) ? c : '_';
  // "." and ".." are folders of their own; hidden names are this protocol's; the merge's
  // tables are the run folder's own.
  const bool reserved = name == "candidates.csv" || name == "scans.csv";
  const bool changed = name != series_uid || name.empty() || name[0] == '.' || reserved;
  if (!changed) return name;
  if (!name.empty() && name[0] == '.') name[0] = '_';
  return (name.empty() ? "scan" : name) + "-" + stable_hash_hex(series_uid);
}

ScanOutput::ScanOutput(std::string run_folder, const std::string& series_uid)
    : run_folder_(std::move(run_folder)), name_(scan_folder_name(series_uid)) {}

ScanOutput::ScanOutput(ScanOutput&& other) noexcept
    : run_folder_(std::move(other.run_folder_)),
      name_(std::move(other.name_)),
      claim_(std::move(other.claim_)),
      partial_(std::move(other.partial_)) {}

ScanOutput::~ScanOutput() {
  if (!partial_.empty()) remove_quietly(partial_);
  claim_.release();
}

std::string ScanOutput::final_folder() const { return (fs::path(run_folder_) / name_).string(); }

bool ScanOutput::complete() const {
  std::error_code error;
  return fs::is_directory(final_folder(), error);
}

std::optional<std::string> ScanOutput::recorded_source() const {
  const fs::path path = fs::path(final_folder()) / kSourceFile;
  std::error_code error;
  if (!fs::is_regular_file(path, error)) return std::nullopt;
  std::string text = read_text(path);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::optional<apps::FileLock::Holder> ScanOutput::try_claim(const std::string& source) {
  const fs::path folder = fs::path(run_folder_) / kClaimFolder;
  fs::create_directories(folder);
  return claim_.try_lock((folder / (name_ + ".lock")).string(), source);
}

std::string ScanOutput::start_partial() {
  if (!claim_.held()) throw std::logic_error("start_partial needs the scan's claim");
  const std::string prefix = "." + name_ + ".partial-";
  for (const auto& entry : fs::directory_iterator(run_folder_)) {
    // Only a claim holder writes partial folders of this name, so these are a crash's.
    if (entry.path().filename().string().rfind(prefix, 0) == 0) remove_quietly(entry.path());
  }
  partial_ = (fs::path(run_folder_) / (prefix + unique_name_suffix())).string();
  fs::create_directories(partial_);
  return partial_;
}

void ScanOutput::publish(const std::string& source, bool replace) {
  if (partial_.empty()) throw std::logic_error("publish needs a partial folder");
  write_file_atomically((fs::path(partial_) / kSourceFile).string(), source + "\n");
  sync_to_disk(partial_);
  const fs::path target = final_folder();
  fs::path replaced;
  if (complete()) {
    if (!replace) throw FileError("'" + target.string() + "' appeared while this scan was written");
    replaced = fs::path(run_folder_) / ("." + name_ + ".replaced-" + unique_name_suffix());
    fs::rename(target, replaced);
  }
  fs::rename(partial_, target);
  partial_.clear();
  sync_to_disk(run_folder_);
  if (!replaced.empty()) remove_quietly(replaced);
}

}  // namespace dlwpt::ct_segment
