#include "dlwpt/weights/errors.h"

#include <new>

#include <c10/util/Exception.h>

namespace dlwpt {

std::string message_of(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) {
    return torch_error->what_without_backtrace();
  }
  if (dynamic_cast<const std::bad_alloc*>(&error)) {
    return "out of memory (the input needs more memory than this machine can give)";
  }
  return error.what();
}

}  // namespace dlwpt
