// Runs a fuzz target without libFuzzer: over every file named on the command line and every
// file in the folders named there. A target that crashes fails the run, as it would fail the
// fuzzer; the count of inputs is printed so that an empty corpus cannot pass unnoticed.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

namespace {

void run_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  std::cout << "  " << path.filename().string() << " (" << bytes.size() << " bytes)\n" << std::flush;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  size_t inputs = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path argument(argv[i]);
    if (fs::is_directory(argument)) {
      std::vector<fs::path> files;
      for (const auto& entry : fs::recursive_directory_iterator(argument)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());
      for (const auto& file : files) run_file(file), ++inputs;
    } else if (fs::is_regular_file(argument)) {
      run_file(argument), ++inputs;
    } else {
      std::cerr << argv[0] << ": no such input '" << argument.string() << "'\n";
      return 2;
    }
  }
  std::cout << inputs << " inputs ran without a crash\n";
  return inputs > 0 ? 0 : 1;
}
