#pragma once

#include <functional>
#include <string>

namespace dlwpt::apps {

/// Whether two paths name the same existing file (after links and relative parts).
bool same_file(const std::string& a, const std::string& b);

}  // namespace dlwpt::apps
