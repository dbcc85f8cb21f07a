#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

#include "dlwpt/ct/candidates.h"
#include "dlwpt/ct/volume.h"

namespace dlwpt::ct {

/// A true nodule from a LUNA annotations CSV (annotations.csv, or the book's
/// annotations_with_malignancy.csv whose mal_bool column marks malignant ones).
struct Annotation {
  Xyz center_xyz{};
  double diameter_mm = 0;
  bool malignant = false;
};

/// Annotations by series UID. Throws std::runtime_error naming the file and line for a
/// missing column or a malformed number.
std::map<std::string, std::vector<Annotation>> read_annotations(const std::string& path);

/// The book's nodule mask (chapter 13, `buildAnnotationMask`): around each annotated center a
/// box grown along each axis, from a radius of 2, while the voxels at center +- radius stay
/// above `threshold_hu`; the union of the boxes, intersected with hu > threshold_hu. Centers
/// outside the volume are skipped. Returns bool D x H x W.
torch::Tensor annotation_mask(const CtVolume& volume, const std::vector<Annotation>& nodules,
                              double threshold_hu = -700.0);

}  // namespace dlwpt::ct
