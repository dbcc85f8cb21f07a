#include "apps/zebraify/image_io.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "weights/atomic_file.h"
#include "apps/common/cimg_config.h"

namespace dlwpt::zebraify {

namespace fs = std::filesystem;
using cimg_library::CImg;

namespace {

enum class ImageFormat { jpeg, png, unknown };

std::string lowercase_extension(const std::string& path) {
  std::string extension = fs::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return extension;
}

// The format from the file's first bytes; throws for a missing or empty file.
ImageFormat sniff_format(const std::string& path) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) throw ImageError("image '" + path + "' does not exist");
  std::ifstream file(path, std::ios::binary);
  unsigned char magic[8] = {};
  file.read(reinterpret_cast<char*>(magic), sizeof magic);
  const auto size = file.gcount();
  if (size == 0) throw ImageError("image '" + path + "' is empty");
  if (size >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) return ImageFormat::jpeg;
  const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size == 8 && std::equal(magic, magic + 8, png)) return ImageFormat::png;
  return ImageFormat::unknown;
}

// Grey, grey + alpha, RGB or RGBA with values in [0, 255] to RGB, alpha over white.
CImg<float> to_rgb(const CImg<float>& image) {
  const int spectrum = image.spectrum();
  const bool has_alpha = spectrum == 2 || spectrum == 4;
  const int colours = has_alpha ? spectrum - 1 : spectrum;
  CImg<float> rgb(image.width(), image.height(), 1, 3);
  cimg_forXYC(rgb, x, y, c) {
    const float value = image(x, y, 0, colours == 1 ? 0 : c);
    const float alpha = has_alpha ? image(x, y, 0, spectrum - 1) / 255.0f : 1.0f;
    rgb(x, y, 0, c) = value * alpha + 255.0f * (1.0f - alpha);
  }
  return rgb;
}

}  // namespace

RgbImage load_image(const std::string& path) {
  const ImageFormat format = sniff_format(path);
  if (format == ImageFormat::unknown) {
    throw ImageError("image '" + path + "' is neither JPEG nor PNG (the formats read here)");
  }
  CImg<float> decoded;
  unsigned int bits_per_value = 8;
  try {
    if (format == ImageFormat::jpeg) {
      decoded.load_jpeg(path.c_str());
    } else {
      decoded.load_png(path.c_str(), &bits_per_value);
    }
  } catch (const cimg_library::CImgException& error) {
    throw ImageError("cannot decode image '" + path + "': " + error.what());
  }
  if (decoded.is_empty() || decoded.depth() != 1 || decoded.spectrum() < 1 ||
      decoded.spectrum() > 4) {
    throw ImageError("image '" + path + "' has an unsupported layout (" +
                     std::to_string(decoded.spectrum()) + " channels)");
  }
  if (bits_per_value > 8) decoded *= 255.0f / 65535.0f;

  const CImg<float> rgb = to_rgb(decoded);
  RgbImage image;
  image.width = rgb.width();
  image.height = rgb.height();
  image.planes.resize(rgb.size());
  std::transform(rgb.begin(), rgb.end(), image.planes.begin(), [](float value) {
    return static_cast<uint8_t>(std::lround(std::clamp(value, 0.0f, 255.0f)));
  });
  return image;
}

void save_image(const RgbImage& image, const std::string& path) {
  const std::string extension = lowercase_extension(path);
  const bool png = extension == ".png";
  if (!png && extension != ".jpg" && extension != ".jpeg") {
    throw ImageError("cannot write '" + path + "': use a .png, .jpg or .jpeg name");
  }
  if (image.empty() || image.planes.size() != static_cast<size_t>(3 * image.width * image.height)) {
    throw ImageError("cannot write '" + path + "': the image is empty or malformed");
  }
  const CImg<unsigned char> pixels(image.planes.data(), image.width, image.height, 1, 3,
                                   /*is_shared=*/true);
  try {
    dlwpt::write_atomically(path, [&](const std::string& temporary) {
      if (png) {
        pixels.save_png(temporary.c_str());
      } else {
        pixels.save_jpeg(temporary.c_str(), 95);
      }
    });
  } catch (const cimg_library::CImgException& error) {
    throw ImageError("cannot write '" + path + "': " + error.what());
  } catch (const fs::filesystem_error& error) {
    throw ImageError("cannot write '" + path + "': " + error.what());
  }
}

bool has_image_extension(const std::string& path) {
  const std::string extension = lowercase_extension(path);
  return extension == ".png" || extension == ".jpg" || extension == ".jpeg";
}

}  // namespace dlwpt::zebraify
