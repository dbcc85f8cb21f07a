// Weights archives from untrusted bytes, through the loaders the apps use: read_archive (every
// tensor checked against its record), load_model<LunaModel> (the configuration's size checked
// before the model is built) and load_any_model (whichever model the configuration names).

#include "tests/fuzz/fuzz_support.h"
#include "dlwpt/weights/model_archive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dlwpt::fuzz::input_file(data, size, ".pt");
  try {
    dlwpt::weights::read_archive(path);
  } catch (const dlwpt::Error&) {
  }
  try {
    dlwpt::weights::load_model<dlwpt::LunaModel>(path);
  } catch (const dlwpt::Error&) {
  }
  try {
    dlwpt::weights::load_any_model(path);
  } catch (const dlwpt::Error&) {
  }
  return 0;
}
