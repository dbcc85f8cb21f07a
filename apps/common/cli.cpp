#include "apps/common/cli.h"

#include <algorithm>
#include <csignal>
#include <iostream>
#include <thread>

#include <torch/utils.h>

#include "apps/common/openblas.h"
#include "dlwpt/layers/inference.h"

namespace dlwpt::apps {

namespace {

// cxxopts reports a value it cannot convert ("Argument 'nan' failed to parse") without naming
// its option: the shortest prefix of the command line that fails the same way ends with the
// culprit, given as "--option=value", "--option value" or a short option with its value.
std::string named_parse_error(cxxopts::Options& options, int argc, char** argv, const std::string& error) {
  for (int count = 2; count <= argc; ++count) {
    try {
      options.parse(count, argv);
    } catch (const cxxopts::exceptions::incorrect_argument_type&) {
      const std::string last = argv[count - 1];
      const bool attached = last.rfind('-', 0) == 0 && (last.rfind("--", 0) != 0 || last.find('=') != std::string::npos);
      const std::string option = attached || count == 2 ? last : std::string(argv[count - 2]) + " " + last;
      return "'" + option + "': not a value this option takes (see --help)";
    } catch (const cxxopts::exceptions::exception&) {
      // a prefix that ends between an option and its value
    }
  }
  return error + " (see --help)";
}

}  // namespace

int run_app(const char* program, int argc, char** argv, cxxopts::Options options,
            const std::function<int(const cxxopts::ParseResult&)>& body) {
  select_openblas_kernels(argv);
  keep_freed_memory_for_reuse();
  // A write past RLIMIT_FSIZE then fails with EFBIG, reported like a full disk, instead of
  // killing the program with a half-written temporary file behind it.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    const auto args = options.parse(argc, argv);
    if (args.count("help")) {
      std::cout << options.help() << "\n";
      return 0;
    }
    return body(args);
  } catch (const cxxopts::exceptions::incorrect_argument_type& error) {
    std::cerr << program << ": " << named_parse_error(options, argc, argv, error.what()) << "\n";
  } catch (const cxxopts::exceptions::exception& error) {
    std::cerr << program << ": " << error.what() << " (see --help)\n";
  } catch (const std::exception& error) {
    std::cerr << program << ": " << message_of(error) << "\n";
  }
  return 2;
}

int checked_thread_count(const std::string& option, int requested) {
  const int cores = available_cores();
  if (requested < 0 || requested > cores) {
    throw UsageError(option + " " + std::to_string(requested) + ": must be 0 (every core) to " +
                     std::to_string(cores) + " (the cores of this machine)");
  }
  return requested == 0 ? cores : requested;
}

void set_threads(int requested) {
  torch::set_num_threads(checked_thread_count("--threads", requested));
}

Precision float_precision(const std::string& option, const std::string& name, const std::string& why_not_int8) {
  const Precision precision = parse_precision(name);
  if (precision == Precision::int8) throw UsageError(option + " int8: " + why_not_int8);
  return precision;
}

}  // namespace dlwpt::apps
