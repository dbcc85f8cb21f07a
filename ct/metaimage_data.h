#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dlwpt::ct {

/// The voxel data a MetaImage header declares, as MetaIO parsed the header.
struct MetaImageShape {
  std::vector<int64_t> dims;  ///< DimSize, x fastest
  uint64_t voxel_bytes = 0;   ///< element size x channels
};

/// Checks, before MetaIO reads anything, that the data a MetaImage header points to is there
/// whole: MetaIO only warns about missing or short data and "succeeds" with zeros or
/// uninitialised memory. Covers every form: LOCAL (.mha) and external data; raw and zlib
/// (CompressedData = True: the stream is inflated to check it is valid, complete and exactly
/// the expected size); one file, a LIST of files, or a printf pattern ("f%03d.raw 1 99 1"),
/// each file holding its share; HeaderSize bytes skipped in each data file, -1 meaning the
/// data ends the file. Throws ScanError naming the file and the problem.
void check_metaimage_data(const std::string& header_path, const MetaImageShape& shape);

/// Checks, before MetaIO parses anything, that the file starts with a MetaImage header MetaIO
/// can take: "Key = Value" lines, each at most 254 characters (MetaIO copies fields into
/// fixed 255-byte buffers with strcpy), up to an ElementDataFile line. Without that line MetaIO
/// goes on to read the binary data as header lines and overflows its buffers. Also refuses
/// voxels MetaIO would misread without complaint: text (BinaryData = False), non-numeric
/// element types, more than one channel; and fields MetaIO would misread or blame on another
/// field: NDims other than 3, DimSize other than 3 whole numbers from 1 to 2^31 - 1, spacings,
/// positions and directions that are not 3 (or 9) finite numbers. Throws ScanError naming the
/// file, the field and the problem.
void check_metaimage_header(const std::string& header_path);

/// The "Key = Value" fields of a MetaImage header up to its ElementDataFile line, which ends it,
/// read as check_metaimage_header and MetaIO read them: by line, one value per key. Where
/// the data is (ElementDataFile's value) must be taken from here, never by searching the text:
/// a comment or another key may hold the same words. Throws ScanError as check_metaimage_header.
std::map<std::string, std::string> metaimage_header_fields(const std::string& header_path);

}  // namespace dlwpt::ct
