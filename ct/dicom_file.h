#pragma once

#include <array>
#include <optional>
#include <string>

namespace dlwpt::ct {

/// What a file of a DICOM folder is, found by walking its element structure without GDCM.
/// GDCM trusts the lengths a file declares (Debian builds it with assertions, which abort the
/// whole process on a truncated file), so every file is walked here first and only sound ones
/// reach GDCM.
struct DicomFileInfo {
  enum class Kind {
    NotDicom,  ///< no "DICM" after the 128-byte preamble: some other file, ignored (a file named
               ///< .dcm, .dicom or .ima without it is Broken: a slice cut short)
    Image,     ///< a sound DICOM image
    NonImage,  ///< a sound DICOM object without pixel data (a report, a DICOMDIR): ignored
    Broken,    ///< a DICOM file whose structure is cut or inconsistent: `problem` says how
  };
  Kind kind = Kind::NotDicom;
  std::string problem;     ///< for Broken: one line, e.g. "element (0028,0010) ends past the end..."
  std::string series_uid;  ///< (0020,000E), when read before any problem
  // The geometry and value tags of an Image, each checked when present: finite numbers, an
  // orientation of two orthogonal unit vectors, a positive spacing, a slope that is not 0. A
  // tag that fails makes the file Broken (GDCM would read an unparsable value as 0).
  std::optional<std::array<double, 3>> position;       ///< (0020,0032) Image Position (Patient)
  std::optional<std::array<double, 6>> orientation;    ///< (0020,0037) Image Orientation (Patient)
  std::optional<std::array<double, 2>> pixel_spacing;  ///< (0028,0030) row, column spacing in mm
  std::optional<double> rescale_intercept;             ///< (0028,1052)
  std::optional<double> rescale_slope;                 ///< (0028,1053)
  std::optional<long> instance_number;                 ///< (0020,0013)
};

/// Walks a DICOM Part-10 file (preamble, "DICM", file meta group, then the data set in its
/// transfer syntax: explicit or implicit VR, little or big endian, nested sequences, and
/// encapsulated pixel data), checking that every element lies within the file and that
/// uncompressed pixel data holds exactly rows x columns x samples x bits/8 x frames bytes.
/// Only GDCM's data dictionary is consulted (whether a tag is a sequence), never its parser.
/// Never throws for the file's content; an unreadable file is Broken, and so is an image whose
/// geometry or value tags fail the checks above.
DicomFileInfo inspect_dicom_file(const std::string& path);

}  // namespace dlwpt::ct
