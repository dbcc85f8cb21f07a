// dlwpt-parity: runs each native model and its traced PyTorch archive on the reference inputs
// that tools/testing/export_reference.py wrote, and prints how far each output is from PyTorch's.

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <cxxopts.hpp>
#include <torch/torch.h>

#include "apps/common/cli.h"
#include "dlwpt/weights/reference_case.h"

namespace {

using dlwpt::apps::UsageError;
using dlwpt::weights::OutputDifference;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "x" : "") << shape[i];
  return out.str();
}

bool within(const OutputDifference& difference, double tolerance) {
  return difference.native <= tolerance && difference.traced <= tolerance;
}

// Prints one line per output and returns whether all are within the tolerance.
bool report_case(const std::string& name, const std::vector<OutputDifference>& differences,
                 double tolerance) {
  bool all_within = true;
  for (const auto& difference : differences) {
    const bool ok = within(difference, tolerance);
    all_within = all_within && ok;
    std::printf("%-18s %-18s %-14s %12.3e %12.3e  %s\n", name.c_str(),
                shape_text(difference.input_shape).c_str(), difference.output_name.c_str(),
                difference.native, difference.traced, ok ? "ok" : "FAIL");
  }
  return all_within;
}

cxxopts::Options make_options() {
  cxxopts::Options options("dlwpt-parity",
                           "Compares the native C++ models and the traced PyTorch archives with "
                           "PyTorch's own outputs on the reference cases written by "
                           "tools/testing/export_reference.py.");
  options.add_options()
      ("references", "folder of reference cases (<case>.pt and <case>.io.pt)",
       cxxopts::value<std::string>())
      ("tolerance", "largest accepted absolute difference (the parity tests' absolute part)",
       cxxopts::value<double>()->default_value("1e-4"))
      ("threads", "intra-op threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
      ("h,help", "print this help");
  options.parse_positional({"references"});
  options.positional_help("REFERENCES_DIR");
  return options;
}

int run(const cxxopts::ParseResult& args) {
  if (!args.count("references")) throw UsageError("no reference folder given (see --help)");
  const std::string folder = args["references"].as<std::string>();
  if (!std::filesystem::is_directory(folder)) throw UsageError("'" + folder + "' is not a folder");
  dlwpt::apps::set_threads(args["threads"].as<int>());
  const double tolerance = args["tolerance"].as<double>();
  if (!(tolerance > 0 && tolerance < 1)) throw UsageError("--tolerance must be above 0 and below 1");

  const auto names = dlwpt::weights::list_reference_cases(folder);
  if (names.empty()) {
    throw UsageError("no reference cases in '" + folder +
                     "' (write them with tools/testing/export_reference.py)");
  }
  std::printf("%-18s %-18s %-14s %12s %12s\n", "case", "input", "output", "native", "traced");
  int failures = 0;
  for (const auto& name : names) {
    const auto reference = dlwpt::weights::read_reference_case(folder, name);
    const auto differences = dlwpt::weights::measure_reference_case(reference);
    if (!report_case(name, differences, tolerance)) ++failures;
  }
  std::printf("\nlargest absolute difference from PyTorch, tolerance %.0e: %zu cases, %d failed\n",
              tolerance, names.size(), failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return dlwpt::apps::run_app("dlwpt-parity", argc, argv, make_options(), run); }
