#include "tests/test_support.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
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

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path);
}

Tolerance parity_tolerance(const std::string& python_class, const std::string& output_name) {
  if (output_name == "logits") return kLogitTolerance;
  if (output_name == "probabilities") return kProbabilityTolerance;
  if (python_class == "ResNetGenerator") return kImageTolerance;
  if (python_class == "UNetWrapper") return kProbabilityTolerance;
  throw std::invalid_argument("no parity tolerance for " + python_class + " " + output_name);
}

std::ostream& operator<<(std::ostream& out, const Closeness& c) {
  return out << "max |a-b| " << c.max_abs << ", max relative " << c.max_relative << " (atol "
             << c.tolerance.atol << ", rtol " << c.tolerance.rtol << ": "
             << (c.within ? "within" : "OUTSIDE") << ")";
}

Closeness closeness(const torch::Tensor& actual, const torch::Tensor& expected,
                    Tolerance tolerance) {
  Closeness result;
  result.tolerance = tolerance;
  if (!actual.defined() || !actual.sizes().equals(expected.sizes())) {
    result.max_abs = result.max_relative = std::numeric_limits<double>::infinity();
    return result;
  }
  if (actual.numel() == 0) {
    result.within = true;
    return result;
  }
  const auto a = actual.to(torch::kDouble);
  const auto b = expected.to(torch::kDouble);
  const auto difference = (a - b).abs();
  result.max_abs = difference.max().item<double>();
  result.max_relative =
      (difference / b.abs().clamp_min(std::max(tolerance.atol, 1e-30))).max().item<double>();
  // NaN anywhere compares false, so it is never within.
  result.within = (difference <= tolerance.atol + tolerance.rtol * b.abs()).all().item<bool>();
  return result;
}

int run_command(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

weights::TensorMap run_python_reference(const std::string& archive,
                                        const std::vector<torch::Tensor>& inputs) {
  TemporaryFolder folder;
  std::string command = "'" + python() + "' '" + source_dir() + "/tools/testing/check_archive.py' '" +
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
