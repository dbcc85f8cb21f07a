#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "apps/ct_segment/scan_sources.h"

namespace dlwpt::ct_segment {

/// The part of a batch one process does: the scans whose shard key hashes to `index` modulo
/// `count`. The rule depends only on that key (shard_key), never on a scan's position in the
/// inputs, so every process of a job array agrees on it, and adding scans to a run does not
/// move old ones to other shards.
struct Shard {
  int64_t index = 0;   ///< 0 .. count - 1
  int64_t count = 1;
  std::string origin;  ///< where it came from, for the log: "--shard", "SLURM_ARRAY_TASK_ID=4", ...

  bool whole() const { return count == 1; }
  std::string describe() const;  ///< "shard 2/3 (SLURM_ARRAY_TASK_ID=2)", as --shard K/N
};

/// The most shards a run may have (a job array of a million tasks is a mistake).
constexpr int64_t kMaxShards = 1000000;

/// Reads an environment variable; a function so that tests can give their own.
using Environment = std::function<std::optional<std::string>(const std::string& name)>;
Environment process_environment();

/// The shard of this process:
/// - `--shard K/N` (`flag`), K counted from 0; "all" for the whole batch whatever the
///   environment says;
/// - otherwise a Slurm job array's task: (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) /
///   SLURM_ARRAY_TASK_STEP of SLURM_ARRAY_TASK_COUNT (arrays such as 1-9:2 work; an array of
///   task IDs that is no range, such as 1,5,6, is refused: give --shard);
/// - otherwise a Kubernetes Indexed Job's JOB_COMPLETION_INDEX, of the count given by
///   `count_flag` (--shard-count) or DLWPT_SHARD_COUNT, which must equal the Job's completions;
/// - otherwise the whole batch.
/// `count_flag` also overrides the count of a Slurm array. Throws UsageError for malformed or
/// inconsistent values, naming the variable or flag.
Shard choose_shard(const std::optional<std::string>& flag, const std::optional<int64_t>& count_flag,
                   const Environment& environment);

/// What a scan is sharded by: its scan_key, or for the series of a DICOM folder the key of
/// the folder, so that only the process whose shard holds a folder reads its files to list
/// its series.
std::string shard_key(const ScanSource& scan);

/// The shard of a key among `count`: a stable hash (the same on every host and build), mixed
/// so that similar keys (series UIDs share long prefixes) spread evenly.
int64_t shard_of(const std::string& key, int64_t count);

/// The scans of `shard`, in their input order (DICOM folders unlisted or listed).
std::vector<ScanSource> scans_of_shard(const std::vector<ScanSource>& scans, const Shard& shard);

}  // namespace dlwpt::ct_segment
