#include "apps/common/cli.h"

#include <iostream>
#include <thread>

#include <c10/util/Exception.h>
#include <torch/utils.h>

#include "apps/common/openblas.h"
#include "layers/inference.h"

namespace dlwpt::apps {

int run_app(const char* program, int argc, char** argv, cxxopts::Options options,
            const std::function<int(const cxxopts::ParseResult&)>& body) {
  select_openblas_kernels(argv);
  keep_freed_memory_for_reuse();
  try {
    const auto args = options.parse(argc, argv);
    if (args.count("help")) {
      std::cout << options.help() << "\n";
      return 0;
    }
    return body(args);
  } catch (const cxxopts::exceptions::exception& error) {
    std::cerr << program << ": " << error.what() << " (see --help)\n";
  } catch (const c10::Error& error) {
    std::cerr << program << ": " << error.what_without_backtrace() << "\n";
  } catch (const std::exception& error) {
    std::cerr << program << ": " << error.what() << "\n";
  }
  return 2;
}

void set_threads(int requested) {
  if (requested < 0) throw UsageError("--threads must be >= 0");
  torch::set_num_threads(requested > 0 ? requested
                                       : static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace dlwpt::apps
