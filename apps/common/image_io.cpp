#include "apps/common/image_io.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>

// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "dlwpt/weights/atomic_file.h"

// libjpeg and libpng report errors by calling back into this file, which keeps the message and
// longjmps to the setjmp of the step that called the library: their defaults print and exit(),
// and a C++ exception must not unwind through C frames built without unwind tables. The
// functions between a setjmp and the library calls keep their state in the reader or writer
// object (never in non-volatile locals a jump would leave indeterminate) and hold no locals with
// destructors (a jump skips them); our own checks in between may throw as usual.

namespace dlwpt::apps {

namespace fs = std::filesystem;

namespace {

enum class ImageFormat { jpeg, png, unknown };

std::string lowercase_extension(const std::string& path) {
  std::string extension = fs::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return extension;
}

// The format from the first bytes.
ImageFormat sniff_format(const unsigned char* magic, size_t size) {
  if (size >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) return ImageFormat::jpeg;
  const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 8 && std::equal(magic, magic + 8, png)) return ImageFormat::png;
  return ImageFormat::unknown;
}

// The format from the file's first bytes; throws for a missing or empty file.
ImageFormat sniff_file_format(const std::string& path) {
  if (const auto problem = regular_file_problem(path)) throw ImageError("image '" + path + "' " + *problem);
  std::ifstream file(path, std::ios::binary);
  unsigned char magic[8] = {};
  file.read(reinterpret_cast<char*>(magic), sizeof magic);
  const auto size = static_cast<size_t>(file.gcount());
  if (size == 0) throw ImageError("image '" + path + "' is empty");
  return sniff_format(magic, size);
}

// --- files and messages --------------------------------------------------------------------

// A FILE that closes itself; `close` tells whether every buffered write reached the file.
class CFile {
 public:
  CFile(const std::string& path, const char* mode) : file_(std::fopen(path.c_str(), mode)) {
    if (!file_) throw ImageError("cannot open '" + path + "': " + std::strerror(errno));
  }
  ~CFile() {
    if (file_) std::fclose(file_);
  }
  CFile(const CFile&) = delete;
  CFile& operator=(const CFile&) = delete;

  std::FILE* get() const { return file_; }

  // Flushes and closes; a full disk shows here at the latest. The message is only the cause:
  // files are written as temporaries, and write_atomically names the final path.
  void close() {
    const bool flushed = std::fflush(file_) == 0 && !std::ferror(file_);
    const int error = errno;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!flushed || !closed) throw ImageError(std::strerror(flushed ? errno : error));
  }

 private:
  std::FILE* file_;
};

// The encoded bytes a reader decodes: an open file, or a buffer in memory (an HTTP body).
// `label` names them in messages: "image 'horse.jpg'", "the request body".
struct EncodedSource {
  std::string label;
  std::FILE* file = nullptr;
  const unsigned char* data = nullptr;
  size_t size = 0;
  size_t offset = 0;  // of the next byte of `data` to read
};

// Where a writer's bytes go: an open file, or a string in memory.
struct EncodedSink {
  std::FILE* file = nullptr;
  std::string* bytes = nullptr;
};

// A library's error message, kept in a fixed buffer: the callbacks that fill it run inside C
// code, where nothing may throw (not even std::bad_alloc from a std::string).
struct LibraryMessage {
  char text[JMSG_LENGTH_MAX] = "unknown error";

  void set(const char* message) { std::snprintf(text, sizeof text, "%s", message); }
};

// --- pixels --------------------------------------------------------------------------------

// A decoded row: interleaved samples, 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA) per
// pixel, each one byte or two (16-bit PNG, big-endian).
struct RowLayout {
  int channels = 3;
  int bytes_per_sample = 1;
};

float sample_value(const uint8_t* row, size_t index, int bytes_per_sample) {
  if (bytes_per_sample == 1) return row[index];
  const unsigned value = (unsigned{row[2 * index]} << 8) | row[2 * index + 1];
  return static_cast<float>(value) * (255.0f / 65535.0f);
}

// Stores row `y` into the planar RGB image: grey goes to the three channels, alpha is
// composited over white. The arithmetic (float, this order) is the one the apps always used,
// so that the decoded pixels, which the tests compare exactly with Python's, stay the same.
void store_row(const uint8_t* row, const RowLayout& layout, int64_t y, RgbImage& image) {
  const int channels = layout.channels;
  const bool has_alpha = channels == 2 || channels == 4;
  const int colours = has_alpha ? channels - 1 : channels;
  const size_t plane = static_cast<size_t>(image.width * image.height);
  uint8_t* out = image.planes.data() + y * image.width;
  for (int64_t x = 0; x < image.width; ++x) {
    const size_t first = static_cast<size_t>(x * channels);
    const float alpha =
        has_alpha ? sample_value(row, first + channels - 1, layout.bytes_per_sample) / 255.0f : 1.0f;
    for (int c = 0; c < 3; ++c) {
      const float value = sample_value(row, first + (colours == 1 ? 0 : c), layout.bytes_per_sample);
      const float over_white = value * alpha + 255.0f * (1.0f - alpha);
      out[c * plane + x] = static_cast<uint8_t>(std::lround(std::clamp(over_white, 0.0f, 255.0f)));
    }
  }
}

// Interleaves row `y` of the planar image into `row` (RGB, one byte per sample).
void interleave_row(const RgbImage& image, int64_t y, uint8_t* row) {
  const size_t plane = static_cast<size_t>(image.width * image.height);
  const uint8_t* in = image.planes.data() + y * image.width;
  for (int64_t x = 0; x < image.width; ++x) {
    for (int c = 0; c < 3; ++c) row[3 * x + c] = in[c * plane + x];
  }
}

// Refuses, from the header alone, an image larger than the limit.
void check_pixel_limit(const std::string& label, int64_t width, int64_t height, int64_t max_pixels) {
  if (width * height <= max_pixels) return;  // both below 2^31: no overflow
  throw LimitError(label + " claims " + std::to_string(width) + "x" +
                   std::to_string(height) + " = " + std::to_string(width * height) +
                   " pixels, more than the limit of " + std::to_string(max_pixels) +
                   " (raise it with --max-pixels)");
}

RgbImage blank_image(int64_t width, int64_t height) {
  RgbImage image;
  image.width = width;
  image.height = height;
  image.planes.resize(static_cast<size_t>(3 * width * height));
  return image;
}

// --- libjpeg -------------------------------------------------------------------------------

// More scans than any encoder makes: a progressive file of thousands of tiny scans makes
// libjpeg work for minutes (the limit of libjpeg-turbo's own fuzzers).
constexpr int kMaxJpegScans = 500;

// Memory libjpeg may take for a progressive image's coefficients (2 bytes per sample, at most
// 3 full-resolution components, blocks padded) on top of a fixed allowance for its tables
// and buffers; beyond it libjpeg fails ("backing store not supported") instead of allocating.
constexpr long kJpegBytesPerPixel = 8;
constexpr long kJpegFixedBytes = 64L << 20;

struct JpegErrors {
  jpeg_error_mgr manager;  // first: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  LibraryMessage message;
};

[[noreturn]] void jpeg_fail(j_common_ptr info) {
  auto* errors = reinterpret_cast<JpegErrors*>(info->err);
  char text[JMSG_LENGTH_MAX];
  (*info->err->format_message)(info, text);
  errors->message.set(text);
  std::longjmp(errors->jump, 1);
}

// Warnings about metadata nothing here uses; every other warning means missing or corrupt
// pixel data (a truncated file, bad entropy-coded data), which libjpeg would fill in with grey.
bool is_benign_jpeg_warning(int code) {
  return code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC;
}

// Warnings (level -1) that are not benign fail like errors; trace messages are dropped.
void jpeg_message(j_common_ptr info, int level) {
  if (level < 0 && !is_benign_jpeg_warning(info->err->msg_code)) jpeg_fail(info);
}

jpeg_error_mgr* install_jpeg_errors(JpegErrors& errors) {
  jpeg_std_error(&errors.manager);
  errors.manager.error_exit = jpeg_fail;
  errors.manager.emit_message = jpeg_message;
  return &errors.manager;
}

void limit_jpeg_scans(j_common_ptr info) {
  auto* decompress = reinterpret_cast<j_decompress_ptr>(info);
  if (decompress->input_scan_number > kMaxJpegScans) {
    auto* errors = reinterpret_cast<JpegErrors*>(info->err);
    errors->message.set("more than 500 scans (a valid file has a few dozen at most)");
    std::longjmp(errors->jump, 1);
  }
}

class JpegReader {
 public:
  JpegReader(EncodedSource& source, const ImageReadOptions& options)
      : source_(source), max_pixels_(options.max_pixels) {
    info_.err = install_jpeg_errors(errors_);
    progress_.progress_monitor = limit_jpeg_scans;
  }
  ~JpegReader() { jpeg_destroy_decompress(&info_); }  // a no-op before creation
  JpegReader(const JpegReader&) = delete;
  JpegReader& operator=(const JpegReader&) = delete;

  RgbImage read() {
    if (!decode()) throw ImageError("cannot decode " + source_.label + ": " + errors_.message.text);
    return std::move(image_);
  }

 private:
  bool decode() {
    if (setjmp(errors_.jump)) return false;
    jpeg_create_decompress(&info_);
    info_.progress = &progress_;
    info_.mem->max_memory_to_use = memory_limit();
    if (source_.file) {
      jpeg_stdio_src(&info_, source_.file);
    } else {
      jpeg_mem_src(&info_, source_.data, static_cast<unsigned long>(source_.size));
    }
    jpeg_read_header(&info_, TRUE);
    check_pixel_limit(source_.label, info_.image_width, info_.image_height, max_pixels_);
    check_colour_space();
    jpeg_start_decompress(&info_);
    image_ = blank_image(info_.output_width, info_.output_height);
    row_.resize(static_cast<size_t>(info_.output_width) * info_.output_components);
    while (info_.output_scanline < info_.output_height) {
      const int64_t y = info_.output_scanline;
      JSAMPROW rows[1] = {row_.data()};
      if (jpeg_read_scanlines(&info_, rows, 1) != 1) {  // only a suspending source returns 0
        throw ImageError("cannot decode " + source_.label + ": libjpeg returned no row");
      }
      store_row(row_.data(), RowLayout{info_.output_components, 1}, y, image_);
    }
    jpeg_finish_decompress(&info_);  // reads up to the end marker: truncation fails here too
    return true;
  }

  long memory_limit() const {
    const long pixels = static_cast<long>(std::min<int64_t>(max_pixels_, LONG_MAX / 16));
    return pixels * kJpegBytesPerPixel + kJpegFixedBytes;
  }

  // Grey and colour (YCbCr, RGB) decode to 1 or 3 channels; CMYK and others are refused.
  void check_colour_space() const {
    if (info_.out_color_space == JCS_GRAYSCALE || info_.out_color_space == JCS_RGB) return;
    throw ImageError(source_.label + " is a JPEG in a colour space other than grey or RGB " +
                     "(CMYK?), which is not read here");
  }

  EncodedSource& source_;
  const int64_t max_pixels_;
  JpegErrors errors_{};
  jpeg_progress_mgr progress_{};
  jpeg_decompress_struct info_{};
  RgbImage image_;
  std::vector<uint8_t> row_;
};

class JpegWriter {
 public:
  JpegWriter(const RgbImage& image, EncodedSink sink, int quality)
      : image_(image), quality_(quality), sink_(sink) {
    info_.err = install_jpeg_errors(errors_);
    row_.resize(static_cast<size_t>(3 * image.width));
  }
  ~JpegWriter() {
    jpeg_destroy_compress(&info_);
    std::free(memory_);  // libjpeg's memory destination allocates with malloc
  }
  JpegWriter(const JpegWriter&) = delete;
  JpegWriter& operator=(const JpegWriter&) = delete;

  void write() {
    if (!encode()) throw ImageError(std::string("JPEG encoder: ") + errors_.message.text);
    if (sink_.bytes) sink_.bytes->assign(reinterpret_cast<const char*>(memory_), memory_size_);
  }

 private:
  bool encode() {
    if (setjmp(errors_.jump)) return false;
    jpeg_create_compress(&info_);
    if (sink_.file) {
      jpeg_stdio_dest(&info_, sink_.file);
    } else {
      jpeg_mem_dest(&info_, &memory_, &memory_size_);
    }
    info_.image_width = static_cast<JDIMENSION>(image_.width);
    info_.image_height = static_cast<JDIMENSION>(image_.height);
    info_.input_components = 3;
    info_.in_color_space = JCS_RGB;
    jpeg_set_defaults(&info_);
    jpeg_set_quality(&info_, quality_, TRUE);
    jpeg_start_compress(&info_, TRUE);
    while (info_.next_scanline < info_.image_height) {
      interleave_row(image_, info_.next_scanline, row_.data());
      JSAMPROW rows[1] = {row_.data()};
      jpeg_write_scanlines(&info_, rows, 1);
    }
    jpeg_finish_compress(&info_);  // flushes and checks the file's error flag
    return true;
  }

  const RgbImage& image_;
  const int quality_;
  EncodedSink sink_;
  unsigned char* memory_ = nullptr;  // the memory destination's buffer
  unsigned long memory_size_ = 0;
  JpegErrors errors_{};
  jpeg_compress_struct info_{};
  std::vector<uint8_t> row_;
};

// --- libpng --------------------------------------------------------------------------------

// Largest ancillary chunk libpng may buffer (text, colour profiles): libpng's own default,
// said here so that it cannot change under us.
constexpr png_alloc_size_t kPngChunkBytes = 8'000'000;

// What libpng reported, through the pointer it hands to the error and warning functions.
struct PngMessages {
  LibraryMessage error;
  bool side_over_limit = false;  ///< IHDR refused by png_set_user_limits
};

[[noreturn]] void png_fail(png_structp png, png_const_charp message) {
  static_cast<PngMessages*>(png_get_error_ptr(png))->error.set(message);
  png_longjmp(png, 1);
}

// libpng's own file reader reports a short read as "Read Error"; this one tells a truncated
// file or buffer from a failing disk.
void png_read_from_source(png_structp png, png_bytep data, size_t length) {
  auto* source = static_cast<EncodedSource*>(png_get_io_ptr(png));
  if (source->file) {
    if (std::fread(data, 1, length, source->file) != length) {
      png_error(png, std::feof(source->file) ? "the file ends early (truncated)" : std::strerror(errno));
    }
    return;
  }
  if (source->size - source->offset < length) png_error(png, "the data end early (truncated)");
  std::memcpy(data, source->data + source->offset, length);
  source->offset += length;
}

// libpng's own file writer reports a short write as "Write Error"; this one says why (a full
// disk: "No space left on device", "File too large"). Flushing is checked when the file closes.
// Appending to memory may throw, which must not unwind through libpng: it fails as libpng does.
void png_write_to_sink(png_structp png, png_bytep data, size_t length) {
  const auto* sink = static_cast<const EncodedSink*>(png_get_io_ptr(png));
  if (sink->file) {
    if (std::fwrite(data, 1, length, sink->file) != length) png_error(png, std::strerror(errno));
    return;
  }
  try {
    sink->bytes->append(reinterpret_cast<const char*>(data), length);
  } catch (const std::bad_alloc&) {
    png_error(png, "out of memory");
  }
}

void png_flush_later(png_structp) {}

// libpng warns about ancillary chunks (colour profiles, text) that do not touch the pixels, and
// on reading turns "benign" errors into warnings: all of these concern data not used here.
// What affects the pixels fails: a bad CRC (see below), truncation, corrupt compressed data.
// One warning matters: a width or height beyond png_set_user_limits, which libpng follows with
// a bare "Invalid IHDR data" error; noting it makes the failure the LimitError it is.
void png_read_warning(png_structp png, png_const_charp message) {
  if (std::strstr(message, "exceeds user limit")) {
    static_cast<PngMessages*>(png_get_error_ptr(png))->side_over_limit = true;
  }
}

// The writer's warnings (none are expected for plain 8-bit RGB) add nothing to its errors.
void png_ignore_warning(png_structp, png_const_charp) {}

class PngReader {
 public:
  PngReader(EncodedSource& source, const ImageReadOptions& options)
      : source_(source), max_pixels_(options.max_pixels) {
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, &messages_, png_fail, png_read_warning);
    if (png_) info_ = png_create_info_struct(png_);
    if (!png_ || !info_) throw ImageError("cannot decode " + source_.label + ": out of memory");
  }
  ~PngReader() { png_destroy_read_struct(&png_, &info_, nullptr); }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;

  RgbImage read() {
    if (decode()) return std::move(image_);
    if (messages_.side_over_limit) {
      throw LimitError(source_.label + " is wider or taller than the limit of " +
                       std::to_string(max_pixels_) + " pixels (raise it with --max-pixels)");
    }
    throw ImageError("cannot decode " + source_.label + ": " + messages_.error.text);
  }

 private:
  bool decode() {
    if (setjmp(png_jmpbuf(png_))) return false;
    png_set_read_fn(png_, &source_, png_read_from_source);
    limit_memory();
    png_read_info(png_, info_);
    const int64_t width = png_get_image_width(png_, info_);
    const int64_t height = png_get_image_height(png_, info_);
    check_pixel_limit(source_.label, width, height, max_pixels_);
    const int passes = expand_to_channels();
    const RowLayout layout{png_get_channels(png_, info_), png_get_bit_depth(png_, info_) / 8};
    image_ = blank_image(width, height);
    // An interlaced image reaches its final pixels only in the last pass, so it needs all its
    // rows at once; otherwise one row at a time is enough.
    const size_t row_bytes = png_get_rowbytes(png_, info_);
    rows_.resize(row_bytes * static_cast<size_t>(passes > 1 ? height : 1));
    for (int pass = 0; pass < passes; ++pass) {
      for (int64_t y = 0; y < height; ++y) {
        uint8_t* row = rows_.data() + (passes > 1 ? y * row_bytes : 0);
        png_read_row(png_, row, nullptr);
        if (pass == passes - 1) store_row(row, layout, y, image_);
      }
    }
    png_read_end(png_, nullptr);  // checks the last CRC and that the file ends properly
    return true;
  }

  // Dimensions, chunk sizes and counts bounded before libpng reads any; CRC errors fail in
  // ancillary chunks too (libpng's default only warns), since they reveal a damaged file.
  void limit_memory() {
    const auto side = static_cast<png_uint_32>(std::clamp<int64_t>(max_pixels_, 1, PNG_UINT_31_MAX));
    png_set_user_limits(png_, side, side);
    png_set_chunk_malloc_max(png_, kPngChunkBytes);
    png_set_crc_action(png_, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  }

  // Palette to RGB, low-bit grey to 8 bits, transparency to alpha; 16 bits stay (scaled
  // later). Returns the number of interlace passes.
  int expand_to_channels() {
    const int colour_type = png_get_color_type(png_, info_);
    if (colour_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png_);
    if (colour_type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png_, info_) < 8) {
      png_set_expand_gray_1_2_4_to_8(png_);
    }
    if (png_get_valid(png_, info_, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png_);
    const int passes = png_set_interlace_handling(png_);
    png_read_update_info(png_, info_);
    return passes;
  }

  EncodedSource& source_;
  const int64_t max_pixels_;
  PngMessages messages_;
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
  RgbImage image_;
  std::vector<uint8_t> rows_;
};

class PngWriter {
 public:
  PngWriter(const RgbImage& image, EncodedSink sink) : image_(image), sink_(sink) {
    png_ = png_create_write_struct(PNG_LIBPNG_VER_STRING, &messages_, png_fail, png_ignore_warning);
    if (png_) info_ = png_create_info_struct(png_);
    if (!png_ || !info_) throw ImageError("PNG encoder: out of memory");
    row_.resize(static_cast<size_t>(3 * image.width));
  }
  ~PngWriter() { png_destroy_write_struct(&png_, &info_); }
  PngWriter(const PngWriter&) = delete;
  PngWriter& operator=(const PngWriter&) = delete;

  void write() {
    if (!encode()) throw ImageError(std::string("PNG encoder: ") + messages_.error.text);
  }

 private:
  bool encode() {
    if (setjmp(png_jmpbuf(png_))) return false;
    png_set_write_fn(png_, &sink_, png_write_to_sink, png_flush_later);
    png_set_IHDR(png_, info_, static_cast<png_uint_32>(image_.width),
                 static_cast<png_uint_32>(image_.height), 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png_, info_);
    for (int64_t y = 0; y < image_.height; ++y) {
      interleave_row(image_, y, row_.data());
      png_write_row(png_, row_.data());
    }
    png_write_end(png_, nullptr);
    return true;
  }

  const RgbImage& image_;
  EncodedSink sink_;
  PngMessages messages_;
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
  std::vector<uint8_t> row_;
};

RgbImage decode_source(EncodedSource& source, ImageFormat format, const ImageReadOptions& options) {
  switch (format) {
    case ImageFormat::jpeg:
      return JpegReader(source, options).read();
    case ImageFormat::png:
      return PngReader(source, options).read();
    case ImageFormat::unknown:
      break;
  }
  throw ImageError(source.label + " is neither JPEG nor PNG (the formats read here)");
}

void check_encodable(const RgbImage& image, const std::string& destination) {
  if (image.empty() || image.planes.size() != static_cast<size_t>(3 * image.width * image.height)) {
    throw ImageError("cannot write " + destination + ": the image is empty or malformed");
  }
}

}  // namespace

RgbImage load_image(const std::string& path, const ImageReadOptions& options) {
  const ImageFormat format = sniff_file_format(path);
  CFile file(path, "rb");
  EncodedSource source{"image '" + path + "'", file.get()};
  return decode_source(source, format, options);
}

RgbImage decode_image(const void* data, size_t size, const std::string& label,
                      const ImageReadOptions& options) {
  if (size == 0) throw ImageError(label + " is empty");
  EncodedSource source{label, nullptr, static_cast<const unsigned char*>(data), size};
  return decode_source(source, sniff_format(source.data, size), options);
}

void save_image(const RgbImage& image, const std::string& path) {
  const std::string extension = lowercase_extension(path);
  const bool png = extension == ".png";
  if (!png && extension != ".jpg" && extension != ".jpeg") {
    throw ImageError("cannot write '" + path + "': use a .png, .jpg or .jpeg name");
  }
  check_encodable(image, "'" + path + "'");
  dlwpt::write_atomically(path, [&](const std::string& temporary) {
    CFile file(temporary, "wb");
    if (png) {
      PngWriter(image, EncodedSink{file.get()}).write();
    } else {
      JpegWriter(image, EncodedSink{file.get()}, /*quality=*/95).write();
    }
    file.close();
  });
}

std::string encode_jpeg(const RgbImage& image, int quality) {
  if (quality < 1 || quality > 100) throw ImageError("JPEG quality must be 1-100");
  check_encodable(image, "a JPEG");
  std::string bytes;
  JpegWriter(image, EncodedSink{nullptr, &bytes}, quality).write();
  return bytes;
}

std::string encode_png(const RgbImage& image) {
  check_encodable(image, "a PNG");
  std::string bytes;
  PngWriter(image, EncodedSink{nullptr, &bytes}).write();
  return bytes;
}

bool has_image_extension(const std::string& path) {
  const std::string extension = lowercase_extension(path);
  return extension == ".png" || extension == ".jpg" || extension == ".jpeg";
}

std::vector<std::string> image_files(const char* program, const std::vector<std::string>& arguments) {
  std::vector<std::string> files;
  for (const auto& argument : arguments) {
    std::error_code error;
    if (!std::filesystem::is_directory(argument, error)) {
      files.push_back(argument);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::directory_iterator(argument)) {
      if (entry.is_regular_file() && has_image_extension(entry.path().string())) found.push_back(entry.path().string());
    }
    std::sort(found.begin(), found.end());
    if (found.empty()) std::cerr << program << ": folder '" << argument << "' holds no JPEG or PNG files\n";
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace dlwpt::apps
