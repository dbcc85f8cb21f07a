#include "dlwpt/weights/zip_directory.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "dlwpt/weights/numbers.h"


namespace dlwpt::weights {

namespace {

constexpr uint32_t kEndSignature = 0x06054b50;          // "PK\5\6"
constexpr uint32_t kZip64EndSignature = 0x06064b50;     // "PK\6\6"
constexpr uint32_t kZip64LocatorSignature = 0x07064b50; // "PK\6\7"
constexpr uint32_t kEntrySignature = 0x02014b50;        // "PK\1\2"
constexpr size_t kEndSize = 22;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kZip64EndSize = 56;
constexpr size_t kEntrySize = 46;
constexpr size_t kMaxCommentSize = 0xFFFF;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint32_t kZip64Marker32 = 0xFFFFFFFF;
constexpr uint16_t kZip64Marker16 = 0xFFFF;

// The little-endian field of `width` bytes of `bytes` at `at`; the caller checks the bounds.
uint64_t field(const std::string& bytes, size_t at, size_t width) {
  return little_endian(bytes.data() + at, width);
}

class ZipFile {
 public:
  explicit ZipFile(const std::string& path) : path_(path), file_(path, std::ios::binary) {
    if (!file_) fail("cannot be opened");
    file_.seekg(0, std::ios::end);
    size_ = static_cast<uint64_t>(file_.tellg());
  }

  uint64_t size() const { return size_; }

  // `count` bytes at `offset`, which must lie within the file.
  std::string read(uint64_t offset, uint64_t count, const char* what) {
    if (offset > size_ || count > size_ - offset) fail(std::string(what) + " lies past its end");
    std::string bytes(static_cast<size_t>(count), '\0');
    file_.seekg(static_cast<std::streamoff>(offset));
    file_.read(bytes.data(), static_cast<std::streamsize>(count));
    if (!file_) fail(std::string("cannot read its ") + what);
    return bytes;
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw ZipFormatError(path_, "not a valid ZIP file: " + problem);
  }

 private:
  std::string path_;
  std::ifstream file_;
  uint64_t size_ = 0;
};

struct Directory {
  uint64_t entries = 0;
  uint64_t size = 0;
  uint64_t offset = 0;
};

// The last end-of-directory record, and its ZIP64 counterpart when its fields say so.
Directory find_directory(ZipFile& zip) {
  const uint64_t tail_size = std::min<uint64_t>(zip.size(), kEndSize + kMaxCommentSize);
  const uint64_t tail_offset = zip.size() - tail_size;
  const std::string tail = zip.read(tail_offset, tail_size, "end");
  if (tail.size() < kEndSize) zip.fail("it is too short");
  size_t end = tail.size() - kEndSize + 1;
  do {
    --end;
  } while (end > 0 && field(tail, end, 4) != kEndSignature);
  if (field(tail, end, 4) != kEndSignature) zip.fail("it has no end-of-directory record");
  Directory directory{field(tail, end + 10, 2), field(tail, end + 12, 4), field(tail, end + 16, 4)};
  const bool zip64 = directory.entries == kZip64Marker16 || directory.size == kZip64Marker32 ||
                     directory.offset == kZip64Marker32;
  if (zip64) {
    const uint64_t end_offset = tail_offset + end;
    if (end_offset < kZip64LocatorSize) zip.fail("its ZIP64 locator is missing");
    const std::string locator =
        zip.read(end_offset - kZip64LocatorSize, kZip64LocatorSize, "ZIP64 locator");
    if (field(locator, 0, 4) != kZip64LocatorSignature) zip.fail("its ZIP64 locator is missing");
    const std::string end64 = zip.read(field(locator, 8, 8), kZip64EndSize, "ZIP64 end record");
    if (field(end64, 0, 4) != kZip64EndSignature) zip.fail("its ZIP64 end record is malformed");
    directory = {field(end64, 32, 8), field(end64, 40, 8), field(end64, 48, 8)};
  }
  if (directory.entries > directory.size / kEntrySize) {
    zip.fail("its directory claims more entries than it can hold");
  }
  return directory;
}

// The ZIP64 extra field replaces, in this order, each size or offset that reads 0xFFFFFFFF.
void apply_zip64_extra(const std::string& extra, ZipRecord& record, ZipFile& zip) {
  size_t at = 0;
  while (at + 4 <= extra.size()) {
    const uint64_t id = field(extra, at, 2);
    const uint64_t length = field(extra, at + 2, 2);
    if (at + 4 + length > extra.size()) zip.fail("an extra field of '" + record.name + "' is cut");
    if (id == kZip64ExtraId) {
      size_t value = at + 4;
      for (uint64_t* target : {&record.size, &record.compressed_size, &record.offset}) {
        if (*target != kZip64Marker32) continue;
        if (value + 8 > at + 4 + length) zip.fail("the ZIP64 field of '" + record.name + "' is cut");
        *target = field(extra, value, 8);
        value += 8;
      }
    }
    at += 4 + length;
  }
}

}  // namespace

ZipFormatError::ZipFormatError(const std::string& path, const std::string& problem)
    : ArchiveError("weights archive '" + path + "' is " + problem), problem_(problem) {}

std::vector<ZipRecord> read_zip_directory(const std::string& path) {
  ZipFile zip(path);
  const Directory directory = find_directory(zip);
  const std::string bytes = zip.read(directory.offset, directory.size, "directory");
  std::vector<ZipRecord> records;
  size_t at = 0;
  for (uint64_t entry = 0; entry < directory.entries; ++entry) {
    if (at + kEntrySize > bytes.size() || field(bytes, at, 4) != kEntrySignature) {
      zip.fail("directory entry " + std::to_string(entry) + " is malformed");
    }
    const size_t name_length = field(bytes, at + 28, 2);
    const size_t extra_length = field(bytes, at + 30, 2);
    const size_t comment_length = field(bytes, at + 32, 2);
    const size_t next = at + kEntrySize + name_length + extra_length + comment_length;
    if (next > bytes.size()) zip.fail("directory entry " + std::to_string(entry) + " is cut");
    ZipRecord record;
    record.name = bytes.substr(at + kEntrySize, name_length);
    record.method = static_cast<uint16_t>(field(bytes, at + 10, 2));
    record.compressed_size = field(bytes, at + 20, 4);
    record.size = field(bytes, at + 24, 4);
    record.offset = field(bytes, at + 42, 4);
    apply_zip64_extra(bytes.substr(at + kEntrySize + name_length, extra_length), record, zip);
    records.push_back(std::move(record));
    at = next;
  }
  return records;
}

void check_zip_records(const std::string& path) {
  // Deflate writes at least one bit per 258 repeated bytes: no record inflates by more.
  constexpr uint64_t kMaxDeflateRatio = 1032;
  // torch.jit.save deflates only TorchScript code and debug information (a few KB for these
  // models) and stores tensors: a deflated record larger than this is not an archive's.
  constexpr uint64_t kMaxDeflatedSize = uint64_t{64} << 20;
  const uint64_t file_size = ZipFile(path).size();
  for (const ZipRecord& record : read_zip_directory(path)) {
    const std::string named = "weights archive '" + path + "': its record '" + record.name + "'";
    if (record.offset > file_size || record.compressed_size > file_size - record.offset) {
      throw ArchiveError(named + " claims " + std::to_string(record.compressed_size) +
                         " bytes past its offset, more than the file's " +
                         std::to_string(file_size));
    }
    const bool stored = record.method == 0;
    const bool deflated = record.method == 8;
    if (!stored && !deflated) {
      throw ArchiveError(named + " uses compression method " + std::to_string(record.method) +
                         "; weight archives store or deflate their records");
    }
    const uint64_t most =
        stored ? record.compressed_size
               : std::min(record.compressed_size * kMaxDeflateRatio, kMaxDeflatedSize);
    if (record.size > most) {
      throw ArchiveError(named + " claims " + std::to_string(record.size) + " bytes from " +
                         std::to_string(record.compressed_size) + (stored ? " stored" : " deflated") +
                         " ones: corrupt");
    }
  }
}

}  // namespace dlwpt::weights
