// CSV tables from untrusted bytes, through the readers the apps use: LUNA annotations
// (ct-segment --annotations) and labelled candidates (train).

#include "dlwpt/ct/annotations.h"
#include "dlwpt/ct/csv_table.h"
#include "tests/fuzz/fuzz_support.h"
#include "dlwpt/training/chunk_dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dlwpt::fuzz::input_file(data, size, ".csv");
  try {
    dlwpt::ct::read_annotations(path);
  } catch (const dlwpt::Error&) {
  }
  try {
    dlwpt::training::read_labelled_candidates(path, "class");
  } catch (const dlwpt::Error&) {
  }
  return 0;
}
