#pragma once

#include <torch/types.h>

namespace dlwpt::ct {

/// Hounsfield range the book's models see: air below, bone above are clipped.
constexpr double kMinHu = -1000.0;
constexpr double kMaxHu = 1000.0;

/// The U-Net's input for slices first .. first + count - 1 of a D x H x W volume: for each
/// slice i, the 2 * context + 1 slices i - context .. i + context (indices clamped to the
/// volume, so edge slices repeat), HU clamped to [kMinHu, kMaxHu]. Returns
/// count x (2 * context + 1) x H x W float32, as the book's `getitem_fullSlice` builds it.
torch::Tensor segmentation_input(const torch::Tensor& hu, int64_t first, int64_t count,
                                 int64_t context = 3);

}  // namespace dlwpt::ct
