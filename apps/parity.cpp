// dlwpt-parity: runs each native model and its traced PyTorch archive on the reference inputs
// that tools/export_reference.py wrote, and prints how far each output is from PyTorch's.

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <cxxopts.hpp>
#include <torch/torch.h>

#include "apps/common/openblas.h"
#include "weights/reference_case.h"

namespace {

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

}  // namespace

int main(int argc, char** argv) {
  dlwpt::apps::select_openblas_kernels(argv);
  cxxopts::Options options("dlwpt-parity",
                           "Compares the native C++ models and the traced PyTorch archives with "
                           "PyTorch's own outputs on the reference cases written by "
                           "tools/export_reference.py.");
  options.add_options()
      ("references", "folder of reference cases (<case>.pt and <case>.io.pt)",
       cxxopts::value<std::string>())
      ("tolerance", "largest accepted absolute difference",
       cxxopts::value<double>()->default_value("1e-5"))
      ("threads", "intra-op threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
      ("h,help", "print this help");
  options.parse_positional({"references"});
  options.positional_help("REFERENCES_DIR");

  try {
    const auto args = options.parse(argc, argv);
    if (args.count("help")) {
      std::cout << options.help() << "\n";
      return 0;
    }
    if (!args.count("references")) {
      std::cerr << "dlwpt-parity: no reference folder given (see --help)\n";
      return 2;
    }
    const std::string folder = args["references"].as<std::string>();
    if (!std::filesystem::is_directory(folder)) {
      std::cerr << "dlwpt-parity: '" << folder << "' is not a folder\n";
      return 2;
    }
    const int threads = args["threads"].as<int>();
    torch::set_num_threads(threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency()));
    const double tolerance = args["tolerance"].as<double>();

    const auto names = dlwpt::weights::list_reference_cases(folder);
    if (names.empty()) {
      std::cerr << "dlwpt-parity: no reference cases in '" << folder
                << "' (write them with tools/export_reference.py)\n";
      return 2;
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
  } catch (const cxxopts::exceptions::exception& error) {
    std::cerr << "dlwpt-parity: " << error.what() << " (see --help)\n";
  } catch (const dlwpt::weights::ArchiveError& error) {
    std::cerr << "dlwpt-parity: " << error.what() << "\n";
  } catch (const c10::Error& error) {
    std::cerr << "dlwpt-parity: " << error.what_without_backtrace() << "\n";
  }
  return 2;
}
