// DICOM from untrusted bytes, through the readers ct-segment uses: the bytes as one file of a
// folder, listed with list_dicom_series and read with read_dicom_series. Only dlwpt::Error is
// an expected outcome; anything else (GDCM's assertions included) is a crash.

#include "dlwpt/ct/scan_io.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

constexpr int64_t kFuzzMaxVoxels = int64_t{1} << 20;  // every input's allocation stays small

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string folder = dlwpt::fuzz::input_folder();
  dlwpt::fuzz::write_bytes(folder + "/slice.dcm", data, size);
  try {
    for (const auto& uid : dlwpt::ct::list_dicom_series(folder)) {
      try {
        dlwpt::ct::read_dicom_series(folder, uid, kFuzzMaxVoxels);
      } catch (const dlwpt::Error&) {
      }
    }
  } catch (const dlwpt::Error&) {
  }
  return 0;
}
