#include "apps/ct_segment/scan_sources.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "apps/ct_segment/scan_output.h"

#include "dlwpt/ct/scan_io.h"

namespace dlwpt::ct_segment {

namespace fs = std::filesystem;

namespace {

bool is_metaimage(const fs::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return extension == ".mhd" || extension == ".mha";
}

ScanSource metaimage_source(const std::string& path, int64_t max_voxels) {
  std::error_code error;
  const fs::path absolute = fs::weakly_canonical(fs::absolute(path), error);
  return {path, [path, max_voxels] { return ct::read_metaimage(path, max_voxels); }, fs::path(path).stem().string(),
          error ? fs::absolute(path).string() : absolute.string(), nullptr, ""};
}

ScanSource dicom_source(const std::string& folder, const std::string& uid, int64_t max_voxels) {
  return {folder + " (series " + uid + ")",
          [folder, uid, max_voxels] { return ct::read_dicom_series(folder, uid, max_voxels); }, uid, "DICOM series " + uid,
          nullptr, ""};
}

// An input that names no readable scan still takes its place in the batch, failing alone.
ScanSource failing_source(const std::string& label, const std::string& message) {
  return {label, [message]() -> ct::CtVolume { throw ct::ScanError(message); }, "", "", nullptr, ""};
}

std::vector<ScanSource> dicom_folder_series(const std::string& folder, const std::string& series_uid,
                                            int64_t max_voxels) {
  const auto uids = ct::list_dicom_series(folder);
  if (uids.empty()) return {failing_source(folder, "folder '" + folder + "' holds no MetaImage or DICOM scan")};
  std::vector<ScanSource> scans;
  for (const auto& uid : uids) {
    if (series_uid.empty() || uid == series_uid) scans.push_back(dicom_source(folder, uid, max_voxels));
  }
  if (scans.empty()) return {failing_source(folder, "folder '" + folder + "' holds no DICOM series " + series_uid)};
  return scans;
}

// A DICOM folder as one entry until it is listed; its reading, were it ever read unlisted,
// fails (list_dicom_folders replaces it first).
ScanSource unlisted_dicom_folder(const std::string& folder, const std::string& series_uid, int64_t max_voxels) {
  ScanSource source = failing_source(folder, "DICOM folder '" + folder + "' was not listed");
  source.list_series = [folder, series_uid, max_voxels] {
    try {
      return dicom_folder_series(folder, series_uid, max_voxels);
    } catch (const std::exception& error) {
      return std::vector<ScanSource>{failing_source(folder, error.what())};
    }
  };
  return source;
}

// The list files being expanded, outermost first, to refuse a list that includes itself.
using ListChain = std::vector<fs::path>;

fs::path list_identity(const std::string& path) {
  std::error_code error;
  const fs::path canonical = fs::canonical(path, error);
  if (error) throw ct::ScanError("cannot read the list file '" + path + "': " + error.message());
  return canonical;
}

// Later scans whose results would land in the folder of an earlier one fail alone, named.
void fail_duplicate_outputs(std::vector<ScanSource>& scans) {
  std::map<std::string, const ScanSource*> first_by_folder;
  for (auto& scan : scans) {
    if (scan.series_uid.empty()) continue;
    const std::string folder = scan_folder_name(scan.series_uid);
    const auto [first, inserted] = first_by_folder.emplace(folder, &scan);
    // The same scan named twice is done once, then found complete.
    if (inserted || scan.identity == first->second->identity) continue;
    scan = failing_source(scan.label, "its results would go to '" + folder + "', as those of " +
                                          first->second->label + " (scans of one output folder "
                                          "need distinct names: rename one, or use two runs)");
  }
}

std::vector<std::string> read_list_file(const std::string& path) {
  require_regular_file(path, "list file");
  std::ifstream file(path);
  if (!file) throw ct::ScanError("cannot read the list file '" + path + "'");
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) {
    line.erase(0, line.find_first_not_of(" \t"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  }
  return lines;
}

void add_folder(const std::string& folder, const std::string& series_uid, int64_t max_voxels,
                std::vector<ScanSource>& scans) {
  std::vector<std::string> metaimages;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file() && is_metaimage(entry.path())) metaimages.push_back(entry.path().string());
  }
  std::sort(metaimages.begin(), metaimages.end());
  for (const auto& path : metaimages) scans.push_back(metaimage_source(path, max_voxels));
  if (metaimages.empty()) scans.push_back(unlisted_dicom_folder(folder, series_uid, max_voxels));
}

void add_inputs(const std::vector<std::string>& inputs, const std::string& series_uid,
                int64_t max_voxels, ListChain& lists, std::vector<ScanSource>& scans) {
  for (const auto& input : inputs) {
    if (!input.empty() && input[0] == '@') {
      const fs::path list = list_identity(input.substr(1));
      if (std::find(lists.begin(), lists.end(), list) != lists.end()) {
        throw ct::ScanError("the list file '" + input.substr(1) + "' includes itself" +
                            (lists.back() == list ? "" : " (through " + lists.back().string() + ")"));
      }
      lists.push_back(list);
      add_inputs(read_list_file(list.string()), series_uid, max_voxels, lists, scans);
      lists.pop_back();
    } else if (std::error_code error; fs::is_directory(input, error)) {
      try {
        add_folder(input, series_uid, max_voxels, scans);
      } catch (const std::exception& error) {
        scans.push_back(failing_source(input, error.what()));
      }
    } else if (is_metaimage(input)) {
      scans.push_back(metaimage_source(input, max_voxels));  // a missing file fails when read, alone
    } else if (const auto problem = regular_file_problem(input)) {  // missing, a link loop, a pipe
      scans.push_back(failing_source(input, "'" + input + "' " + *problem));
    } else {
      scans.push_back(failing_source(
          input, "'" + input + "' is neither a MetaImage file (.mhd, .mha) nor a folder"));
    }
  }
}

}  // namespace

std::string scan_key(const ScanSource& scan) {
  if (!scan.series_uid.empty()) return scan_folder_name(scan.series_uid);
  // The space makes the name unsafe, so it always gains a hash of the whole input.
  return scan_folder_name("input " + scan.label);
}

std::vector<ScanSource> list_dicom_folders(const std::vector<ScanSource>& scans) {
  std::vector<ScanSource> listed;
  for (const auto& scan : scans) {
    if (!scan.list_series) {
      listed.push_back(scan);
      continue;
    }
    for (auto& series : scan.list_series()) {
      // A folder that fails to list keeps its own key, so that its failure is recorded under it.
      if (!series.series_uid.empty()) series.listed_from = scan_key(scan);
      listed.push_back(std::move(series));
    }
  }
  fail_duplicate_outputs(listed);
  return listed;
}

std::vector<ScanSource> collect_scans(const std::vector<std::string>& inputs,
                                      const std::string& series_uid, int64_t max_voxels) {
  std::vector<ScanSource> scans;
  ListChain lists;
  add_inputs(inputs, series_uid, max_voxels, lists, scans);
  fail_duplicate_outputs(scans);
  return scans;
}

}  // namespace dlwpt::ct_segment
