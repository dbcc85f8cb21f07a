#include "dlwpt/ct/scan_library.h"

#include <algorithm>
#include <filesystem>

#include "dlwpt/ct/scan_io.h"

namespace dlwpt::ct {

namespace fs = std::filesystem;

ScanLibrary::ScanLibrary(const std::string& root, size_t cached) : cached_(std::max<size_t>(1, cached)) {
  if (!fs::is_directory(root)) throw ScanError("scan folder '" + root + "' does not exist");
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() && entry.path().extension() == ".mhd") {
      paths_.emplace(entry.path().stem().string(), entry.path().string());
    }
  }
  if (paths_.empty()) throw ScanError("scan folder '" + root + "' holds no .mhd scans");
}

bool ScanLibrary::has(const std::string& series_uid) const { return paths_.count(series_uid) > 0; }

std::shared_ptr<const CtVolume> ScanLibrary::get(const std::string& series_uid) {
  const auto path = paths_.find(series_uid);
  if (path == paths_.end()) throw ScanError("no scan of series " + series_uid);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto entry = recent_.begin(); entry != recent_.end(); ++entry) {
      if (entry->first != series_uid) continue;
      recent_.splice(recent_.begin(), recent_, entry);
      return recent_.front().second;
    }
  }
  // Read outside the lock: other workers go on with cached scans meanwhile.
  auto volume = std::make_shared<const CtVolume>(read_scan(path->second));
  std::lock_guard<std::mutex> lock(mutex_);
  recent_.emplace_front(series_uid, volume);
  while (recent_.size() > cached_) recent_.pop_back();
  return volume;
}

}  // namespace dlwpt::ct
