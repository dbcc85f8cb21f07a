#include "dlwpt/ct/dicom_file.h"

#include <algorithm>
#include <cctype>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <gdcmDicts.h>
#include <gdcmGlobal.h>

namespace dlwpt::ct {

namespace {

constexpr uint64_t kPreambleBytes = 128;
constexpr uint32_t kUndefinedLength = 0xFFFFFFFF;
constexpr int kMaxNesting = 32;            // sequences in sequences; real files use a few
constexpr uint32_t kMaxKeptValue = 4096;   // longer values of the tags we read are malformed

constexpr uint32_t tag(uint16_t group, uint16_t element) { return uint32_t{group} << 16 | element; }
constexpr uint32_t kItem = tag(0xFFFE, 0xE000);
constexpr uint32_t kItemEnd = tag(0xFFFE, 0xE00D);
constexpr uint32_t kSequenceEnd = tag(0xFFFE, 0xE0DD);
constexpr uint32_t kTransferSyntax = tag(0x0002, 0x0010);
constexpr uint32_t kStorageClass = tag(0x0002, 0x0002);
// Media Storage SOP Classes of images (CT, MR, ...) start with this; a file of such a class
// without pixel data was cut (at an element boundary).
constexpr const char* kImageStoragePrefix = "1.2.840.10008.5.1.4.1.1.";
constexpr uint32_t kSeriesUid = tag(0x0020, 0x000E);
constexpr uint32_t kInstanceNumber = tag(0x0020, 0x0013);
constexpr uint32_t kPosition = tag(0x0020, 0x0032);
constexpr uint32_t kOrientation = tag(0x0020, 0x0037);
constexpr uint32_t kPixelSpacing = tag(0x0028, 0x0030);
constexpr uint32_t kRescaleIntercept = tag(0x0028, 0x1052);
constexpr uint32_t kRescaleSlope = tag(0x0028, 0x1053);
constexpr uint32_t kSamplesPerPixel = tag(0x0028, 0x0002);
constexpr uint32_t kFrames = tag(0x0028, 0x0008);
constexpr uint32_t kRows = tag(0x0028, 0x0010);
constexpr uint32_t kColumns = tag(0x0028, 0x0011);
constexpr uint32_t kBitsAllocated = tag(0x0028, 0x0100);
// More one-value US elements of the Image Pixel module: GDCM asserts (aborts the process) when
// one of them has another VR.
constexpr uint32_t kPlanarConfiguration = tag(0x0028, 0x0006);
constexpr uint32_t kBitsStored = tag(0x0028, 0x0101);
constexpr uint32_t kHighBit = tag(0x0028, 0x0102);
constexpr uint32_t kPixelRepresentation = tag(0x0028, 0x0103);
constexpr uint32_t kPixelData = tag(0x7FE0, 0x0010);

// Thrown inside the walk for the first structural defect; becomes DicomFileInfo::problem.
struct Malformed {
  std::string what;
};

std::string tag_name(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "(%04X,%04X)", value >> 16, value & 0xFFFF);
  return text;
}

// Value representations whose explicit-VR header has 2 reserved bytes and a 32-bit length.
bool has_long_length(const std::string& vr) {
  static const char* const kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                      "SV", "UC", "UN", "UR", "UT", "UV"};
  for (const char* candidate : kLong) {
    if (vr == candidate) return true;
  }
  return false;
}

// Every value representation of DICOM PS3.5 (2023); GDCM asserts on any other in explicit VR.
bool is_known_vr(const std::string& vr) {
  static const char* const kKnown[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS",
                                       "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH",
                                       "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
                                       "UR", "US", "UT", "UV"};
  for (const char* candidate : kKnown) {
    if (vr == candidate) return true;
  }
  return false;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  text.erase(0, text.find_first_not_of(' '));
  return text;
}

// A backslash-separated list of decimal strings (DS, IS); nullopt unless exactly N finite numbers.
template <size_t N>
std::optional<std::array<double, N>> numbers(const std::string& text) {
  std::array<double, N> values{};
  std::istringstream in(text);
  std::string item;
  size_t count = 0;
  while (std::getline(in, item, '\\')) {
    if (count == N) return std::nullopt;
    char* end = nullptr;
    const std::string value = trimmed(item);
    values[count] = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(values[count])) return std::nullopt;
    ++count;
  }
  if (count != N) return std::nullopt;
  return values;
}

// Whether an implicit VR element of undefined length may be a sequence: a private one, or one
// the standard's dictionary (GDCM's, consulted only) makes a sequence. GDCM parses any such
// element as a sequence, and ITK then asserts (aborting the process) converting a public
// non-sequence element, such as Referenced Frame Number, to text.
bool may_be_sequence(uint32_t at) {
  const uint16_t group = static_cast<uint16_t>(at >> 16);
  if (group % 2 == 1) return true;
  const auto& entry = gdcm::Global::GetInstance().GetDicts().GetDictEntry(
      gdcm::Tag(group, static_cast<uint16_t>(at & 0xFFFF)));
  return entry.GetVR() == gdcm::VR::SQ;
}

// Text from a file as a one-line message may show it: control and non-ASCII bytes as \xNN.
std::string printable(const std::string& text) {
  constexpr size_t kShown = 80;
  std::string shown;
  for (const char c : text.substr(0, kShown)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F) {
      shown += c;
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02X", byte);
      shown += escaped;
    }
  }
  return text.size() > kShown ? shown + "..." : shown;
}

// A UID (PS3.5: at most 64 characters, digits and dots). Letters are tolerated, as GDCM does;
// control characters or other bytes would reach output names and one-line summaries.
std::string checked_uid(const std::string& uid, uint32_t at) {
  constexpr size_t kMaxUidLength = 64;
  const bool plain = std::all_of(uid.begin(), uid.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
  if (uid.empty() || uid.size() > kMaxUidLength || !plain) {
    throw Malformed{"has " + tag_name(at) + " '" + printable(uid) + "', which is not a UID"};
  }
  return uid;
}

// Image Orientation (Patient): the row and the column direction, unit vectors at right angles.
bool is_orthonormal(const std::array<double, 6>& orientation) {
  constexpr double kTolerance = 1e-3;
  const auto dot = [&](int a, int b) {
    return orientation[a] * orientation[b] + orientation[a + 1] * orientation[b + 1] +
           orientation[a + 2] * orientation[b + 2];
  };
  const double row = dot(0, 0), column = dot(3, 3), across = dot(0, 3);
  return std::abs(row - 1) < kTolerance && std::abs(column - 1) < kTolerance && std::abs(across) < kTolerance;
}

struct ElementHeader {
  uint32_t tag = 0;
  std::string vr;  // empty for implicit VR and for items
  uint32_t length = 0;
};

// The image attributes needed to know how many pixel data bytes a file must hold.
struct PixelLayout {
  uint64_t rows = 0, columns = 0, bits_allocated = 0, samples = 1, frames = 1;
  bool has_rows = false;
  std::optional<uint64_t> native_bytes;  // the pixel data length, when not encapsulated
  bool encapsulated = false;
};

class Walker {
 public:
  Walker(const std::string& path, DicomFileInfo& info) : in_(path, std::ios::binary), info_(info) {
    std::error_code error;
    size_ = std::filesystem::file_size(path, error);
    if (error || !in_) throw Malformed{"cannot be read"};
  }

  bool is_part10() {
    if (size_ < kPreambleBytes + 4) return false;
    return read_string(kPreambleBytes, 4) == "DICM";
  }

  void walk() {
    pos_ = kPreambleBytes + 4;
    walk_meta_group();
    walk_data_set(size_, /*until_item_end=*/false, /*depth=*/0);
    check_pixel_data();
    if (info_.kind == DicomFileInfo::Kind::Image) read_decimal_tags();
  }

 private:
  std::string read_string(uint64_t offset, uint64_t count) {
    std::string bytes(count, '\0');
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    if (!in_.read(bytes.data(), static_cast<std::streamsize>(count))) throw Malformed{"cannot be read"};
    return bytes;
  }

  // Fails unless `count` more bytes lie before `end` (the file's, or the enclosing item's).
  void need(uint64_t count, uint64_t end, const char* what, uint32_t at = 0) {
    if (pos_ > end || count > end - pos_) {
      std::string message = std::string(what) + (at ? " " + tag_name(at) : "") + " at byte " +
                            std::to_string(pos_) + " needs " + std::to_string(count) + " bytes, ";
      message += end == size_ ? "past the end of the file (" + std::to_string(size_) + " bytes): truncated?"
                              : "past the end of its item";
      throw Malformed{message};
    }
  }

  uint64_t unsigned_value(const std::string& bytes) const {
    uint64_t value = 0;
    for (size_t i = 0; i < bytes.size(); ++i) {
      const auto byte = static_cast<unsigned char>(bytes[big_endian_ ? i : bytes.size() - 1 - i]);
      value = value << 8 | byte;
    }
    return value;
  }

  uint64_t read_unsigned(int bytes, uint64_t end, const char* what) {
    need(bytes, end, what);
    const uint64_t value = unsigned_value(read_string(pos_, bytes));
    pos_ += bytes;
    return value;
  }

  ElementHeader read_header(uint64_t end) {
    ElementHeader header;
    const uint64_t group = read_unsigned(2, end, "an element header");
    header.tag = static_cast<uint32_t>(group << 16 | read_unsigned(2, end, "an element header"));
    if (group == 0xFFFE || !explicit_vr_) {
      header.length = static_cast<uint32_t>(read_unsigned(4, end, "an element length"));
      return header;
    }
    need(2, end, "the VR of", header.tag);
    header.vr = read_string(pos_, 2);
    pos_ += 2;
    if (!is_known_vr(header.vr)) {
      throw Malformed{"element " + tag_name(header.tag) + " has an unknown value representation"};
    }
    if (has_long_length(header.vr)) {
      need(2, end, "element", header.tag);
      pos_ += 2;  // reserved
      header.length = static_cast<uint32_t>(read_unsigned(4, end, "an element length"));
    } else {
      header.length = static_cast<uint32_t>(read_unsigned(2, end, "an element length"));
    }
    return header;
  }

  // The file meta group is explicit VR little endian whatever the data set's transfer syntax.
  void walk_meta_group() {
    std::string syntax;
    while (size_ - pos_ >= 2 && read_string(pos_, 2) == std::string("\x02\x00", 2)) {
      const ElementHeader header = read_header(size_);
      if (header.length == kUndefinedLength) throw Malformed{"file meta element has an undefined length"};
      need(header.length, size_, "element", header.tag);
      if (header.tag == kTransferSyntax && header.length <= kMaxKeptValue) {
        syntax = trimmed(read_string(pos_, header.length));
      }
      if (header.tag == kStorageClass && header.length <= kMaxKeptValue) {
        storage_class_ = trimmed(read_string(pos_, header.length));
      }
      pos_ += header.length;
    }
    if (syntax.empty()) throw Malformed{"has no transfer syntax (0002,0010) in its file meta group"};
    if (syntax == "1.2.840.10008.1.2.1.99") throw Malformed{"uses the deflated transfer syntax, which is not supported"};
    explicit_vr_ = syntax != "1.2.840.10008.1.2";
    big_endian_ = syntax == "1.2.840.10008.1.2.2";
  }

  void walk_data_set(uint64_t end, bool until_item_end, int depth) {
    while (pos_ < end) {
      const ElementHeader header = read_header(end);
      if (header.tag == kItemEnd && until_item_end) return;
      if (header.tag >> 16 == 0xFFFE) throw Malformed{"has a stray item tag " + tag_name(header.tag) + " at byte " + std::to_string(pos_ - 8)};
      walk_value(header, end, depth);
    }
    if (until_item_end) throw Malformed{"ends inside a sequence item (no item delimiter): truncated?"};
  }

  void walk_value(const ElementHeader& header, uint64_t end, int depth) {
    if (header.length == kUndefinedLength) {
      if (header.tag == kPixelData && depth == 0) {
        pixels_.encapsulated = true;
        walk_fragments(end, header.tag);
      } else if (header.vr == "SQ" || header.vr == "UN" || (header.vr.empty() && may_be_sequence(header.tag))) {
        walk_items(end, /*undefined_length=*/true, depth + 1, header.tag);
      } else {
        throw Malformed{"element " + tag_name(header.tag) + (header.vr.empty() ? "" : " (" + header.vr + ")") +
                        " has an undefined length but is no sequence"};
      }
      return;
    }
    need(header.length, end, "element", header.tag);
    const uint64_t value_end = pos_ + header.length;
    if (header.vr == "SQ" || (header.vr.empty() && header.length >= 8 && starts_with_item())) {
      walk_items(value_end, /*undefined_length=*/false, depth + 1, header.tag);
      if (pos_ != value_end) throw Malformed{"sequence " + tag_name(header.tag) + " does not end where its length says"};
      return;
    }
    check_vr(header);
    if (depth == 0) keep(header);
    pos_ = value_end;
  }

  bool starts_with_item() {
    const uint64_t start = pos_;
    const bool item = read_unsigned(2, size_, "an item") == 0xFFFE && read_unsigned(2, size_, "an item") == 0xE000;
    pos_ = start;
    return item;
  }

  void walk_items(uint64_t end, bool undefined_length, int depth, uint32_t sequence) {
    if (depth > kMaxNesting) throw Malformed{"nests sequences deeper than " + std::to_string(kMaxNesting)};
    while (undefined_length || pos_ < end) {
      const ElementHeader item = read_header(end);
      if (item.tag == kSequenceEnd) {
        if (undefined_length) return;
        continue;  // tolerated inside a defined length
      }
      if (item.tag != kItem) throw Malformed{"sequence " + tag_name(sequence) + " holds " + tag_name(item.tag) + " where an item should be"};
      if (item.length == kUndefinedLength) {
        walk_data_set(end, /*until_item_end=*/true, depth);
      } else {
        need(item.length, end, "an item of", sequence);
        const uint64_t item_end = pos_ + item.length;
        walk_data_set(item_end, /*until_item_end=*/false, depth);
      }
    }
  }

  // Encapsulated (compressed) pixel data: items of defined length up to a sequence delimiter.
  void walk_fragments(uint64_t end, uint32_t at) {
    while (true) {
      const ElementHeader fragment = read_header(end);
      if (fragment.tag == kSequenceEnd) return;
      if (fragment.tag != kItem || fragment.length == kUndefinedLength) {
        throw Malformed{"encapsulated pixel data holds " + tag_name(fragment.tag) + " where a fragment should be"};
      }
      need(fragment.length, end, "a fragment of", at);
      pos_ += fragment.length;
    }
  }

  // GDCM asserts (aborting the process) when an element it interprets has another value
  // representation than the standard's; an explicit VR file may say anything. Checked at any
  // depth: enhanced multi-frame files hold spacing and position in functional group sequences.
  static void check_vr(const ElementHeader& header) {
    static const std::map<uint32_t, const char*> kStandardVr = {
        {kSamplesPerPixel, "US"}, {kPlanarConfiguration, "US"}, {kRows, "US"}, {kColumns, "US"},
        {kBitsAllocated, "US"}, {kBitsStored, "US"}, {kHighBit, "US"}, {kPixelRepresentation, "US"},
        {kFrames, "IS"}, {kInstanceNumber, "IS"},
        {kPosition, "DS"}, {kOrientation, "DS"}, {kPixelSpacing, "DS"}, {kRescaleIntercept, "DS"},
        {kRescaleSlope, "DS"}, {tag(0x0018, 0x0050), "DS"} /* Slice Thickness */,
        {tag(0x0018, 0x0088), "DS"} /* Spacing Between Slices */,
        {tag(0x0018, 0x1164), "DS"} /* Imager Pixel Spacing */,
        {tag(0x0018, 0x2010), "DS"} /* Nominal Scanned Pixel Spacing */,
        {tag(0x3002, 0x0011), "DS"} /* Image Plane Pixel Spacing */};
    const auto standard = kStandardVr.find(header.tag);
    if (standard == kStandardVr.end() || header.vr.empty() || header.vr == standard->second) return;
    throw Malformed{"element " + tag_name(header.tag) + " has VR " + printable(header.vr) + ", not " +
                    standard->second};
  }

  // Records the top-level values the series grouping and the pixel data check need.
  void keep(const ElementHeader& header) {
    if (header.tag == kPixelData) {
      pixels_.native_bytes = header.length;
      return;
    }
    static const uint32_t kKept[] = {kSeriesUid, kInstanceNumber, kPosition, kOrientation,
                                     kPixelSpacing, kRescaleIntercept, kRescaleSlope,
                                     kSamplesPerPixel, kFrames, kRows, kColumns, kBitsAllocated,
                                     kPlanarConfiguration, kBitsStored, kHighBit, kPixelRepresentation};
    if (std::find(std::begin(kKept), std::end(kKept), header.tag) == std::end(kKept)) return;
    if (header.length > kMaxKeptValue) throw Malformed{"element " + tag_name(header.tag) + " is " + std::to_string(header.length) + " bytes long"};
    const std::string bytes = read_string(pos_, header.length);
    const auto small_unsigned = [&] {
      if (bytes.size() != 2) throw Malformed{"element " + tag_name(header.tag) + " is not one 16-bit value"};
      return unsigned_value(bytes);
    };
    switch (header.tag) {
      case kSeriesUid: info_.series_uid = checked_uid(trimmed(bytes), header.tag); break;
      case kInstanceNumber: {
        const std::string text = trimmed(bytes);
        char* stop = nullptr;
        const long value = std::strtol(text.c_str(), &stop, 10);
        if (!text.empty() && *stop == '\0') info_.instance_number = value;
        break;
      }
      case kPosition:
      case kOrientation:
      case kPixelSpacing:
      case kRescaleIntercept:
      case kRescaleSlope: decimal_texts_[header.tag] = trimmed(bytes); break;
      case kSamplesPerPixel: pixels_.samples = small_unsigned(); break;
      case kFrames: pixels_.frames = std::strtoull(trimmed(bytes).c_str(), nullptr, 10); break;
      case kRows: pixels_.rows = small_unsigned(), pixels_.has_rows = true; break;
      case kColumns: pixels_.columns = small_unsigned(); break;
      case kBitsAllocated: pixels_.bits_allocated = small_unsigned(); break;
      case kPlanarConfiguration:
      case kBitsStored:
      case kHighBit:
      case kPixelRepresentation: small_unsigned(); break;
      default: break;
    }
  }

  // The geometry and value tags of an image (dicom_file.h lists their checks). GDCM would read
  // a value it cannot parse as 0 (an intercept of 0 for -1024 shifts a slice by 1024 HU) and
  // turn a spacing of 0 into 1, putting every voxel or candidate at a wrong place.
  void read_decimal_tags() {
    info_.position = decimals<3>(kPosition, "Image Position (Patient)");
    info_.orientation = decimals<6>(kOrientation, "Image Orientation (Patient)");
    info_.pixel_spacing = decimals<2>(kPixelSpacing, "Pixel Spacing");
    if (const auto intercept = decimals<1>(kRescaleIntercept, "Rescale Intercept")) {
      info_.rescale_intercept = (*intercept)[0];
    }
    if (const auto slope = decimals<1>(kRescaleSlope, "Rescale Slope")) info_.rescale_slope = (*slope)[0];
    if (info_.orientation && !is_orthonormal(*info_.orientation)) {
      throw Malformed{"has Image Orientation (Patient) whose row and column directions are not "
                      "orthogonal unit vectors"};
    }
    const auto& spacing = info_.pixel_spacing;
    if (spacing && !((*spacing)[0] > 0 && (*spacing)[1] > 0)) {
      throw Malformed{"has Pixel Spacing '" + decimal_texts_.at(kPixelSpacing) +
                      "' mm; both must be positive"};
    }
    if (info_.rescale_slope == 0.0) throw Malformed{"has Rescale Slope 0"};
  }

  // A kept decimal-string tag as N finite numbers; nullopt when the file has no such tag.
  template <size_t N>
  std::optional<std::array<double, N>> decimals(uint32_t at, const char* name) const {
    const auto found = decimal_texts_.find(at);
    if (found == decimal_texts_.end()) return std::nullopt;
    const auto values = numbers<N>(found->second);
    if (!values) {
      throw Malformed{"has " + std::string(name) + " '" + printable(found->second) + "', not " +
                      std::to_string(N) + (N == 1 ? " finite number" : " finite numbers")};
    }
    return values;
  }

  void check_pixel_data() {
    if (!pixels_.native_bytes && !pixels_.encapsulated) {
      if (pixels_.has_rows || storage_class_.rfind(kImageStoragePrefix, 0) == 0) {
        throw Malformed{"is an image without pixel data (7FE0,0010): truncated?"};
      }
      info_.kind = DicomFileInfo::Kind::NonImage;
      return;
    }
    info_.kind = DicomFileInfo::Kind::Image;
    if (pixels_.encapsulated) return;  // compressed: the decoder checks the frames
    if (pixels_.rows == 0 || pixels_.columns == 0 || pixels_.samples == 0 || pixels_.frames == 0 ||
        (pixels_.bits_allocated != 1 && pixels_.bits_allocated % 8 != 0) || pixels_.bits_allocated > 64) {
      throw Malformed{"has pixel data but no valid rows, columns, samples, frames or bits allocated"};
    }
    // At most 65535^2 * 65535 * 8 bytes per frame: frames are capped so the product cannot wrap.
    if (pixels_.frames > (uint64_t{1} << 20)) throw Malformed{"claims " + std::to_string(pixels_.frames) + " frames"};
    const uint64_t values = pixels_.rows * pixels_.columns * pixels_.samples * pixels_.frames;
    const uint64_t expected = pixels_.bits_allocated == 1 ? (values + 7) / 8 : values * (pixels_.bits_allocated / 8);
    const uint64_t padded = expected + expected % 2;
    if (*pixels_.native_bytes != expected && *pixels_.native_bytes != padded) {
      throw Malformed{"has " + std::to_string(*pixels_.native_bytes) + " bytes of pixel data where " +
                      std::to_string(pixels_.rows) + " rows x " + std::to_string(pixels_.columns) +
                      " columns x " + std::to_string(pixels_.samples) + " samples x " +
                      std::to_string(pixels_.bits_allocated) + " bits x " +
                      std::to_string(pixels_.frames) + " frames need " + std::to_string(expected)};
    }
  }

  std::ifstream in_;
  DicomFileInfo& info_;
  uint64_t size_ = 0;
  uint64_t pos_ = 0;
  bool explicit_vr_ = true;
  bool big_endian_ = false;
  PixelLayout pixels_;
  std::string storage_class_;
  std::map<uint32_t, std::string> decimal_texts_;  // the kept DS tags, read once the file is an image
};

}  // namespace

namespace {

// Whether the file's name says it is a DICOM image (.dcm, .dicom, .ima in any case).
bool named_as_dicom(const std::string& path) {
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return extension == ".dcm" || extension == ".dicom" || extension == ".ima";
}

}  // namespace

DicomFileInfo inspect_dicom_file(const std::string& path) {
  DicomFileInfo info;
  try {
    Walker walker(path, info);
    if (!walker.is_part10()) {
      // A slice cut inside its first 132 bytes has no "DICM" left; ignoring it would lose a
      // slice silently (at either end of a series no spacing check can notice).
      if (named_as_dicom(path)) {
        info.kind = DicomFileInfo::Kind::Broken;
        info.problem = "is named as a DICOM file but lacks the DICOM header (a 128-byte "
                       "preamble and \"DICM\"): cut short, or not DICOM";
      }
      return info;  // NotDicom
    }
    walker.walk();
  } catch (const Malformed& malformed) {
    info.kind = DicomFileInfo::Kind::Broken;
    info.problem = malformed.what;
  }
  return info;
}

}  // namespace dlwpt::ct
