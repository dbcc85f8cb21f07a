#include "dlwpt/weights/errors.h"

#include <filesystem>
#include <new>

#include <c10/util/Exception.h>

namespace dlwpt {

std::optional<std::string> regular_file_problem(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  const auto status = fs::status(path, error);
  if (error && error != std::errc::no_such_file_or_directory) {
    return "cannot be read (" + error.message() + ")";  // a link loop, a folder without access
  }
  if (!fs::exists(status)) return std::string("does not exist");
  if (fs::is_directory(status)) return std::string("is a folder, not a file");
  if (!fs::is_regular_file(status)) return std::string("is not a regular file (a device, pipe or socket)");
  return std::nullopt;
}

void require_regular_file(const std::string& path, const std::string& role) {
  if (const auto problem = regular_file_problem(path)) {
    throw FileError("the " + role + " '" + path + "' " + *problem);
  }
}

std::string message_of(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) {
    std::string message = torch_error->what_without_backtrace();
    // libtorch's CPU allocator reports a failed allocation as a c10::Error.
    if (message.find("can't allocate memory") != std::string::npos) {
      return "out of memory (" + first_line(message) + ")";
    }
    return message;
  }
  if (dynamic_cast<const std::bad_alloc*>(&error)) {
    return "out of memory (the input needs more memory than this machine can give)";
  }
  return error.what();
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace dlwpt
