#include "dlwpt/ct/slices.h"

#include <torch/torch.h>

namespace dlwpt::ct {

torch::Tensor segmentation_input(const torch::Tensor& hu, int64_t first, int64_t count,
                                 int64_t context) {
  TORCH_CHECK(hu.dim() == 3, "segmentation_input expects a D x H x W volume, got ", hu.sizes());
  TORCH_CHECK(count > 0 && first >= 0 && first + count <= hu.size(0), "slices ", first, "..",
              first + count - 1, " are outside a volume of ", hu.size(0), " slices");
  TORCH_CHECK(context >= 0, "context must be >= 0, got ", context);
  const auto centers = torch::arange(first, first + count, torch::kLong).unsqueeze(1);
  const auto offsets = torch::arange(-context, context + 1, torch::kLong).unsqueeze(0);
  const auto indices = (centers + offsets).clamp(0, hu.size(0) - 1);
  return hu.index_select(0, indices.flatten())
      .view({count, 2 * context + 1, hu.size(1), hu.size(2)})
      .to(torch::kFloat)
      .clamp(kMinHu, kMaxHu);
}

}  // namespace dlwpt::ct
