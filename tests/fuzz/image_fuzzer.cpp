// JPEG and PNG files from untrusted bytes, through the reader zebraify and its viewer use (the
// format is told by content, so one target covers both decoders).

#include "apps/common/image_io.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

// Below the apps' default: the limit's check is what a fuzzer should reach, and decoding costs
// time in proportion to the pixels, which would slow every run for nothing found.
constexpr int64_t kFuzzMaxPixels = 4'000'000;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dlwpt::fuzz::input_file(data, size, ".img");
  dlwpt::apps::ImageReadOptions options;
  options.max_pixels = kFuzzMaxPixels;
  try {
    dlwpt::apps::load_image(path, options);
  } catch (const dlwpt::Error&) {
  }
  return 0;
}
