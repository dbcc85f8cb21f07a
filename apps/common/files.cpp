#include "apps/common/files.h"

#include <filesystem>
#include <stdexcept>

#include <unistd.h>

namespace dlwpt::apps {

namespace fs = std::filesystem;

bool same_file(const std::string& a, const std::string& b) {
  std::error_code error;
  return fs::exists(a, error) && fs::exists(b, error) && fs::equivalent(a, b, error);
}

}  // namespace dlwpt::apps
