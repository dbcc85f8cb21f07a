// The translation unit that builds the precompiled libtorch header (see DlwptCompiler.cmake).
namespace dlwpt::detail {
int pch_anchor() { return 0; }
}  // namespace dlwpt::detail
