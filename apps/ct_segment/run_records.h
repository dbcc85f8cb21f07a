#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "apps/ct_segment/scan_sources.h"

namespace dlwpt::ct_segment {

/// What a run's output folder records besides the scans' own folders, so that `--merge` can
/// tell done, failed and missing scans apart after any number of processes, shards and reruns
/// (all files are written atomically; scan_output.h has the scans' folders):
/// - `.plans/<hash>.tsv`: the scans a run's inputs name, each with its key and shard. Every
///   process of a job array writes the same list, which lands in one file (named by the hash
///   of its content); a later run with other inputs adds another. A DICOM folder is one entry
///   until the process of its shard lists its series, which then records them in a plan of its
///   own, each naming the folder it was listed from.
/// - `.failed/<key>.txt`: why the last attempt at a scan failed, and by whom; removed when the
///   scan completes.

/// A scan of a recorded plan.
struct PlannedScan {
  std::string key;    ///< scan_key: its results folder, or "input_..." for inputs naming no scan
  std::string label;  ///< the input, for people
  int64_t shard = 0;
  int64_t shards = 1;
  std::string listed_from;  ///< the key of the DICOM folder it was listed from, or ""
};

/// Records the plan of a run: all the scans of its inputs (DICOM folders unlisted), or the
/// series a process listed from its shard's DICOM folders.
void record_plan(const std::string& run_folder, const std::vector<ScanSource>& scans, int64_t shard_count);

/// The scans of every plan recorded in the run folder, by key (a key in several plans takes
/// the plan written last). Throws FileError for an unreadable or malformed plan.
std::map<std::string, PlannedScan> read_plans(const std::string& run_folder);

/// The last failure of a scan.
struct FailureRecord {
  std::string label;
  std::string message;  ///< the error's first line
  std::string who;      ///< "host pid 123"
};

/// The bytes of a run's record or result file, which must be a regular file (a FIFO would
/// block, /dev/zero never end) of at most `max_bytes`; FileError naming `role` and the path
/// otherwise.
std::string read_run_file(const std::string& path, const std::string& role, uintmax_t max_bytes);

void record_failure(const std::string& run_folder, const std::string& key, const FailureRecord& failure);
void clear_failure(const std::string& run_folder, const std::string& key);
std::map<std::string, FailureRecord> read_failures(const std::string& run_folder);

}  // namespace dlwpt::ct_segment
