#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dlwpt/ct/annotations.h"
#include "dlwpt/ct/scoring.h"

namespace dlwpt::ct_segment {

/// One scan of a run, as `ct-segment --merge` finds it.
struct MergedScan {
  enum class Status { done, failed, missing };
  std::string key;         ///< its results folder (run_records.h)
  std::string series_uid;  ///< from its candidates.json (done scans)
  Status status = Status::missing;
  std::string input;       ///< the input it came from, when a plan or failure recorded it
  std::string detail;      ///< a failure's message, or which shard never completed it
  std::string shard;       ///< "K/N" of the plan that holds it ("" when none does)
  int64_t candidates = 0;
  int64_t nodules = 0;     ///< candidates with nodule probability > 0.5
};

std::string status_name(MergedScan::Status status);

/// Every scan of a run folder, whichever process, shard or rerun wrote it.
struct MergeReport {
  std::vector<MergedScan> scans;  ///< by key
  int64_t count(MergedScan::Status status) const;
  int64_t candidates() const;
  int64_t nodules() const;
  /// Over the done scans with annotations, when annotations were given.
  std::optional<ct::Confusion> confusion;
};

/// Reads a run folder: its scans are those of its recorded plans, complete result folders and
/// failure records; each is done (a complete folder), failed (a failure record) or missing
/// (planned, and neither). Writes into the run folder, atomically:
/// - `candidates.csv`: every candidate of every done scan, its series UID first, then the
///   columns of the scans' own candidates.csv (a malignancy column when any scan has one);
/// - `scans.csv`: scan, series_uid, status, shard, candidates, nodules, input, detail.
/// With `annotations`, the book's confusion table over the done scans they cover. Throws
/// FileError for a folder that is no run (nothing recorded and no results) or a bad record.
MergeReport merge_run(const std::string& run_folder,
                      const std::map<std::string, std::vector<ct::Annotation>>* annotations = nullptr);

/// The report as a table for people: one line per scan that is not done (all scans when
/// `every_scan`), then the totals and the confusion table.
std::string format_merge_report(const MergeReport& report, bool every_scan);

}  // namespace dlwpt::ct_segment
