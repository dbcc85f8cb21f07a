// Loads a LunaModel archive and classifies one chunk: the installed headers, the library and
// the archive format, used from outside the project.
#include <iostream>

#include <dlwpt/models/luna_model.h>
#include <dlwpt/weights/model_archive.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: classify LUNA_ARCHIVE\n";
    return 2;
  }
  try {
    dlwpt::LunaModel model = dlwpt::weights::load_model<dlwpt::LunaModel>(argv[1]);
    torch::InferenceMode inference;
    const auto output = model(torch::zeros({1, 1, 32, 48, 48}));
    const double total = output.probabilities.sum().item<double>();
    std::cout << "probabilities " << output.probabilities << " sum " << total << "\n";
    return std::abs(total - 1.0) < 1e-5 ? 0 : 1;
  } catch (const dlwpt::Error& error) {
    std::cerr << "classify: " << error.what() << "\n";
    return 1;
  }
}
