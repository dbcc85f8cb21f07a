#pragma once

#include <functional>
#include <string>
#include <vector>

#include "dlwpt/ct/scan_io.h"

namespace dlwpt::ct_segment {

/// One scan of a batch: a name for the log and a way to read it when its turn comes.
struct ScanSource {
  std::string label;  ///< the file, or the DICOM folder with its series UID
  std::function<ct::CtVolume()> read;
  /// The series UID the scan will have once read (a MetaImage file's stem, a DICOM series'
  /// UID), known without reading it; empty for an input that names no scan.
  std::string series_uid;
  /// What the scan is, recorded with its results: a MetaImage file's absolute path, or
  /// "DICOM series <uid>" (a series UID names one scan wherever its files lie).
  std::string identity;
};

/// Expands the command line's inputs into scans: a .mhd/.mha file is one scan; a folder with
/// DICOM images gives one scan per series (only `series_uid` when given); a folder of
/// MetaImage files gives each of them; `@FILE` reads one input per line of FILE (blank lines
/// and # comments skipped; a list may name other lists, but not itself, directly or through
/// others). An input that is none of these, and a second scan whose results would go to the
/// folder of an earlier one (`a/scan.mhd` and `b/scan.mhd`), becomes a scan whose reading fails
/// with the reason, so that the rest of the batch goes on. Throws only for an unreadable list
/// or a list that includes itself. Each scan is read with at most `max_voxels` voxels.
std::vector<ScanSource> collect_scans(const std::vector<std::string>& inputs,
                                      const std::string& series_uid = "",
                                      int64_t max_voxels = ct::kDefaultMaxVoxels);

}  // namespace dlwpt::ct_segment
