// MetaImage scans from untrusted bytes, through the reader ct-segment uses: the bytes as one
// .mha (header and LOCAL data), and split after the ElementDataFile line into fuzz.mhd and
// fuzz.raw (seeds name "ElementDataFile = fuzz.raw"), so external, LIST and pattern data are
// reached too. Only dlwpt::Error is an expected outcome; anything else is a crash.

#include <filesystem>
#include <string_view>

#include "dlwpt/ct/scan_io.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

// A small limit keeps every input's allocation small; sizes above it are a LimitError.
constexpr int64_t kFuzzMaxVoxels = int64_t{1} << 20;

void read(const std::string& path) {
  try {
    dlwpt::ct::read_metaimage(path, kFuzzMaxVoxels);
  } catch (const dlwpt::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string folder = dlwpt::fuzz::input_folder();
  dlwpt::fuzz::write_bytes(folder + "/fuzz.mha", data, size);
  read(folder + "/fuzz.mha");

  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const size_t key = bytes.find("ElementDataFile");
  const size_t end = key == std::string_view::npos ? std::string_view::npos : bytes.find('\n', key);
  if (end == std::string_view::npos) return 0;
  dlwpt::fuzz::write_bytes(folder + "/fuzz.mhd", data, end + 1);
  dlwpt::fuzz::write_bytes(folder + "/fuzz.raw", data + end + 1, size - end - 1);
  read(folder + "/fuzz.mhd");
  return 0;
}
