// Debian's ITK 5.2 ships a compiler-detection header generated for GCC alone, which stops any
// other compiler with "Unsupported compiler". The clang build (the fuzz targets) includes this
// file before ITK's translation unit (-include): it has ITK's header, guarded against a second
// inclusion, describe clang as the GCC release whose C++17 features clang shares, then restores
// the compiler's own macros.
#pragma once

#if defined(__clang__)
#pragma push_macro("__clang__")
#pragma push_macro("__GNUC__")
#pragma push_macro("__GNUC_MINOR__")
#pragma push_macro("__GNUC_PATCHLEVEL__")
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wbuiltin-macro-redefined"
#undef __clang__
#undef __GNUC__
#undef __GNUC_MINOR__
#undef __GNUC_PATCHLEVEL__
#define __GNUC__ 12
#define __GNUC_MINOR__ 2
#define __GNUC_PATCHLEVEL__ 0
#include <itk_compiler_detection.h>
#pragma clang diagnostic pop
#pragma pop_macro("__GNUC_PATCHLEVEL__")
#pragma pop_macro("__GNUC_MINOR__")
#pragma pop_macro("__GNUC__")
#pragma pop_macro("__clang__")
#else
#include <itk_compiler_detection.h>
#endif
