#pragma once

// The central directory of a ZIP file (the container of weight archives), read with a bounds
// check on every field, so that what a record claims can be checked before libtorch's reader
// allocates for it.

#include <cstdint>
#include <string>
#include <vector>

#include "dlwpt/weights/archive.h"

namespace dlwpt::weights {

/// The file is not a well-formed ZIP file; `problem()` says how, without the path.
class ZipFormatError : public ArchiveError {
 public:
  ZipFormatError(const std::string& path, const std::string& problem);
  const std::string& problem() const { return problem_; }

 private:
  std::string problem_;
};

/// One entry of a ZIP file's central directory.
struct ZipRecord {
  std::string name;
  uint16_t method = 0;           ///< 0: stored, 8: deflated
  uint64_t compressed_size = 0;  ///< bytes in the file
  uint64_t size = 0;             ///< bytes once extracted
  uint64_t offset = 0;           ///< of the record's local header
};

/// The entries of the ZIP file at `path` (ZIP64 sizes included), as a reader that trusts the
/// last end-of-directory record sees them; ZipFormatError names what is missing or malformed.
std::vector<ZipRecord> read_zip_directory(const std::string& path);

/// ArchiveError unless every record of the ZIP file at `path` lies within the file and claims
/// no more bytes than its stored or deflated data can give (at most 64 MiB for a deflated
/// one): libtorch's reader allocates what a record claims before it reads it (a 70 KB file
/// claiming 4 GB took them all).
void check_zip_records(const std::string& path);

}  // namespace dlwpt::weights
