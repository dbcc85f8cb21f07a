// Writes the seed and regression inputs of image_fuzzer (tests/fuzz/regressions/image_fuzzer):
// small PNGs of every colour type the readers expand, baseline, progressive and grey JPEGs,
// and damaged files: truncated, a bad CRC, headers that claim more pixels than the data holds.
// The image tests read the damaged ones too. Run: image_corpus <folder>
//
// A development tool: libjpeg's and libpng's default error handling (print and exit) is right
// here, unlike in the apps.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<uint8_t>;

fs::path folder;

Bytes read_bytes(const std::string& name) {
  std::ifstream in(folder / name, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), {});
}

void write_bytes(const std::string& name, const Bytes& bytes) {
  std::ofstream(folder / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  std::cout << name << ": " << bytes.size() << " bytes\n";
}

// A deterministic picture with a little texture, `channels` samples per pixel, 8 bits each.
Bytes pattern(int width, int height, int channels) {
  Bytes pixels(static_cast<size_t>(width * height * channels));
  uint32_t noise = 12345;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        noise = noise * 1103515245u + 12345u;
        pixels[(y * width + x) * channels + c] =
            static_cast<uint8_t>(x * 13 + y * 7 + c * 60 + ((noise >> 16) & 15));
      }
    }
  }
  return pixels;
}

void write_png(const std::string& name, int width, int height, int colour_type, int bit_depth,
               const Bytes& rows_bytes, int interlace = PNG_INTERLACE_NONE) {
  std::FILE* file = std::fopen((folder / name).c_str(), "wb");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, file);
  png_set_compression_level(png, 9);  // keeps the 8000 x 8000 image small enough to commit
  png_set_IHDR(png, info, width, height, bit_depth, colour_type, interlace,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (colour_type == PNG_COLOR_TYPE_PALETTE) {
    png_color palette[4] = {{0, 0, 0}, {200, 30, 30}, {30, 200, 30}, {250, 250, 250}};
    png_byte alphas[2] = {0, 128};  // entry 0 transparent, entry 1 half
    png_set_PLTE(png, info, palette, 4);
    png_set_tRNS(png, info, alphas, 2, nullptr);
  }
  png_write_info(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  std::vector<png_bytep> rows(height);
  for (int y = 0; y < height; ++y) rows[y] = const_cast<uint8_t*>(rows_bytes.data()) + y * row_bytes;
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
  std::cout << name << ": " << fs::file_size(folder / name) << " bytes\n";
}

void write_jpeg(const std::string& name, int width, int height, int channels, bool progressive) {
  const Bytes pixels = pattern(width, height, channels);
  std::FILE* file = std::fopen((folder / name).c_str(), "wb");
  jpeg_compress_struct info;
  jpeg_error_mgr errors;
  info.err = jpeg_std_error(&errors);
  jpeg_create_compress(&info);
  jpeg_stdio_dest(&info, file);
  info.image_width = width;
  info.image_height = height;
  info.input_components = channels;
  info.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, 90, TRUE);
  if (progressive) jpeg_simple_progression(&info);
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(pixels.data()) + info.next_scanline * width * channels;
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::fclose(file);
  std::cout << name << ": " << fs::file_size(folder / name) << " bytes\n";
}

// The offset of the first marker `code` (0xFFcode) in a JPEG.
size_t find_marker(const Bytes& jpeg, uint8_t code) {
  for (size_t i = 2; i + 1 < jpeg.size(); ++i) {
    if (jpeg[i] == 0xFF && jpeg[i + 1] == code) return i;
  }
  std::cerr << "no marker " << int(code) << "\n";
  std::exit(1);
}

void put_u16(Bytes& bytes, size_t at, uint32_t value) {
  bytes[at] = static_cast<uint8_t>(value >> 8);
  bytes[at + 1] = static_cast<uint8_t>(value);
}

void put_u32(Bytes& bytes, size_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<uint8_t>(value >> (24 - 8 * i));
}

// A PNG's IHDR (always the first chunk, at byte 8) claiming other dimensions, CRC fixed.
Bytes with_png_size(Bytes png, uint32_t width, uint32_t height) {
  put_u32(png, 16, width);
  put_u32(png, 20, height);
  put_u32(png, 29, static_cast<uint32_t>(crc32(0, png.data() + 12, 17)));  // type + 13 data bytes
  return png;
}

void write_pngs() {
  write_png("grey.png", 16, 16, PNG_COLOR_TYPE_GRAY, 8, pattern(16, 16, 1));
  write_png("grey_alpha.png", 16, 16, PNG_COLOR_TYPE_GRAY_ALPHA, 8, pattern(16, 16, 2));
  write_png("rgb.png", 16, 16, PNG_COLOR_TYPE_RGB, 8, pattern(16, 16, 3));
  write_png("rgba.png", 16, 16, PNG_COLOR_TYPE_RGB_ALPHA, 8, pattern(16, 16, 4));
  write_png("rgb16.png", 16, 16, PNG_COLOR_TYPE_RGB, 16, pattern(16, 16, 6));
  write_png("rgba16.png", 16, 16, PNG_COLOR_TYPE_RGB_ALPHA, 16, pattern(16, 16, 8));
  write_png("grey1.png", 16, 16, PNG_COLOR_TYPE_GRAY, 1, pattern(2, 16, 1));
  Bytes indices = pattern(4, 16, 1);  // 2 bits per pixel: 4 bytes a row
  write_png("palette.png", 16, 16, PNG_COLOR_TYPE_PALETTE, 2, indices);
  write_png("interlaced.png", 16, 16, PNG_COLOR_TYPE_RGB, 8, pattern(16, 16, 3), PNG_INTERLACE_ADAM7);

  // 64 megapixels of 1-bit grey in a few kilobytes: over --max-pixels 1000000, under the default.
  write_png("big_8000x8000.png", 8000, 8000, PNG_COLOR_TYPE_GRAY, 1, Bytes(1000 * 8000, 0x5A));

  const Bytes rgb = read_bytes("rgb.png");
  const size_t idat = std::string(rgb.begin(), rgb.end()).find("IDAT");  // after its length
  const size_t idat_length = (size_t{rgb[idat - 4]} << 24) | (size_t{rgb[idat - 3]} << 16) |
                             (size_t{rgb[idat - 2]} << 8) | rgb[idat - 1];
  Bytes bad_crc = rgb;
  bad_crc[idat + 4 + idat_length] ^= 0x01;  // the data intact, its CRC wrong
  write_bytes("bad_crc.png", bad_crc);
  Bytes corrupt_data = rgb;
  corrupt_data[idat + 4 + 10] ^= 0x01;  // zlib fails on the data before libpng sees the CRC
  write_bytes("corrupt_idat.png", corrupt_data);
  write_bytes("truncated.png", Bytes(rgb.begin(), rgb.begin() + static_cast<long>(rgb.size() * 2 / 3)));
  write_bytes("huge_header.png", with_png_size(rgb, 30000, 30000));
}

void write_jpegs() {
  write_jpeg("baseline.jpg", 16, 16, 3, false);
  write_jpeg("progressive.jpg", 16, 16, 3, true);
  write_jpeg("grey.jpg", 16, 16, 1, false);
  write_jpeg("textured_64x64.jpg", 64, 64, 3, false);

  const Bytes textured = read_bytes("textured_64x64.jpg");
  fs::remove(folder / "textured_64x64.jpg");
  // Cut in the middle of the entropy-coded data: libjpeg only warns ("premature end").
  write_bytes("truncated.jpg", Bytes(textured.begin(), textured.begin() + static_cast<long>(textured.size() / 2)));
  // The frame header (SOF0: marker, length, precision, height, width) claims 30000 x 30000.
  Bytes huge = textured;
  const size_t sof = find_marker(huge, 0xC0);
  put_u16(huge, sof + 5, 30000);
  put_u16(huge, sof + 7, 30000);
  write_bytes("huge_header.jpg", huge);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: image_corpus <folder>\n";
    return 2;
  }
  folder = argv[1];
  fs::create_directories(folder);
  write_pngs();
  write_jpegs();
  return 0;
}
