#include "dlwpt/ct/annotations.h"

#include <array>
#include <cmath>

#include <torch/torch.h>

#include "dlwpt/ct/csv_table.h"

namespace dlwpt::ct {

namespace {

// How far the box reaches from `center` along `axis`, as the book's loop: from 2, the radius
// grows while the voxels at center +- radius are above the threshold, and ends at the first
// radius where one is not; when the volume's edge comes first (Python's IndexError), one
// short of the edge.
int64_t box_radius(const torch::TensorAccessor<float, 3>& hu, const std::array<int64_t, 3>& center,
                   int axis, int64_t extent, double threshold_hu) {
  auto value = [&](int64_t offset) {
    std::array<int64_t, 3> at = center;
    at[axis] += offset;
    return hu[at[0]][at[1]][at[2]];
  };
  for (int64_t radius = 2;; ++radius) {
    if (center[axis] + radius >= extent || center[axis] - radius < 0) return radius - 1;
    if (!(value(radius) > threshold_hu && value(-radius) > threshold_hu)) return radius;
  }
}

}  // namespace

std::map<std::string, std::vector<Annotation>> read_annotations(const std::string& path) {
  const auto table = CsvTable::read(path, "annotations");
  const int uid = table.required_column("seriesuid");
  const int x = table.required_column("coordX");
  const int y = table.required_column("coordY");
  const int z = table.required_column("coordZ");
  const int diameter = table.required_column("diameter_mm");
  const int malignant = table.column("mal_bool");
  std::map<std::string, std::vector<Annotation>> annotations;
  for (size_t row = 0; row < table.rows(); ++row) {
    Annotation annotation;
    annotation.center_xyz = {table.number(row, x), table.number(row, y), table.number(row, z)};
    annotation.diameter_mm = table.number(row, diameter);
    annotation.malignant = malignant >= 0 && table.boolean(row, malignant);
    annotations[table.text(row, uid)].push_back(annotation);
  }
  return annotations;
}

torch::Tensor annotation_mask(const CtVolume& volume, const std::vector<Annotation>& nodules,
                              double threshold_hu) {
  const auto hu_float = volume.hu.to(torch::kFloat).contiguous();
  const auto hu = hu_float.accessor<float, 3>();
  const std::array<int64_t, 3> extents{volume.slices(), volume.rows(), volume.columns()};
  auto boxes = torch::zeros(volume.hu.sizes(), torch::kBool);
  for (const auto& nodule : nodules) {
    const auto voxel = nearest_voxel(nodule.center_xyz, volume);
    if (!voxel) continue;
    const auto& center = *voxel;
    auto box = boxes;
    for (int axis = 0; axis < 3; ++axis) {
      const int64_t radius = box_radius(hu, center, axis, extents[axis], threshold_hu);
      const int64_t start = std::max<int64_t>(0, center[axis] - radius);
      const int64_t end = std::min(extents[axis], center[axis] + radius + 1);
      box = box.narrow(axis, start, end - start);
    }
    box.fill_(true);
  }
  return boxes & (hu_float > threshold_hu);
}

}  // namespace dlwpt::ct
