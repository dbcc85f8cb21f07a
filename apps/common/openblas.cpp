#include "apps/common/openblas.h"

#include <cstdlib>

#include <unistd.h>

namespace dlwpt::apps {

void select_openblas_kernels(char** argv) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  __builtin_cpu_init();
  const char* core = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                     : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                        : nullptr;
  if (core == nullptr) return;
  setenv("OPENBLAS_CORETYPE", core, /*overwrite=*/0);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with what we have
#else
  (void)argv;
#endif
}

}  // namespace dlwpt::apps
