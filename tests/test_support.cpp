#include "tests/test_support.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <sys/wait.h>

#include "test_paths.h"

namespace dlwpt::testing {

namespace fs = std::filesystem;

namespace {
// The environment variable when set, otherwise the build's default.
std::string setting(const char* variable, const char* build_default) {
  const char* value = std::getenv(variable);
  return value && *value ? value : build_default;
}
}  // namespace

std::string reference_dir() {
  return setting("DLWPT_REFERENCE_DIR", DLWPT_TEST_REFERENCE_DIR);
}

std::string reference_path(const std::string& file) {
  return (fs::path(reference_dir()) / file).string();
}

std::string data_dir() { return setting("DLWPT_DATA_DIR", DLWPT_TEST_DATA_DIR); }

bool has_data_dir() { return !data_dir().empty() && fs::is_directory(fs::path(data_dir()) / "data"); }

std::string python() { return setting("DLWPT_PYTHON", DLWPT_TEST_PYTHON); }

std::string source_dir() { return setting("DLWPT_SOURCE_DIR", DLWPT_TEST_SOURCE_DIR); }

std::string binary_dir() { return setting("DLWPT_BINARY_DIR", DLWPT_TEST_BINARY_DIR); }

TemporaryFolder::TemporaryFolder() {
  std::random_device random;
  root_ = (fs::temp_directory_path() / ("dlwpt-test-" + std::to_string(random()))).string();
  fs::create_directories(root_);
}

TemporaryFolder::~TemporaryFolder() {
  std::error_code ignored;
  fs::remove_all(root_, ignored);
}

std::string TemporaryFolder::path(const std::string& file) const {
  return (fs::path(root_) / file).string();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path);
}

int run_command(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

weights::TensorMap run_python_reference(const std::string& archive,
                                        const std::vector<torch::Tensor>& inputs) {
  TemporaryFolder folder;
  std::string command = "'" + python() + "' '" + source_dir() + "/tools/check_archive.py' '" +
                        archive + "' '" + folder.path("out.pt") + "'";
  if (!inputs.empty()) {
    weights::TensorMap named;
    for (size_t i = 0; i < inputs.size(); ++i) named["input_" + std::to_string(i)] = inputs[i];
    weights::write_archive(named, folder.path("inputs.pt"));
    command += " --inputs '" + folder.path("inputs.pt") + "'";
  }
  if (run_command(command) != 0) throw std::runtime_error("failed: " + command);
  return weights::read_archive(folder.path("out.pt")).tensors;
}

}  // namespace dlwpt::testing
