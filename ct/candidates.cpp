#include "dlwpt/ct/candidates.h"

#include <cmath>
#include <numeric>

#include <torch/torch.h>

#include "dlwpt/ct/slices.h"

namespace dlwpt::ct {

namespace {

// Union-find over provisional labels, keeping the smaller label as the root.
class DisjointSets {
 public:
  int32_t make() {
    parent_.push_back(static_cast<int32_t>(parent_.size()));
    return parent_.back();
  }
  int32_t find(int32_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  void unite(int32_t a, int32_t b) {
    a = find(a);
    b = find(b);
    if (a != b) parent_[std::max(a, b)] = std::min(a, b);
  }
  size_t size() const { return parent_.size(); }

 private:
  std::vector<int32_t> parent_;
};

}  // namespace

torch::Tensor binary_erosion(const torch::Tensor& mask) {
  TORCH_CHECK(mask.dim() == 3, "binary_erosion expects a D x H x W mask, got ", mask.sizes());
  const auto padded = torch::constant_pad_nd(mask.to(torch::kBool), {1, 1, 1, 1, 1, 1}, 0);
  const int64_t d = mask.size(0), h = mask.size(1), w = mask.size(2);
  auto at = [&](int64_t dz, int64_t dy, int64_t dx) {
    return padded.narrow(0, 1 + dz, d).narrow(1, 1 + dy, h).narrow(2, 1 + dx, w);
  };
  return at(0, 0, 0) & at(-1, 0, 0) & at(1, 0, 0) & at(0, -1, 0) & at(0, 1, 0) & at(0, 0, -1) &
         at(0, 0, 1);
}

Labels label_components(const torch::Tensor& mask) {
  TORCH_CHECK(mask.dim() == 3, "label_components expects a D x H x W mask, got ", mask.sizes());
  const auto voxels = mask.to(torch::kBool).contiguous();
  const bool* in = voxels.data_ptr<bool>();
  const int64_t d = mask.size(0), h = mask.size(1), w = mask.size(2);
  auto labels = torch::zeros({d, h, w}, torch::kInt32);
  int32_t* out = labels.data_ptr<int32_t>();

  // First pass: provisional labels from the already visited neighbours (before along each
  // axis), merged where they meet.
  DisjointSets sets;
  sets.make();  // 0: background
  for (int64_t z = 0, i = 0; z < d; ++z) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x, ++i) {
        if (!in[i]) continue;
        int32_t label = 0;
        for (const int64_t before : {x > 0 ? i - 1 : -1, y > 0 ? i - w : -1, z > 0 ? i - h * w : -1}) {
          if (before < 0 || out[before] == 0) continue;
          if (label == 0) {
            label = out[before];
          } else {
            sets.unite(label, out[before]);
          }
        }
        out[i] = label != 0 ? label : sets.make();
      }
    }
  }
  // Second pass: each component's root, renumbered 1.. in order of first appearance.
  std::vector<int32_t> final_label(sets.size(), 0);
  int32_t count = 0;
  for (int64_t i = 0; i < d * h * w; ++i) {
    if (out[i] == 0) continue;
    const int32_t root = sets.find(out[i]);
    if (final_label[root] == 0) final_label[root] = ++count;
    out[i] = final_label[root];
  }
  return {labels, count};
}

Xyz irc_to_xyz(const Irc& irc, const VolumeGeometry& geometry) {
  const std::array<double, 3> scaled = {irc[2] * geometry.spacing[0], irc[1] * geometry.spacing[1],
                                        irc[0] * geometry.spacing[2]};
  Xyz xyz{};
  for (int row = 0; row < 3; ++row) {
    xyz[row] = geometry.origin[row];
    for (int column = 0; column < 3; ++column) {
      xyz[row] += geometry.direction[row * 3 + column] * scaled[column];
    }
  }
  return xyz;
}

Irc xyz_to_irc(const Xyz& xyz, const VolumeGeometry& geometry) {
  const auto& d = geometry.direction;
  // Inverse of the row-major 3x3 direction by its adjugate.
  const std::array<double, 9> adjugate = {
      d[4] * d[8] - d[5] * d[7], d[2] * d[7] - d[1] * d[8], d[1] * d[5] - d[2] * d[4],
      d[5] * d[6] - d[3] * d[8], d[0] * d[8] - d[2] * d[6], d[2] * d[3] - d[0] * d[5],
      d[3] * d[7] - d[4] * d[6], d[1] * d[6] - d[0] * d[7], d[0] * d[4] - d[1] * d[3]};
  const double determinant = d[0] * adjugate[0] + d[1] * adjugate[3] + d[2] * adjugate[6];
  if (std::abs(determinant) < 1e-12) throw ScanError("the scan's direction matrix is singular");
  std::array<double, 3> scaled{};  // (column, row, index) * spacing
  for (int row = 0; row < 3; ++row) {
    for (int column = 0; column < 3; ++column) {
      scaled[row] += adjugate[row * 3 + column] / determinant * (xyz[column] - geometry.origin[column]);
    }
  }
  return {scaled[2] / geometry.spacing[2], scaled[1] / geometry.spacing[1],
          scaled[0] / geometry.spacing[0]};
}

std::optional<std::array<int64_t, 3>> nearest_voxel(const Xyz& xyz, const CtVolume& volume) {
  const Irc irc = xyz_to_irc(xyz, volume.geometry);
  const std::array<int64_t, 3> extents{volume.slices(), volume.rows(), volume.columns()};
  std::array<int64_t, 3> voxel{};
  for (int axis = 0; axis < 3; ++axis) {
    voxel[axis] = static_cast<int64_t>(std::nearbyint(irc[axis]));
    if (voxel[axis] < 0 || voxel[axis] >= extents[axis]) return std::nullopt;
  }
  return voxel;
}

std::vector<Candidate> group_candidates(const Labels& labels, const CtVolume& volume) {
  TORCH_CHECK(labels.labels.sizes() == volume.hu.sizes(), "labels ", labels.labels.sizes(),
              " do not match the volume ", volume.hu.sizes());
  const auto weights = (volume.hu.clamp(kMinHu, kMaxHu) + 1001).to(torch::kFloat).contiguous();
  const float* weight = weights.data_ptr<float>();
  const auto label_data = labels.labels.contiguous();
  const int32_t* label = label_data.data_ptr<int32_t>();
  const int64_t h = volume.rows(), w = volume.columns();

  // Sums in float64 in raster order, as numpy's bincount does for scipy's center_of_mass.
  std::vector<std::array<double, 4>> sums(labels.count + 1, {0, 0, 0, 0});
  std::vector<int64_t> counts(labels.count + 1, 0);
  for (int64_t i = 0; i < label_data.numel(); ++i) {
    if (label[i] == 0) continue;
    const double value = weight[i];
    auto& sum = sums[label[i]];
    sum[0] += value;
    sum[1] += value * static_cast<double>(i / (h * w));
    sum[2] += value * static_cast<double>(i / w % h);
    sum[3] += value * static_cast<double>(i % w);
    ++counts[label[i]];
  }
  std::vector<Candidate> candidates;
  for (int64_t id = 1; id <= labels.count; ++id) {
    Candidate candidate;
    candidate.id = id;
    candidate.voxels = counts[id];
    for (int axis = 0; axis < 3; ++axis) candidate.center_irc[axis] = sums[id][axis + 1] / sums[id][0];
    candidate.center_xyz = irc_to_xyz(candidate.center_irc, volume.geometry);
    candidates.push_back(candidate);
  }
  return candidates;
}

torch::Tensor candidate_chunk(const torch::Tensor& hu, const Irc& center,
                              const std::array<int64_t, 3>& size) {
  TORCH_CHECK(hu.dim() == 3, "candidate_chunk expects a D x H x W volume, got ", hu.sizes());
  torch::Tensor chunk = hu;
  for (int64_t axis = 0; axis < 3; ++axis) {
    const int64_t extent = hu.size(axis);
    TORCH_CHECK(center[axis] >= 0 && center[axis] < extent, "candidate center ", center[axis],
                " lies outside the volume's ", extent, " voxels along axis ", axis);
    // std::nearbyint rounds halves to even, as numpy's round does.
    int64_t start = static_cast<int64_t>(std::nearbyint(center[axis])) - size[axis] / 2;
    start = std::max<int64_t>(0, std::min(start, extent - size[axis]));
    chunk = chunk.narrow(axis, start, std::min(size[axis], extent));
  }
  chunk = chunk.to(torch::kFloat).clamp(kMinHu, kMaxHu);
  const int64_t pad_index = size[0] - chunk.size(0);
  const int64_t pad_row = size[1] - chunk.size(1);
  const int64_t pad_column = size[2] - chunk.size(2);
  if (pad_index > 0 || pad_row > 0 || pad_column > 0) {
    chunk = torch::constant_pad_nd(chunk, {0, pad_column, 0, pad_row, 0, pad_index}, kMinHu);
  }
  return chunk.contiguous();
}

}  // namespace dlwpt::ct
