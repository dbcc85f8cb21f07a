#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace dlwpt::serve {

/// The JSON text of `value`. Strings that came from clients (ids, field values echoed in error
/// messages) may hold bytes that are not UTF-8, on which nlohmann's plain dump() throws: they
/// are written as U+FFFD instead, so that every answer and log line can be written.
inline std::string json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace dlwpt::serve
