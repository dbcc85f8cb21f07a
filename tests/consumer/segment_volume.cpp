// The CT component from outside: a MetaImage written and read back through ITK, and the
// pipeline's mask of a probability volume.
#include <cstdio>
#include <iostream>

#include <dlwpt/ct/pipeline.h>
#include <dlwpt/ct/scan_io.h>

int main() {
  const torch::Tensor hu = torch::full({8, 16, 16}, -1000.0f);
  const std::string path = "consumer_volume.mha";
  dlwpt::ct::write_metaimage(hu, {}, path);
  const dlwpt::ct::CtVolume volume = dlwpt::ct::read_metaimage(path);
  std::remove(path.c_str());
  auto probability = torch::zeros({8, 16, 16});
  probability.slice(0, 2, 6).slice(1, 4, 12).slice(2, 4, 12).fill_(0.9);
  const int64_t voxels = dlwpt::ct::nodule_mask(probability, 0.5).sum().item<int64_t>();
  std::cout << "read " << volume.slices() << " slices; mask of " << voxels << " voxels\n";
  // A 4x8x8 block eroded once by the 6-neighbour cross leaves 2x6x6.
  return volume.slices() == 8 && torch::equal(volume.hu, hu) && voxels == 72 ? 0 : 1;
}
