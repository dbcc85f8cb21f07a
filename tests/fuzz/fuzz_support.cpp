#include "tests/fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include <unistd.h>

namespace dlwpt::fuzz {

namespace {

std::string process_path(const std::string& suffix) {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp && *tmp ? tmp : "/tmp") + "/dlwpt-fuzz-" + std::to_string(::getpid()) + suffix;
}

}  // namespace

void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) throw std::runtime_error("cannot write the fuzz input " + path);
  const bool written = size == 0 || std::fwrite(data, 1, size, file) == size;
  if (std::fclose(file) != 0 || !written) throw std::runtime_error("cannot write the fuzz input " + path);
}

std::string input_file(const uint8_t* data, size_t size, const std::string& extension) {
  const std::string path = process_path(extension);
  write_bytes(path, data, size);
  return path;
}

std::string input_folder() {
  const std::string path = process_path(".d");
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  return path;
}

}  // namespace dlwpt::fuzz
