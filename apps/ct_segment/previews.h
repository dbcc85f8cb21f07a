#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "dlwpt/ct/candidates.h"
#include "dlwpt/ct/volume.h"

namespace dlwpt::ct_segment {

/// Lung window of the previews: level -600 HU, width 1500 HU.
constexpr double kLungWindowLow = -1350.0;
constexpr double kLungWindowHigh = 150.0;

/// For each of the first `count` candidates (the best ones when sorted), a PNG of its center
/// slice in the lung window, with the mask's contour in red and a yellow circle around the
/// candidate: `<folder>/candidate_<rank>_id<id>_slice<index>.png`.
void write_previews(const std::string& folder, const ct::CtVolume& volume, const torch::Tensor& mask,
                    const std::vector<ct::Candidate>& candidates, int64_t count);

}  // namespace dlwpt::ct_segment
