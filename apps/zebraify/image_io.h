#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "weights/errors.h"

namespace dlwpt::zebraify {

/// Thrown for an image that cannot be read or written; `what()` names the file.
class ImageError : public FileError {
 public:
  using FileError::FileError;
};

/// An 8-bit RGB image stored planar (all red values, then green, then blue, each row by row),
/// the layout of both CImg and a torch 3 x H x W tensor.
struct RgbImage {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> planes;  ///< 3 * height * width values

  bool empty() const { return width == 0 || height == 0; }
};

/// Reads a JPEG or PNG file (told by its content, not its name). Greyscale becomes RGB,
/// 16-bit PNG is scaled to 8 bits, and an alpha channel is composited over white.
RgbImage load_image(const std::string& path);

/// Writes PNG (`.png`) or JPEG (`.jpg`, `.jpeg`, quality 95), through a temporary file renamed
/// into place, so that a failure never leaves a partial image under `path`.
void save_image(const RgbImage& image, const std::string& path);

/// Whether the name ends in an extension the converter reads (.jpg, .jpeg, .png, any case).
bool has_image_extension(const std::string& path);

}  // namespace dlwpt::zebraify
