#include "apps/common/files.h"

#include <filesystem>
#include <stdexcept>

#include <unistd.h>

namespace dlwpt::apps {

namespace fs = std::filesystem;

void write_atomically(const std::string& path,
                      const std::function<void(const std::string& temporary)>& write) {
  const fs::path target(path);
  // Keep the extension last: writers such as CImg choose the format by it.
  const fs::path temporary = target.parent_path() /
                             ("." + target.stem().string() + ".partial-" +
                              std::to_string(::getpid()) + target.extension().string());
  try {
    write(temporary.string());
    fs::rename(temporary, target);
  } catch (...) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code error;
  return fs::exists(a, error) && fs::exists(b, error) && fs::equivalent(a, b, error);
}

}  // namespace dlwpt::apps
