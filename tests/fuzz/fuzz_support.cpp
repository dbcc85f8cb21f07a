#include "tests/fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <system_error>

#include <unistd.h>

namespace dlwpt::fuzz {

namespace {

// The files and folders this process wrote its inputs to, removed when it exits (libFuzzer
// ends a run with exit()); they were left behind in TMPDIR after every fuzzing run. Never
// destroyed, so that the exit handler can still read it.
std::set<std::string>& written_paths() {
  static auto* paths = new std::set<std::string>();
  static const bool cleaned_at_exit = [] {
    return std::atexit([] {
      std::error_code ignored;
      for (const auto& path : *paths) std::filesystem::remove_all(path, ignored);
    }) == 0;
  }();
  (void)cleaned_at_exit;
  return *paths;
}

std::string process_path(const std::string& suffix) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path =
      std::string(tmp && *tmp ? tmp : "/tmp") + "/dlwpt-fuzz-" + std::to_string(::getpid()) + suffix;
  written_paths().insert(path);
  return path;
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
