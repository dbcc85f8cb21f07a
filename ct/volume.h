#pragma once

#include <array>
#include <stdexcept>
#include <string>

#include <torch/types.h>

#include "dlwpt/weights/errors.h"

namespace dlwpt::ct {

/// Thrown for every problem reading or writing a scan; `what()` names the file or folder.
class ScanError : public FileError {
 public:
  using FileError::FileError;
};

/// Where the voxels of a volume lie in patient space (millimetres), in ITK's x, y, z order:
/// the patient position of voxel (column, row, index) is
/// direction * ((column, row, index) * spacing) + origin.
struct VolumeGeometry {
  std::array<double, 3> origin{0, 0, 0};
  std::array<double, 3> spacing{1, 1, 1};
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};  ///< row-major 3x3
};

/// A CT scan in Hounsfield units, laid out as SimpleITK's `GetArrayFromImage` gives it to the
/// book: `hu` is [index, row, column] = [z, y, x].
struct CtVolume {
  torch::Tensor hu;  ///< float32, D x H x W
  VolumeGeometry geometry;
  std::string series_uid;  ///< DICOM SeriesInstanceUID, or the MetaImage file's stem

  int64_t slices() const { return hu.size(0); }
  int64_t rows() const { return hu.size(1); }
  int64_t columns() const { return hu.size(2); }
};

}  // namespace dlwpt::ct
