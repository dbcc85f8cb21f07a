#pragma once

#include <functional>
#include <stdexcept>

#include <cxxopts.hpp>

namespace dlwpt::apps {

/// A command line the app cannot act on; reported as one line, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The apps' main(): selects OpenBLAS's kernels (openblas.h), lets freed memory be reused
/// (layers/inference.h keep_freed_memory_for_reuse), parses the command line with `options`
/// (--help prints it and exits 0), runs `body` with the arguments, and turns any exception
/// into one line "<program>: <message>" on stderr and exit status 2.
int run_app(const char* program, int argc, char** argv, cxxopts::Options options,
            const std::function<int(const cxxopts::ParseResult&)>& body);

/// Applies --threads: 0 means every core (libtorch's own default here is one). Throws
/// UsageError for a negative count.
void set_threads(int requested);

}  // namespace dlwpt::apps
