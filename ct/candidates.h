#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include <torch/types.h>

#include "dlwpt/ct/volume.h"

namespace dlwpt::ct {

/// Index, row, column: the book's IrcTuple, in voxels (fractional for centers of mass).
using Irc = std::array<double, 3>;
/// Patient coordinates in millimetres, ITK's x, y, z.
using Xyz = std::array<double, 3>;

/// A connected region of the segmentation mask, a nodule candidate.
struct Candidate {
  int64_t id = 0;        ///< its label: 1.. in raster order of its first voxel (scipy's)
  Irc center_irc{};      ///< center of mass weighted by clip(HU, -1000, 1000) + 1001
  Xyz center_xyz{};      ///< the same point in patient space
  int64_t voxels = 0;
  double nodule_probability = std::numeric_limits<double>::quiet_NaN();
  double malignancy_probability = std::numeric_limits<double>::quiet_NaN();
};

/// Binary erosion with the 6-neighbour cross, one iteration, everything outside the volume
/// counting as background: scipy.ndimage.binary_erosion's defaults. bool D x H x W.
torch::Tensor binary_erosion(const torch::Tensor& mask);

/// Connected components with 6-connectivity (scipy.ndimage.label's default structure),
/// numbered 1.. in raster order of each component's first voxel; 0 is background.
struct Labels {
  torch::Tensor labels;  ///< int32 D x H x W
  int64_t count = 0;
};
Labels label_components(const torch::Tensor& mask);

/// One candidate per component: voxel count and the center of mass of
/// clip(HU, -1000, 1000) + 1001 over it (scipy.ndimage.center_of_mass), in float64.
std::vector<Candidate> group_candidates(const Labels& labels, const CtVolume& volume);

/// direction @ ((column, row, index) * spacing) + origin: the book's irc2xyz.
Xyz irc_to_xyz(const Irc& irc, const VolumeGeometry& geometry);

/// The inverse of irc_to_xyz, fractional voxels. (The book's xyz2irc rounds, and applies the
/// inverse direction from the right, the same for LUNA's diagonal directions.) Throws
/// ScanError for a singular direction matrix.
Irc xyz_to_irc(const Xyz& xyz, const VolumeGeometry& geometry);

/// The voxel (index, row, column) nearest a patient-space point, rounding halves to even as
/// numpy does; nullopt when it lies outside the volume.
std::optional<std::array<int64_t, 3>> nearest_voxel(const Xyz& xyz, const CtVolume& volume);

/// The classifier's input around a center: the `size` (index, row, column) box starting at
/// round(center) - size / 2, shifted to lie inside the volume (the book's getRawCandidate),
/// HU clipped to [-1000, 1000]; a volume smaller than the box along an axis is padded with
/// -1000 HU (air) at the far end. Returns float32 size[0] x size[1] x size[2].
torch::Tensor candidate_chunk(const torch::Tensor& hu, const Irc& center,
                              const std::array<int64_t, 3>& size);

}  // namespace dlwpt::ct
