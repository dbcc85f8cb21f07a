#include "apps/ct_segment/previews.h"

#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "apps/common/image_io.h"
// Last: CImg pulls in X11, whose macros the cimg_config header cleans up after.
#include "apps/common/cimg_config.h"

namespace dlwpt::ct_segment {

namespace fs = std::filesystem;
using cimg_library::CImg;

namespace {

// The slice in the lung window as 8-bit grey, in RGB.
CImg<unsigned char> lung_window(const torch::Tensor& slice) {
  const auto grey = ((slice.to(torch::kFloat) - kLungWindowLow) * (255.0 / (kLungWindowHigh - kLungWindowLow)))
                        .clamp(0, 255)
                        .round()
                        .to(torch::kUInt8)
                        .contiguous();
  CImg<unsigned char> image(grey.data_ptr<uint8_t>(), slice.size(1), slice.size(0), 1, 1);
  return image.get_resize(-100, -100, 1, 3);
}

// Marks the mask's border pixels (mask voxels with a background 4-neighbour) in red.
void draw_contour(CImg<unsigned char>& image, const torch::Tensor& mask_slice) {
  const auto mask = mask_slice.to(torch::kBool).contiguous();
  const bool* in = mask.data_ptr<bool>();
  const int h = image.height(), w = image.width();
  auto inside = [&](int y, int x) { return y >= 0 && y < h && x >= 0 && x < w && in[y * w + x]; };
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      if (inside(y, x) && !(inside(y - 1, x) && inside(y + 1, x) && inside(y, x - 1) && inside(y, x + 1))) {
        image(x, y, 0, 0) = 255;
        image(x, y, 0, 1) = 0;
        image(x, y, 0, 2) = 0;
      }
    }
  }
}

// CImg draws the previews; the apps' strict writer saves them (whole or not at all).
apps::RgbImage to_rgb_image(const CImg<unsigned char>& image) {
  apps::RgbImage rgb;
  rgb.width = image.width();
  rgb.height = image.height();
  rgb.planes.assign(image.begin(), image.end());  // both planar: R plane, G plane, B plane
  return rgb;
}

}  // namespace

void write_previews(const std::string& folder, const ct::CtVolume& volume, const torch::Tensor& mask,
                    const std::vector<ct::Candidate>& candidates, int64_t count) {
  fs::create_directories(folder);
  const unsigned char yellow[] = {255, 220, 0};
  for (int64_t rank = 0; rank < count && rank < static_cast<int64_t>(candidates.size()); ++rank) {
    const auto& candidate = candidates[rank];
    const int64_t index = std::clamp<int64_t>(std::llround(candidate.center_irc[0]), 0, volume.slices() - 1);
    CImg<unsigned char> image = lung_window(volume.hu[index]);
    draw_contour(image, mask[index]);
    image.draw_circle(static_cast<int>(std::lround(candidate.center_irc[2])),
                      static_cast<int>(std::lround(candidate.center_irc[1])), 12, yellow, 1.0f, ~0U);
    char text[96];
    std::snprintf(text, sizeof text, "id %lld  p=%.3f", static_cast<long long>(candidate.id),
                  candidate.nodule_probability);
    image.draw_text(4, 4, "%s", yellow, 0, 1.0f, 16, text);
    char name[96];
    std::snprintf(name, sizeof name, "candidate_%02lld_id%lld_slice%lld.png",
                  static_cast<long long>(rank + 1), static_cast<long long>(candidate.id),
                  static_cast<long long>(index));
    apps::save_image(to_rgb_image(image), (fs::path(folder) / name).string());
  }
}

}  // namespace dlwpt::ct_segment
