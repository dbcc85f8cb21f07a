#pragma once

#include <cstddef>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "dlwpt/ct/volume.h"

namespace dlwpt::ct {

/// CT scans by series UID: every `<uid>.mhd` below a folder (LUNA's subset0 .. subset9
/// layout), read on first use and kept, the `cached` most recent ones. Thread-safe: the
/// training datasets' loader workers share one.
class ScanLibrary {
 public:
  /// Throws ScanError when `root` is no folder or holds no .mhd scans.
  explicit ScanLibrary(const std::string& root, size_t cached = 8);

  bool has(const std::string& series_uid) const;
  size_t size() const { return paths_.size(); }
  /// The scan (read_scan); throws ScanError naming the UID when the folder has no such scan.
  std::shared_ptr<const CtVolume> get(const std::string& series_uid);

 private:
  std::map<std::string, std::string> paths_;
  size_t cached_;
  std::mutex mutex_;
  std::list<std::pair<std::string, std::shared_ptr<const CtVolume>>> recent_;
};

}  // namespace dlwpt::ct
