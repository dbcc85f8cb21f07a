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
  /// For a folder that is not yet known to hold MetaImage files, a DICOM folder whose series
  /// are not listed yet: lists them (list_dicom_folders). Listing reads the header of every
  /// file, so a process that does one shard of a large archive lists only its own folders.
  std::function<std::vector<ScanSource>()> list_series;
  /// The unlisted DICOM folder this scan was listed from (its scan_key), or "".
  std::string listed_from;
};

/// Expands the command line's inputs into scans: a .mhd/.mha file is one scan; a folder of
/// MetaImage files gives each of them; any other folder is a DICOM folder whose series are
/// listed later (list_dicom_folders); `@FILE` reads one input per line of FILE (blank lines
/// and # comments skipped; a list may name other lists, but not itself, directly or through
/// others). An input that is none of these, and a second scan whose results would go to the
/// folder of an earlier one (`a/scan.mhd` and `b/scan.mhd`), becomes a scan whose reading fails
/// with the reason, so that the rest of the batch goes on. Throws only for an unreadable list
/// or a list that includes itself. Each scan is read with at most `max_voxels` voxels.
std::vector<ScanSource> collect_scans(const std::vector<std::string>& inputs,
                                      const std::string& series_uid = "",
                                      int64_t max_voxels = ct::kDefaultMaxVoxels);

/// What a scan is recorded by before it is read: the name of its results folder
/// (scan_folder_name of its series UID), or, for an input that names no scan yet (an unlisted
/// DICOM folder, an unreadable input), a name made from the input ("input_" and its sanitized
/// text, with a hash).
std::string scan_key(const ScanSource& scan);

/// `scans` with each unlisted DICOM folder replaced by one scan per series in it (only
/// `series_uid` when collect_scans was given one), or by a scan that fails with the reason
/// when it holds none; then the output-name collisions are checked again.
std::vector<ScanSource> list_dicom_folders(const std::vector<ScanSource>& scans);

}  // namespace dlwpt::ct_segment
