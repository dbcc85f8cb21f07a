#pragma once

#include <functional>
#include <stdexcept>

#include <cxxopts.hpp>

#include "apps/common/cpu_budget.h"

#include "dlwpt/models/inference.h"
#include "dlwpt/weights/errors.h"

namespace dlwpt::apps {

/// A command line the app cannot act on; reported as one line, exit status 2.
using dlwpt::UsageError;

/// The apps' main(): selects OpenBLAS's kernels (openblas.h), lets freed memory be reused
/// (layers/inference.h keep_freed_memory_for_reuse), parses the command line with `options`
/// (--help prints it and exits 0), runs `body` with the arguments, and turns any exception
/// into one line "<program>: <message>" on stderr and exit status 2.
int run_app(const char* program, int argc, char** argv, cxxopts::Options options,
            const std::function<int(const cxxopts::ParseResult&)>& body);

/// A thread count given by `option`: 0 means every core; more threads than cores never run
/// faster and, in the thousands, exhaust the machine, so they are a UsageError.
int checked_thread_count(const std::string& option, int requested);

/// Applies --threads (`checked_thread_count`; libtorch's own default here is one thread).
void set_threads(int requested);

/// The precision an app's `option` names (models/inference.h parse_precision), for an app that
/// runs float32 and bfloat16 only: int8 is a UsageError ending with `why_not_int8`.
Precision float_precision(const std::string& option, const std::string& name, const std::string& why_not_int8);

}  // namespace dlwpt::apps
