#pragma once

#include <functional>
#include <string>

namespace dlwpt::apps {

/// Writes `path` through `write`, which receives a temporary name in the same folder; the
/// temporary file is renamed to `path` only when `write` returns, and removed when it throws.
/// An interrupted run therefore never leaves a half-written file under the final name.
void write_atomically(const std::string& path,
                      const std::function<void(const std::string& temporary)>& write);

/// Whether two paths name the same existing file (after links and relative parts).
bool same_file(const std::string& a, const std::string& b);

}  // namespace dlwpt::apps
