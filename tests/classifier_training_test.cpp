// Training the nodule classifier end to end on synthetic scans: chunks cut at CSV candidates,
// a task that must be learned, exact resumption, bad input, and the `train` app fine-tuning
// the book's classifier.

#include <filesystem>
#include <fstream>
#include <random>

#include <torch/torch.h>

#include "ct/scan_io.h"
#include "tests/test_support.h"
#include "training/classifier_training.h"
#include "training/surgery.h"
#include "weights/model_archive.h"

namespace dlwpt::testing {
namespace {

namespace tr = training;

// Scans of lung-like noise (-800 +- 60 HU) where positive candidates sit on a bright sphere
// (+100 HU, radius 4 voxels) and negative ones on nothing; non-unit spacing and a non-zero
// origin, so that the CSV's millimetres must be mapped to voxels correctly.
struct SyntheticLuna {
  std::string scans;
  std::string csv;
};

ct::VolumeGeometry synthetic_geometry() {
  ct::VolumeGeometry geometry;
  geometry.origin = {-100.0, -120.0, -50.0};
  geometry.spacing = {0.8, 0.75, 1.5};
  return geometry;
}

SyntheticLuna write_synthetic_luna(const TemporaryFolder& folder, int series, int per_series,
                                   const std::string& label_column = "class") {
  const auto geometry = synthetic_geometry();
  std::mt19937_64 random(11);
  std::filesystem::create_directories(folder.path("scans/subset0"));
  std::ofstream csv(folder.path("candidates.csv"));
  csv << "seriesuid,coordX,coordY,coordZ," << label_column << "\n";
  torch::manual_seed(11);
  for (int s = 0; s < series; ++s) {
    const std::string uid = "1.2.826.0." + std::to_string(100 + s);
    auto hu = torch::randn({40, 96, 96}) * 60 - 800;
    const auto grid = torch::meshgrid({torch::arange(40), torch::arange(96), torch::arange(96)}, "ij");
    for (int c = 0; c < per_series; ++c) {
      const bool positive = c % 2 == 0;
      const std::array<int64_t, 3> irc{
          static_cast<int64_t>(10 + random() % 20), static_cast<int64_t>(20 + random() % 56),
          static_cast<int64_t>(20 + random() % 56)};
      if (positive) {
        const auto distance = (grid[0] - irc[0]).pow(2) + (grid[1] - irc[1]).pow(2) +
                              (grid[2] - irc[2]).pow(2);
        hu.masked_fill_(distance <= 16, 100.0);
      }
      const auto xyz = ct::irc_to_xyz({double(irc[0]), double(irc[1]), double(irc[2])}, geometry);
      csv << uid << "," << xyz[0] << "," << xyz[1] << "," << xyz[2] << ","
          << (label_column == "mal_bool" ? (positive ? "True" : "False") : (positive ? "1" : "0"))
          << "\n";
    }
    ct::write_metaimage(hu, geometry, folder.path("scans/subset0/" + uid + ".mhd"));
  }
  return {folder.path("scans"), folder.path("candidates.csv")};
}

struct Datasets {
  std::shared_ptr<tr::ScanLibrary> scans;
  tr::ChunkDataset training;
  tr::ChunkDataset validation;
};

Datasets datasets_of(const SyntheticLuna& data, const tr::ChunkDatasetOptions& options) {
  auto scans = std::make_shared<tr::ScanLibrary>(data.scans);
  const auto split = tr::split_by_series(tr::read_labelled_candidates(data.csv, "class"), 4);
  return {scans, tr::ChunkDataset(split.training, scans, options),
          tr::ChunkDataset(split.validation, scans, tr::ChunkDatasetOptions().shuffle(false))};
}

tr::ClassifierTrainingOptions quick_training(const std::string& run_folder) {
  return tr::ClassifierTrainingOptions()
      .batch_size(8)
      .workers(2)
      .optimizer(tr::OptimizerOptions().kind(tr::OptimizerKind::adam).lr(1e-3))
      .run_folder(run_folder)
      .seed(5);
}

TEST(ChunkDataset, CutsTheChunkAtTheCandidatesVoxel) {
  TemporaryFolder folder;
  const auto data = write_synthetic_luna(folder, 4, 2);
  const auto candidates = tr::read_labelled_candidates(data.csv, "class");
  auto scans = std::make_shared<tr::ScanLibrary>(data.scans);
  tr::ChunkDataset dataset({candidates[0]}, scans, tr::ChunkDatasetOptions().shuffle(false));
  const auto example = dataset.get(0);
  ASSERT_EQ(example.data.sizes(), (std::vector<int64_t>{1, 32, 48, 48}));
  EXPECT_EQ(example.target.item<int64_t>(), 1);
  // The sphere is centred in the chunk unless the chunk was shifted to fit in the volume.
  const auto centre = example.data[0].narrow(0, 14, 4).narrow(1, 22, 4).narrow(2, 22, 4);
  std::cout << "mean HU at the chunk's centre " << centre.mean().item<double>() << "\n";
  EXPECT_GT(centre.mean().item<double>(), 0.0);
}

TEST(ChunkDataset, SplitsBySeriesAndBalances) {
  TemporaryFolder folder;
  const auto data = write_synthetic_luna(folder, 8, 4);
  const auto candidates = tr::read_labelled_candidates(data.csv, "class");
  const auto split = tr::split_by_series(candidates, 4);
  std::set<std::string> training_series, validation_series;
  for (const auto& c : split.training) training_series.insert(c.series_uid);
  for (const auto& c : split.validation) validation_series.insert(c.series_uid);
  EXPECT_EQ(validation_series, (std::set<std::string>{"1.2.826.0.100", "1.2.826.0.104"}));
  EXPECT_EQ(training_series.size(), 6u);

  // Balanced 1:3 (the book's ratio_int 3): every 4th sample positive.
  auto scans = std::make_shared<tr::ScanLibrary>(data.scans);
  tr::ChunkDataset balanced(split.training, scans,
                            tr::ChunkDatasetOptions().balanced(3).epoch_size(16).seed(1));
  ASSERT_EQ(*balanced.size(), 16u);
  for (size_t i = 0; i < 16; ++i) {
    EXPECT_EQ(balanced.get(i).target.item<int64_t>(), i % 4 == 0 ? 1 : 0) << "sample " << i;
  }
  // An epoch replays exactly; another epoch is another order.
  const auto a = balanced.for_epoch(2).get(5).data;
  EXPECT_TRUE(torch::equal(a, balanced.for_epoch(2).get(5).data));
}

TEST(ChunkDataset, NamesBadInput) {
  TemporaryFolder folder;
  const auto data = write_synthetic_luna(folder, 2, 2);
  write_file(folder.path("no_label.csv"), "seriesuid,coordX,coordY,coordZ\n1,2,3,4\n");
  EXPECT_THAT(error_message_of<std::runtime_error>(
                  [&] { tr::read_labelled_candidates(folder.path("no_label.csv"), "class"); }),
              ::testing::HasSubstr("lacks the column 'class'"));
  write_file(folder.path("empty.csv"), "seriesuid,coordX,coordY,coordZ,class\n");
  EXPECT_THAT(error_message_of<std::runtime_error>(
                  [&] { tr::read_labelled_candidates(folder.path("empty.csv"), "class"); }),
              ::testing::HasSubstr("lists no candidates"));
  write_file(folder.path("bad.csv"), "seriesuid,coordX,coordY,coordZ,class\n1,2,x,4,1\n");
  EXPECT_THAT(error_message_of<std::runtime_error>(
                  [&] { tr::read_labelled_candidates(folder.path("bad.csv"), "class"); }),
              ::testing::HasSubstr("line 2: 'x' in column 'coordY' is not a number"));

  auto scans = std::make_shared<tr::ScanLibrary>(data.scans);
  EXPECT_THAT(error_message_of<c10::Error>([&] {
                tr::ChunkDataset({{"9.9.9", {0, 0, 0}, true}}, scans);
              }),
              ::testing::HasSubstr("candidate of series 9.9.9 has no scan"));
  tr::ChunkDataset outside({{"1.2.826.0.100", {500.0, 0.0, 0.0}, true}}, scans);
  EXPECT_THAT(error_message_of<ct::ScanError>([&] { outside.get(0); }),
              ::testing::HasSubstr("lies outside scan 1.2.826.0.100"));
  EXPECT_THAT(error_message_of<c10::Error>([&] { tr::ChunkDataset({}, scans); }),
              ::testing::HasSubstr("empty"));
  EXPECT_THAT(error_message_of<ct::ScanError>([&] { tr::ScanLibrary(folder.path("nothing")); }),
              ::testing::HasSubstr("does not exist"));
}

TEST(ClassifierTraining, LearnsBrightSpheresFromAFixedSeed) {
  TemporaryFolder folder;
  const auto data = write_synthetic_luna(folder, 12, 8);
  auto sets = datasets_of(data, tr::ChunkDatasetOptions().seed(5));
  torch::manual_seed(5);
  LunaModel model;
  const auto result = tr::train_classifier(
      model, sets.training, sets.validation, quick_training(folder.path("run")).epochs(4),
      {[](const tr::EpochMetrics& m) {
         std::cout << "epoch " << m.epoch << " " << m.phase << ": " << tr::summary(m) << "\n";
       },
       {}});
  const auto& last = result.history.back();
  EXPECT_EQ(last.phase, "val");
  EXPECT_GT(last.counts.f1(), 0.9) << "validation F1 after 4 epochs";
  EXPECT_TRUE(std::filesystem::exists(folder.path("run/best.pt")));
  EXPECT_TRUE(std::filesystem::exists(folder.path("run/metrics.csv")));
  // The best model is a LunaModel archive like any other.
  auto best = weights::load_model<LunaModel>(folder.path("run/best.pt"));
  EXPECT_EQ(best->parameters().size(), model->parameters().size());
}

TEST(ClassifierTraining, TwoPlusTwoEpochsEqualFourInOneRun) {
  TemporaryFolder folder;
  const auto data = write_synthetic_luna(folder, 8, 4);
  const auto options = tr::ChunkDatasetOptions().seed(9).augmentation(tr::book_chunk_augmentation());
  auto sets = datasets_of(data, options);
  auto fresh_model = [] {
    torch::manual_seed(3);
    return LunaModel();
  };
  LunaModel straight = fresh_model();
  tr::train_classifier(straight, sets.training, sets.validation,
                       quick_training(folder.path("straight")).epochs(4));

  LunaModel interrupted = fresh_model();
  tr::train_classifier(interrupted, sets.training, sets.validation,
                       quick_training(folder.path("resumed")).epochs(2));
  LunaModel resumed = fresh_model();  // a new process would start from scratch and load
  const auto result = tr::train_classifier(resumed, sets.training, sets.validation,
                                           quick_training(folder.path("resumed")).epochs(4).resume(true));
  EXPECT_EQ(result.state.epoch, 4);
  ASSERT_EQ(result.history.size(), 4u) << "epochs 3 and 4, training and validation";
  const auto expected = weights::state_dict(*straight);
  for (const auto& [key, value] : weights::state_dict(*resumed)) {
    EXPECT_TRUE(torch::equal(value, expected.at(key))) << key;
  }
  // A finished run is not started over by accident.
  EXPECT_THAT(error_message_of<c10::Error>([&] {
                LunaModel again;
                tr::train_classifier(again, sets.training, sets.validation,
                                     quick_training(folder.path("straight")).epochs(1));
              }),
              ::testing::HasSubstr("already holds a run"));
}

TEST(ClassifierTraining, RefusesACheckpointOfAnotherModel) {
  TemporaryFolder folder;
  UNetWrapper unet(UNetWrapperOptions().in_channels(7).n_classes(1).depth(2).wf(2).padding(true));
  auto optimizer = tr::make_optimizer(unet->parameters(), tr::book_segmentation_optimizer());
  tr::save_checkpoint(folder.path("run/checkpoint"), *unet, weights::to_model_config(unet->options),
                      *optimizer, {});
  LunaModel model;
  auto luna_optimizer = tr::make_optimizer(model->parameters(), tr::book_classification_optimizer());
  EXPECT_THAT(error_message_of<std::runtime_error>([&] {
                tr::load_checkpoint(folder.path("run/checkpoint"), *model,
                                    weights::to_model_config(model->options), *luna_optimizer);
              }),
              ::testing::HasSubstr("holds another model"));
  EXPECT_THAT(error_message_of<std::runtime_error>([&] {
                tr::load_checkpoint(folder.path("none"), *model,
                                    weights::to_model_config(model->options), *luna_optimizer);
              }),
              ::testing::HasSubstr("no complete checkpoint"));
}

// The end-to-end case: the book's nodule classifier fine-tuned into a malignancy
// classifier by the `train` app, from the converted real checkpoint.
TEST(TrainApp, FineTunesTheBooksClassifierIntoAMalignancyHead) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing (DLWPT_DATA_DIR)";
  TemporaryFolder folder;
  const auto data = write_synthetic_luna(folder, 10, 4, "mal_bool");
  const std::string book = reference_path("book_cls.pt");
  const std::string command = "'" + binary_dir() + "/apps/train' --task malignancy --candidates '" +
                              data.csv + "' --scans '" + data.scans + "' -o '" +
                              folder.path("run") + "' --finetune '" + book +
                              "' --finetune-depth 2 --epochs 2 --batch-size 8 --val-stride 5 > '" +
                              folder.path("log.txt") + "' 2>&1";
  const int status = run_command(command);
  std::ifstream log(folder.path("log.txt"));
  const std::string output((std::istreambuf_iterator<char>(log)), {});
  std::cout << "$ " << command << "\n" << output;
  ASSERT_EQ(status, 0);
  EXPECT_THAT(output, ::testing::HasSubstr("fine-tuning block4 head_linear"));
  EXPECT_THAT(output, ::testing::HasSubstr("2 epochs done"));
  // Frozen blocks are the book's; block4 and the head moved.
  const auto tuned = weights::read_archive(folder.path("run/checkpoint/model.pt")).tensors;
  const auto original = weights::read_archive(book).tensors;
  EXPECT_TRUE(torch::equal(tuned.at("block1.conv1.weight"), original.at("block1.conv1.weight")));
  EXPECT_TRUE(torch::equal(tuned.at("block3.conv2.bias"), original.at("block3.conv2.bias")));
  EXPECT_FALSE(torch::equal(tuned.at("block4.conv2.weight"), original.at("block4.conv2.weight")));
  // Bad command lines are named.
  EXPECT_NE(run_command("'" + binary_dir() + "/apps/train' --task size --candidates '" + data.csv +
                        "' --scans '" + data.scans + "' -o '" + folder.path("x") + "' 2> /dev/null"),
            0);
}

}  // namespace
}  // namespace dlwpt::testing
