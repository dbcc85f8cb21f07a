#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dlwpt/weights/errors.h"

namespace dlwpt::apps {

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

/// Images larger than this are refused before their pixels are decoded: 100 megapixels take
/// 300 MB as RGB, and a few hundred bytes of header can claim billions.
constexpr int64_t kDefaultMaxImagePixels = 100'000'000;

/// How `load_image` guards the memory a file can make it use.
struct ImageReadOptions {
  /// Width x height above which the file is refused with a LimitError (`--max-pixels`).
  int64_t max_pixels = kDefaultMaxImagePixels;
};

/// Reads a JPEG or PNG file (told by its content, not its name). Greyscale becomes RGB,
/// 16-bit PNG is scaled to 8 bits, a palette is expanded, and an alpha channel is composited
/// over white. Throws ImageError naming the file for anything unreadable, truncated or corrupt
/// (libjpeg's warnings about corrupt data and libpng's CRC errors included), and LimitError,
/// checked from the header before any pixel memory is taken, for more than
/// `options.max_pixels` pixels.
RgbImage load_image(const std::string& path, const ImageReadOptions& options = {});

/// Decodes JPEG or PNG bytes held in memory (an HTTP body) as load_image decodes a file, with
/// the same checks; `label` names the bytes in messages ("the request body").
RgbImage decode_image(const void* data, size_t size, const std::string& label,
                      const ImageReadOptions& options = {});

/// Writes PNG (`.png`) or JPEG (`.jpg`, `.jpeg`, quality 95) through dlwpt::write_atomically:
/// a failure (a full disk included) throws FileError and never leaves a partial image under
/// `path` nor a temporary beside it.
void save_image(const RgbImage& image, const std::string& path);

/// Encodes as JPEG (`quality` 1-100) or PNG in memory; throws ImageError as save_image does.
std::string encode_jpeg(const RgbImage& image, int quality = 95);
std::string encode_png(const RgbImage& image);

/// Whether the name ends in an extension the converter reads (.jpg, .jpeg, .png, any case).
bool has_image_extension(const std::string& path);

/// The images named on a command line, folders expanded to their JPEG and PNG files (sorted);
/// a folder without any is reported on stderr under `program`'s name. Files are taken as
/// named: a missing or unreadable one is reported when it is read.
std::vector<std::string> image_files(const char* program, const std::vector<std::string>& arguments);

}  // namespace dlwpt::apps
