#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace dlwpt {

/// The base of every error the library and the apps report for bad input or bad use. `what()`
/// is one line that names the file, option or value at fault, fit to show a user as it is.
/// Programming errors (a tensor of the wrong shape passed by code) stay `c10::Error` from
/// TORCH_CHECK, as in libtorch itself.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file or folder that cannot be read, is malformed or incomplete, or cannot be written.
class FileError : public Error {
 public:
  using Error::Error;
};

/// A model or pipeline configuration that cannot work (options out of range, a model that does
/// not fit the pipeline it is given to).
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A command line or call the program cannot act on.
class UsageError : public Error {
 public:
  using Error::Error;
};

/// An input larger than a resource limit allows (pixels, voxels, bytes, threads). The message
/// names the limit and the option that raises it; nothing large is allocated before the check.
class LimitError : public Error {
 public:
  using Error::Error;
};

/// Why `path` cannot be read as a regular file (links followed), as the end of a sentence that
/// names it ("does not exist", "is a folder", ...), or nullopt when it can. A FIFO would block
/// its reader forever and /dev/zero would feed it without end, so every reader of a named file
/// asks this before opening it, and throws its own error type with the answer.
std::optional<std::string> regular_file_problem(const std::string& path);

/// Throws FileError("the <role> '<path>' <problem>") when regular_file_problem() finds one;
/// `role` says what the file is for ("list file").
void require_regular_file(const std::string& path, const std::string& role);

/// The message of any exception fit for a user: libtorch's errors without their backtrace,
/// std::bad_alloc as "out of memory". The first line says what failed; a strict loader's
/// list of mismatched tensors follows on further lines.
std::string message_of(const std::exception& error);

/// The first line of `text`: what failed, without the details that may follow.
std::string first_line(const std::string& text);

}  // namespace dlwpt
