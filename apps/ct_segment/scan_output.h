#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "apps/common/files.h"

namespace dlwpt::ct_segment {

/// The folder name of a scan's results: its series UID (or MetaImage stem) with characters
/// other than letters, digits, '.', '-' and '_' replaced by '_'. When that replacement changed
/// anything, a hash of the original name is appended ("x_y-1a2b3c4d"), so that two scans whose
/// names differ only in such characters ("x y" and "x_y") never share a folder. Hidden names
/// and the merge's table names (candidates.csv, scans.csv) also gain the hash.
std::string scan_folder_name(const std::string& series_uid);

/// FNV-1a of the bytes: the same in every process, on every host and in every build (std::hash
/// is not), for names that concurrent runs must agree on.
uint32_t stable_hash(const std::string& text);
/// stable_hash as 8 hex digits.
std::string stable_hash_hex(const std::string& text);

/// One scan's results inside a run's output folder, and the protocol that lets any number of
/// ct-segment processes (on one machine or on many, over a shared filesystem) work on one
/// output folder without corrupting, skipping or duplicating a scan:
/// - a scan's folder exists under its final name only when complete: results are written into
///   a partial folder unique to the process and renamed when done;
/// - a process works on a scan only while it holds the scan's claim, an exclusive POSIX lock
///   (fcntl) on `.claims/<name>.lock`; the kernel (or the NFS lock manager) drops it when the
///   process ends, even by kill -9, so a crashed run's scans are free again at once;
/// - the claim file records the holder's host and pid for the messages of the others;
/// - a complete folder records where its scan came from (`source.txt`), so that another input
///   with the same name is reported instead of silently taken as done.
class ScanOutput {
 public:
  ScanOutput(std::string run_folder, const std::string& series_uid);
  ScanOutput(ScanOutput&& other) noexcept;
  ScanOutput& operator=(ScanOutput&&) = delete;
  ScanOutput(const ScanOutput&) = delete;
  ScanOutput& operator=(const ScanOutput&) = delete;
  ~ScanOutput();  ///< releases the claim and removes an unpublished partial folder

  const std::string& name() const { return name_; }
  std::string final_folder() const;
  bool complete() const;
  /// The source a complete folder recorded, when it recorded one.
  std::optional<std::string> recorded_source() const;

  /// Takes the claim for `source` without waiting. Returns nullopt when taken, otherwise the
  /// live holder (its note: the identity of the scan it works on). Throws FileError when the
  /// filesystem refuses locks.
  std::optional<apps::FileLock::Holder> try_claim(const std::string& source);

  /// A fresh folder, unique to this process, for the results (claimed scans only); partial
  /// folders that crashed runs left for this scan are removed first.
  std::string start_partial();

  /// Records `source` and renames the partial folder to the final name, replacing a complete
  /// folder only when `replace` (--force).
  void publish(const std::string& source, bool replace);

 private:
  std::string run_folder_;
  std::string name_;
  apps::FileLock claim_;
  std::string partial_;
};

}  // namespace dlwpt::ct_segment
