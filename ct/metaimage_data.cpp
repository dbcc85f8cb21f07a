#include "dlwpt/ct/metaimage_data.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "dlwpt/ct/volume.h"
#include "dlwpt/weights/numbers.h"

namespace dlwpt::ct {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxHeaderLine = 64 * 1024;  // a longer LIST line is data, not a file name
constexpr size_t kChunk = 64 * 1024;

// The header fields that say where the data is, and where the header's own text ends.
struct DataLocation {
  std::map<std::string, std::string> fields;
  uint64_t end_of_header = 0;               // the byte after the ElementDataFile line
  std::vector<std::string> following_lines;  // the lines after it, for LIST
};

std::string trimmed(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

// MetaIO reads "Key = Value" lines up to ElementDataFile, which ends the header. It copies
// fields into fixed 255-byte buffers with strcpy, and without an ElementDataFile line it goes
// on to read the binary data as header lines and overflows them: so every line up to that one
// must be "Key = Value" of at most 254 characters, read without ever holding more.
DataLocation read_data_location(const std::string& header_path, size_t list_lines) {
  constexpr size_t kLongestLine = 254;
  constexpr int kMostLines = 200;  // MetaIO knows about 40 keys; a header is never longer
  std::ifstream in(header_path, std::ios::binary);
  if (!in) throw ScanError("scan '" + header_path + "' cannot be opened");
  const auto not_a_header = [&](const std::string& why) {
    return ScanError("scan '" + header_path + "' is not a MetaImage header: " + why);
  };
  DataLocation location;
  std::string line;
  for (int number = 1; number <= kMostLines; ++number) {
    line.clear();
    char c = 0;
    bool newline = false;
    while (in.get(c) && !(newline = c == '\n')) {
      if (line.size() == kLongestLine) {
        throw not_a_header("line " + std::to_string(number) + " is longer than " +
                           std::to_string(kLongestLine) + " characters");
      }
      line += c;
    }
    if (line.empty() && !newline) break;  // the end of the file
    location.end_of_header += line.size() + (newline ? 1 : 0);
    const std::string text = trimmed(line);
    if (text.empty()) continue;
    const auto equals = text.find('=');
    const std::string key = equals == std::string::npos ? "" : trimmed(text.substr(0, equals));
    const bool word = !key.empty() && std::all_of(key.begin(), key.end(), [](unsigned char k) {
      return std::isalnum(k) || k == '_';
    });
    if (!word) throw not_a_header("line " + std::to_string(number) + " is not 'Key = Value'");
    // MetaIO and this check must read one value per key: with two, MetaIO may take the other
    // (an NDims of 10^60 had it reading numbers without end).
    if (!location.fields.emplace(key, trimmed(text.substr(equals + 1))).second) {
      throw not_a_header("line " + std::to_string(number) + " repeats the key '" + key + "'");
    }
    if (key != "ElementDataFile") continue;
    while (location.following_lines.size() < list_lines && std::getline(in, line) &&
           line.size() <= kMaxHeaderLine) {
      location.following_lines.push_back(trimmed(line));
    }
    return location;
  }
  throw not_a_header("it has no ElementDataFile line");
}

std::string field_of(const DataLocation& location, const char* key) {
  const auto found = location.fields.find(key);
  return found == location.fields.end() ? std::string() : found->second;
}

bool is_true(const std::string& value) { return value == "True" || value == "true" || value == "1"; }

int64_t integer_field(const DataLocation& location, const std::string& key, const std::string& header) {
  const auto found = location.fields.find(key);
  if (found == location.fields.end() || found->second.empty()) return 0;
  if (const auto value = parse_integer(found->second)) return *value;
  throw ScanError("scan '" + header + "': " + key + " '" + found->second + "' is not an integer");
}

// Voxels stored as binary numbers of one channel: MetaIO reads text voxels (BinaryData =
// False) and types such as MET_STRING without complaint, as zeros or as bytes.
void check_voxel_encoding(const DataLocation& location, const std::string& header) {
  const std::string binary = field_of(location, "BinaryData");
  if (!binary.empty() && !is_true(binary)) {
    throw ScanError("scan '" + header + "': BinaryData = " + binary + " (voxels as text) is not supported");
  }
  static const std::set<std::string> kNumericTypes = {
      "MET_CHAR", "MET_UCHAR", "MET_SHORT", "MET_USHORT", "MET_INT", "MET_UINT", "MET_LONG",
      "MET_ULONG", "MET_LONG_LONG", "MET_ULONG_LONG", "MET_FLOAT", "MET_DOUBLE"};
  const std::string type = field_of(location, "ElementType");
  if (!kNumericTypes.count(type)) {
    throw ScanError("scan '" + header + "': ElementType '" + type + "' is not a numeric voxel type");
  }
  const std::string channels = field_of(location, "ElementNumberOfChannels");
  if (!channels.empty() && channels != "1") {
    throw ScanError("scan '" + header + "': " + channels + " channels per voxel; a CT has one");
  }
}

// The whitespace-separated numbers of a field, when every one is finite.
std::optional<std::vector<double>> finite_numbers(const std::string& text) {
  std::vector<double> values;
  std::istringstream in(text);
  std::string item;
  while (in >> item) {
    char* end = nullptr;
    const double value = std::strtod(item.c_str(), &end);
    if (*end != '\0' || !std::isfinite(value)) return std::nullopt;
    values.push_back(value);
  }
  return values;
}

// The dimensions, sizes and geometry fields, checked as a CT volume needs them before MetaIO
// reads them: MetaIO takes a value it cannot parse or a field with too few values as missing
// (and blames another field, in several lines), wraps a negative size to 2^32 - n, and takes
// NaN and infinite positions and directions.
void check_geometry_fields(const DataLocation& location, const std::string& header) {
  constexpr int kDims = 3;
  constexpr uint64_t kLargestSide = (uint64_t{1} << 31) - 1;
  const std::string ndims = field_of(location, "NDims");
  if (ndims.empty()) throw ScanError("scan '" + header + "' has no NDims line");
  if (integer_field(location, "NDims", header) != kDims) {
    throw ScanError("scan '" + header + "' is " + ndims + "D; a CT volume must be 3D");
  }
  const std::string sizes = field_of(location, "DimSize");
  std::istringstream in(sizes);
  std::string side;
  int count = 0;
  bool valid = true;
  while (in >> side) {
    ++count;
    const bool digits = std::all_of(side.begin(), side.end(), ::isdigit);  // no sign
    const uint64_t value = parse_unsigned(side).value_or(0);
    valid = valid && digits && value >= 1 && value <= kLargestSide;
  }
  if (!valid || count != kDims) {
    throw ScanError("scan '" + header + "': DimSize '" + sizes + "' is not 3 whole numbers from 1 to " +
                    std::to_string(kLargestSide));
  }
  static const std::pair<const char*, size_t> kNumberFields[] = {
      {"ElementSpacing", kDims}, {"ElementSize", kDims}, {"Offset", kDims}, {"Position", kDims},
      {"Origin", kDims}, {"CenterOfRotation", kDims}, {"TransformMatrix", kDims * kDims},
      {"Rotation", kDims * kDims}, {"Orientation", kDims * kDims}};
  for (const auto& [key, expected] : kNumberFields) {
    const auto found = location.fields.find(key);
    if (found == location.fields.end()) continue;
    const auto values = finite_numbers(found->second);
    if (!values || values->size() != expected) {
      throw ScanError("scan '" + header + "': " + key + " '" + found->second + "' is not " +
                      std::to_string(expected) + " finite numbers");
    }
    const bool spacing = std::string(key) == "ElementSpacing" || std::string(key) == "ElementSize";
    if (spacing && std::count(values->begin(), values->end(), 0.0) > 0) {
      throw ScanError("scan '" + header + "': " + key + " '" + found->second + "' has a spacing of 0");
    }
  }
}

// One data file and the bytes of voxels it must hold.
struct DataPiece {
  std::string path;
  uint64_t bytes = 0;
  uint64_t start = 0;  // where the data begins (LOCAL: after the header)
  bool local = false;
};

struct Encoding {
  bool compressed = false;
  uint64_t compressed_bytes = 0;  // 0: to the end of the file
  int64_t header_size = 0;        // bytes skipped in an external data file; -1: data ends the file
};

std::string describe(const DataPiece& piece, const std::string& header) {
  return "scan '" + header + "': " + (piece.local ? "its data" : "its data file '" + piece.path + "'");
}

// Inflates [start, end) of the file in chunks (never the whole volume at once) and checks
// the stream is valid zlib, complete, and exactly `piece.bytes` long.
void check_compressed(std::ifstream& in, const DataPiece& piece, uint64_t end, const std::string& header) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 32) != Z_OK) throw ScanError(describe(piece, header) + ": zlib cannot start");
  std::vector<unsigned char> input(kChunk), output(kChunk);
  uint64_t position = piece.start, inflated = 0;
  int status = Z_OK;
  in.seekg(static_cast<std::streamoff>(position));
  while (status != Z_STREAM_END) {
    if (stream.avail_in == 0) {
      const uint64_t count = std::min<uint64_t>(kChunk, end - position);
      if (count == 0) break;
      in.read(reinterpret_cast<char*>(input.data()), static_cast<std::streamsize>(count));
      if (static_cast<uint64_t>(in.gcount()) != count) break;
      position += count;
      stream.next_in = input.data();
      stream.avail_in = static_cast<uInt>(count);
    }
    stream.next_out = output.data();
    stream.avail_out = static_cast<uInt>(output.size());
    status = inflate(&stream, Z_NO_FLUSH);
    inflated += output.size() - stream.avail_out;
    if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR) break;
    if (inflated > piece.bytes) break;
  }
  const std::string zlib_message = stream.msg ? stream.msg : "";
  inflateEnd(&stream);
  if (inflated > piece.bytes) {
    throw ScanError(describe(piece, header) + " inflates to more than the " + std::to_string(piece.bytes) +
                    " bytes the header needs");
  }
  if (status != Z_STREAM_END && status != Z_OK && status != Z_BUF_ERROR) {
    throw ScanError(describe(piece, header) + " holds invalid zlib data (" +
                    (zlib_message.empty() ? "error " + std::to_string(status) : zlib_message) + ")");
  }
  if (status != Z_STREAM_END || inflated != piece.bytes) {
    throw ScanError(describe(piece, header) + " is truncated (its zlib data inflates to " +
                    std::to_string(inflated) + " bytes, the header needs " + std::to_string(piece.bytes) + ")");
  }
}

void check_piece(DataPiece piece, const Encoding& encoding, const std::string& header) {
  if (const auto problem = regular_file_problem(piece.path)) {
    throw ScanError(describe(piece, header) + " " + *problem);
  }
  std::error_code error;
  const uint64_t size = fs::file_size(piece.path, error);
  if (error) throw ScanError(describe(piece, header) + " cannot be read (" + error.message() + ")");
  if (!piece.local && encoding.header_size > 0) piece.start = static_cast<uint64_t>(encoding.header_size);
  if (piece.start > size) {
    throw ScanError(describe(piece, header) + " is truncated (" + std::to_string(size) +
                    " bytes, its data should start at byte " + std::to_string(piece.start) + ")");
  }
  if (!encoding.compressed) {
    if (size - piece.start < piece.bytes) {
      throw ScanError(describe(piece, header) + " is truncated (" + std::to_string(size - piece.start) +
                      " bytes, the header needs " + std::to_string(piece.bytes) + ")");
    }
    // More data than DimSize and ElementType describe means that one of them is wrong: the
    // voxels would be read misaligned or only in part.
    if (size - piece.start > piece.bytes) {
      throw ScanError(describe(piece, header) + " holds " + std::to_string(size - piece.start) +
                      " bytes, the header describes " + std::to_string(piece.bytes) +
                      " (a wrong DimSize or ElementType?)");
    }
    return;
  }
  const uint64_t end = encoding.compressed_bytes ? piece.start + encoding.compressed_bytes : size;
  if (end > size) {
    throw ScanError(describe(piece, header) + " is truncated (" + std::to_string(size - piece.start) +
                    " bytes of zlib data, CompressedDataSize says " + std::to_string(encoding.compressed_bytes) + ")");
  }
  std::ifstream in(piece.path, std::ios::binary);
  if (!in) throw ScanError(describe(piece, header) + " cannot be opened");
  check_compressed(in, piece, end, header);
}

// "LIST 2D", "LIST 2" or "LIST": the dimension of each file (default: slices, NDims - 1).
size_t file_dimension(const std::string& text, size_t dims, const std::string& header) {
  if (text.empty()) return dims - 1;
  const int value = std::atoi(text.c_str());
  if (value < 1 || static_cast<size_t>(value) > dims) {
    throw ScanError("scan '" + header + "': ElementDataFile gives the file dimension '" + text + "'");
  }
  return static_cast<size_t>(value);
}

std::string beside(const std::string& header, const std::string& name) {
  if (fs::path(name).is_absolute()) return name;
  return (fs::path(header).parent_path() / name).string();
}

// "slice%03d.raw 1 99 1 [2]": MetaIO formats each name with the header's text as the printf
// format, so only a single integer conversion is let through.
std::vector<std::string> pattern_files(const std::string& value, size_t dims, size_t files,
                                       const std::string& header) {
  static const std::regex kPattern(R"(^(\S*?)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)(?:\s+(\d+)D?)?$)");
  static const std::regex kFormat(R"(^([^%]|%%)*%0?\d{0,2}d([^%]|%%)*$)");
  std::smatch match;
  const auto fail = [&](const std::string& why) {
    return ScanError("scan '" + header + "': the file pattern '" + value + "' " + why);
  };
  if (!std::regex_match(value, match, kPattern)) throw fail("is not 'format first last step'");
  const std::string format = match[1];
  if (!std::regex_match(format, kFormat)) throw fail("needs exactly one integer conversion (%d)");
  // The indices are printed through %d: they must be ints.
  const auto index = [&](int group) -> int64_t {
    const auto value = parse_integer(match.str(group));
    if (!value || *value < std::numeric_limits<int>::min() || *value > std::numeric_limits<int>::max()) {
      throw fail("has an index beyond the range of an int");
    }
    return *value;
  };
  const int64_t first = index(2), last = index(3), step = index(4);
  if (step <= 0 || last < first) throw fail("needs a positive step and last >= first");
  if (match[5].matched && file_dimension(match[5], dims, header) != dims - 1) {
    throw fail("gives a file dimension other than slices");
  }
  if (static_cast<unsigned long long>((last - first) / step + 1) != files) {
    throw fail("names " + std::to_string((last - first) / step + 1) + " files, the volume needs " +
               std::to_string(files));
  }
  std::vector<std::string> names;
  for (int64_t number = first; number <= last; number += step) {
    char name[4096];
    std::snprintf(name, sizeof name, format.c_str(), static_cast<int>(number));
    names.push_back(beside(header, name));
  }
  return names;
}

}  // namespace

void check_metaimage_header(const std::string& header_path) {
  const DataLocation location = read_data_location(header_path, 0);
  check_geometry_fields(location, header_path);
  check_voxel_encoding(location, header_path);
}

std::map<std::string, std::string> metaimage_header_fields(const std::string& header_path) {
  return read_data_location(header_path, 0).fields;
}

void check_metaimage_data(const std::string& header_path, const MetaImageShape& shape) {
  uint64_t total = shape.voxel_bytes;
  for (int64_t side : shape.dims) total *= static_cast<uint64_t>(side);  // sizes checked by the caller
  const size_t dims = shape.dims.size();

  // The number of LIST files is needed before reading the lines that name them.
  const DataLocation first_pass = read_data_location(header_path, 0);
  const std::string data = first_pass.fields.at("ElementDataFile");
  const bool list = data.rfind("LIST", 0) == 0;
  size_t per_file_dims = dims;
  if (list) per_file_dims = file_dimension(trimmed(data.substr(4)), dims, header_path);
  const bool pattern = data.find('%') != std::string::npos;
  if (pattern) per_file_dims = dims - 1;
  size_t files = 1;
  for (size_t axis = per_file_dims; axis < dims; ++axis) files *= static_cast<size_t>(shape.dims[axis]);
  const DataLocation location = list ? read_data_location(header_path, files) : first_pass;

  Encoding encoding;
  encoding.compressed = is_true(field_of(location, "CompressedData"));
  const int64_t compressed_bytes = integer_field(location, "CompressedDataSize", header_path);
  if (compressed_bytes < 0) {
    throw ScanError("scan '" + header_path + "': CompressedDataSize " + std::to_string(compressed_bytes) +
                    " is negative");
  }
  encoding.compressed_bytes = static_cast<uint64_t>(compressed_bytes);
  encoding.header_size = integer_field(location, "HeaderSize", header_path);
  if (encoding.header_size < -1) throw ScanError("scan '" + header_path + "': HeaderSize " + std::to_string(encoding.header_size) + " is negative");

  std::vector<DataPiece> pieces;
  if (data == "LOCAL") {
    pieces.push_back({header_path, total, location.end_of_header, true});
  } else if (list || pattern) {
    std::vector<std::string> names;
    if (pattern) {
      names = pattern_files(data, dims, files, header_path);
    } else {
      for (const auto& name : location.following_lines) {
        if (!name.empty()) names.push_back(beside(header_path, name));
      }
      if (names.size() != files) {
        throw ScanError("scan '" + header_path + "': its LIST names " + std::to_string(names.size()) +
                        " data files, the volume needs " + std::to_string(files));
      }
    }
    for (const auto& name : names) pieces.push_back({name, total / files});
  } else {
    pieces.push_back({beside(header_path, data), total});
  }
  for (auto& piece : pieces) {
    // HeaderSize = -1: the data is the last bytes of the file (uncompressed data only).
    if (encoding.header_size == -1 && !encoding.compressed) {
      std::error_code error;
      const uint64_t size = fs::file_size(piece.path, error);
      if (!error && size >= piece.bytes) piece.start = size - piece.bytes;
    }
    check_piece(piece, encoding, header_path);
  }
}

}  // namespace dlwpt::ct
