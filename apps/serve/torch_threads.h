#pragma once

// Intra-op threads per thread. at::set_num_threads is process-wide; the server sets it once
// for the model instances and needs one on its HTTP threads: with hundreds of them, OpenMP
// would otherwise start a team of helpers for each. (Whole CT scans run with the instances'
// count too: more threads than cores, with OpenMP's spinning barriers, slowed a loaded
// machine's scans many times over.)

#include <omp.h>

#include <ATen/Parallel.h>

namespace dlwpt::serve {

/// Sets how many threads torch operations started from the calling thread use. ATen sets a
/// thread's OpenMP count when the thread first runs torch, so that is done first.
inline void set_torch_threads_of_this_thread(int threads) {
  (void)at::get_num_threads();
  omp_set_num_threads(threads);
}

}  // namespace dlwpt::serve
