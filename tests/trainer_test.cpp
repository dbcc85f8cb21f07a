// Training end to end on synthetic scans: the nodule classifier on chunks cut at CSV
// candidates and the U-Net on masks grown from annotations; tasks that must be learned, exact
// resumption, bad input, and the `train` app fine-tuning the book's classifier.

#include <filesystem>
#include <fstream>
#include <random>

#include <torch/torch.h>

#include "dlwpt/ct/annotations.h"
#include "dlwpt/ct/scan_io.h"
#include "tests/test_support.h"
#include "dlwpt/training/trainer.h"
#include "dlwpt/training/surgery.h"
#include "dlwpt/weights/model_archive.h"
#include "dlwpt/weights/reference_case.h"

namespace dlwpt::testing {
namespace {

namespace tr = training;

// Scans of lung-like noise (-800 +- 30 HU) where positive candidates sit on a bright sphere
// (+100 HU, radius 4 voxels) and negative ones on nothing; non-unit spacing and a non-zero
// origin, so that the CSV's millimetres must be mapped to voxels correctly.
struct SyntheticLuna {
  std::string scans;
  std::string csv;          ///< every candidate, with its label
  std::string annotations;  ///< the positive ones (spheres), with a diameter, as annotations.csv
};

constexpr int64_t kSphereRadius = 4;

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
  std::ofstream annotations(folder.path("annotations.csv"));
  annotations << "seriesuid,coordX,coordY,coordZ,diameter_mm\n";
  torch::manual_seed(11);
  for (int s = 0; s < series; ++s) {
    const std::string uid = "1.2.826.0." + std::to_string(100 + s);
    auto hu = torch::randn({40, 96, 96}) * 30 - 800;
    const auto grid = torch::meshgrid({torch::arange(40), torch::arange(96), torch::arange(96)}, "ij");
    for (int c = 0; c < per_series; ++c) {
      const bool positive = c % 2 == 0;
      const std::array<int64_t, 3> irc{
          static_cast<int64_t>(10 + random() % 20), static_cast<int64_t>(20 + random() % 56),
          static_cast<int64_t>(20 + random() % 56)};
      if (positive) {
        const auto distance = (grid[0] - irc[0]).pow(2) + (grid[1] - irc[1]).pow(2) +
                              (grid[2] - irc[2]).pow(2);
        hu.masked_fill_(distance <= kSphereRadius * kSphereRadius, 100.0);
      }
      const auto xyz = ct::irc_to_xyz({double(irc[0]), double(irc[1]), double(irc[2])}, geometry);
      if (positive) {
        annotations << uid << "," << xyz[0] << "," << xyz[1] << "," << xyz[2] << ",6.0\n";
      }
      csv << uid << "," << xyz[0] << "," << xyz[1] << "," << xyz[2] << ","
          << (label_column == "mal_bool" ? (positive ? "True" : "False") : (positive ? "1" : "0"))
          << "\n";
    }
    ct::write_metaimage(hu, geometry, folder.path("scans/subset0/" + uid + ".mhd"));
  }
  return {folder.path("scans"), folder.path("candidates.csv"), folder.path("annotations.csv")};
}

struct Datasets {
  std::shared_ptr<ct::ScanLibrary> scans;
  tr::ChunkDataset training;
  tr::ChunkDataset validation;
};

Datasets datasets_of(const SyntheticLuna& data, const tr::ChunkDatasetOptions& options) {
  auto scans = std::make_shared<ct::ScanLibrary>(data.scans);
  const auto split = tr::split_by_series(tr::read_labelled_candidates(data.csv, "class"), 4);
  return {scans, tr::ChunkDataset(split.training, scans, options),
          tr::ChunkDataset(split.validation, scans, tr::ChunkDatasetOptions().shuffle(false))};
}

tr::TrainingOptions quick_training(const std::string& run_folder) {
  return tr::TrainingOptions()
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
  auto scans = std::make_shared<ct::ScanLibrary>(data.scans);
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
  auto scans = std::make_shared<ct::ScanLibrary>(data.scans);
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

  auto scans = std::make_shared<ct::ScanLibrary>(data.scans);
  EXPECT_THAT(error_message_of<c10::Error>([&] {
                tr::ChunkDataset({{"9.9.9", {0, 0, 0}, true}}, scans);
              }),
              ::testing::HasSubstr("candidate of series 9.9.9 has no scan"));
  tr::ChunkDataset outside({{"1.2.826.0.100", {500.0, 0.0, 0.0}, true}}, scans);
  EXPECT_THAT(error_message_of<ct::ScanError>([&] { outside.get(0); }),
              ::testing::HasSubstr("lies outside scan 1.2.826.0.100"));
  EXPECT_THAT(error_message_of<c10::Error>([&] { tr::ChunkDataset({}, scans); }),
              ::testing::HasSubstr("empty"));
  EXPECT_THAT(error_message_of<ct::ScanError>([&] { ct::ScanLibrary(folder.path("nothing")); }),
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

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream file(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) lines.push_back(line);
  return lines;
}

// A run killed after writing epoch 2's metrics but before its checkpoint resumes from epoch 1:
// epoch 2's rows are written again, and only once.
TEST(ClassifierTraining, ResumingDropsMetricsRowsThatTheCheckpointDoesNotHold) {
  TemporaryFolder folder;
  const auto data = write_synthetic_luna(folder, 8, 4);
  auto sets = datasets_of(data, tr::ChunkDatasetOptions().seed(9));
  LunaModel model;
  tr::train_classifier(model, sets.training, sets.validation,
                       quick_training(folder.path("run")).epochs(1));
  const std::string metrics = folder.path("run/metrics.csv");
  {
    std::ofstream stale(metrics, std::ios::app);
    stale << "2,train,0.5,stale\n2,val,0.5,stale\n2,tr";  // the last row torn by the kill
  }
  tr::train_classifier(model, sets.training, sets.validation,
                       quick_training(folder.path("run")).epochs(2).resume(true));
  const auto lines = lines_of(metrics);
  for (const auto& line : lines) std::cout << "  " << line << "\n";
  ASSERT_EQ(lines.size(), 5u) << "header, then train and val of epochs 1 and 2";
  EXPECT_EQ(lines[0].rfind("epoch,phase,", 0), 0u);
  const std::vector<std::string> starts = {"1,train,", "1,val,", "2,train,", "2,val,"};
  for (size_t row = 0; row < starts.size(); ++row) {
    EXPECT_EQ(lines[row + 1].rfind(starts[row], 0), 0u) << lines[row + 1];
    EXPECT_EQ(lines[row + 1].find("stale"), std::string::npos) << lines[row + 1];
  }
}

TEST(Metrics, TruncationKeepsTheHeaderAndTheCheckpointsEpochs) {
  TemporaryFolder folder;
  const std::string path = folder.path("metrics.csv");
  write_file(path, "epoch,phase\n1,train\n1,val\n2,train\n2,val\n3,train\n");
  tr::truncate_metrics_csv(path, 2);
  EXPECT_EQ(lines_of(path), (std::vector<std::string>{"epoch,phase", "1,train", "1,val",
                                                     "2,train", "2,val"}));
  tr::truncate_metrics_csv(path, 0);
  EXPECT_EQ(lines_of(path), std::vector<std::string>{"epoch,phase"});
  tr::truncate_metrics_csv(folder.path("absent.csv"), 1);
  EXPECT_FALSE(std::filesystem::exists(folder.path("absent.csv")));
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

// ---------------------------------------------------------------- the U-Net

TEST(AnnotationMask, GrowsTheBooksBoxAroundASphere) {
  ct::CtVolume volume;
  volume.geometry = synthetic_geometry();
  volume.hu = torch::full({20, 30, 30}, -800.0);
  const auto grid = torch::meshgrid({torch::arange(20), torch::arange(30), torch::arange(30)}, "ij");
  const auto sphere = ((grid[0] - 10).pow(2) + (grid[1] - 15).pow(2) + (grid[2] - 12).pow(2)) <= 16;
  volume.hu.masked_fill_(sphere, 100.0);
  volume.hu[10][15][25] = 50.0;  // bright, but outside the box the sphere grows
  const auto center = ct::irc_to_xyz({10, 15, 12}, volume.geometry);
  const auto mask = ct::annotation_mask(volume, {{center, 6.0, false}});
  EXPECT_TRUE(torch::equal(mask, sphere)) << mask.sum().item<int64_t>() << " mask voxels, sphere "
                                          << sphere.sum().item<int64_t>();
  // A center outside the volume adds nothing.
  EXPECT_EQ(ct::annotation_mask(volume, {{{900.0, 0.0, 0.0}, 6.0, false}}).sum().item<int64_t>(), 0);
}

TEST(SliceDataset, CropsAroundNodulesAndValidatesOnMaskedSlices) {
  TemporaryFolder folder;
  const auto data = write_synthetic_luna(folder, 4, 2);
  auto scans = std::make_shared<ct::ScanLibrary>(data.scans);
  const auto nodules = ct::read_annotations(data.annotations);
  tr::SliceDataset training(nodules, scans, tr::SliceDatasetOptions().seed(2));
  ASSERT_EQ(*training.size(), 4u);  // one positive per series
  const auto example = training.get(0);
  EXPECT_EQ(example.data.sizes(), (std::vector<int64_t>{7, 64, 64}));
  EXPECT_EQ(example.target.sizes(), (std::vector<int64_t>{1, 64, 64}));
  EXPECT_GT(example.target.sum().item<double>(), 0) << "the nodule is in its crop";
  tr::SliceDataset validation(nodules, scans, tr::SliceDatasetOptions().window(0).shuffle(false));
  // A sphere of radius 4 spans 9 slices; a noise voxel above -700 HU in the box can add one.
  EXPECT_GE(*validation.size(), 4u * (2 * kSphereRadius + 1));
  EXPECT_LE(*validation.size(), 4u * (2 * kSphereRadius + 3));
  for (size_t i = 0; i < *validation.size(); ++i) {
    const auto slice = validation.get(i);
    EXPECT_EQ(slice.data.sizes(), (std::vector<int64_t>{7, 96, 96}));
    EXPECT_GT(slice.target.sum().item<double>(), 0) << "validation slice " << i;
  }
  EXPECT_THAT(error_message_of<c10::Error>([&] {
                tr::SliceDataset(nodules, scans, tr::SliceDatasetOptions().window(128));
              }),
              ::testing::HasSubstr("smaller than the 128-voxel training window"));
  EXPECT_THAT(error_message_of<c10::Error>([&] {
                tr::SliceDataset({{"7.7.7", {}}}, scans);
              }),
              ::testing::HasSubstr("annotations of series 7.7.7 have no scan"));
}

// The book's loss weighs missed nodule voxels 9 times: the U-Net first marks generously
// (recall near 1) and then sheds false positives, slowly (the book trains for hours). Here:
// 8 epochs on 64x64 crops must keep recall and raise the whole-slice Dice several times over.
TEST(SegmentationTraining, LearnsSphereMasksFromAFixedSeed) {
  TemporaryFolder folder;
  const auto data = write_synthetic_luna(folder, 12, 16);
  auto scans = std::make_shared<ct::ScanLibrary>(data.scans);
  const auto split = tr::split_by_series(ct::read_annotations(data.annotations), 4);
  const tr::SliceDataset training(split.training, scans, tr::SliceDatasetOptions().seed(4));
  const tr::SliceDataset validation(split.validation, scans,
                                    tr::SliceDatasetOptions().window(0).shuffle(false));
  torch::manual_seed(4);
  UNetWrapper model(book_segmentation_options());
  std::vector<tr::EpochMetrics> validated;
  tr::train_segmentation(
      model, training, validation,
      tr::TrainingOptions().epochs(8).batch_size(8).optimizer(tr::book_segmentation_optimizer()).seed(4),
      {[&](const tr::EpochMetrics& m) {
         std::cout << "epoch " << m.epoch << " " << m.phase << ": " << tr::summary(m) << "\n";
         if (m.phase == "val") validated.push_back(m);
       },
       {}});
  ASSERT_EQ(validated.size(), 8u);
  const auto& first = validated.front();
  const auto& last = validated.back();
  EXPECT_GT(last.counts.recall(), 0.9);
  EXPECT_LT(last.loss, first.loss);
  EXPECT_GT(last.counts.f1(), 3 * first.counts.f1())
      << "whole-slice Dice " << first.counts.f1() << " -> " << last.counts.f1();
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
  // What C++ trained, Python loads strictly into its reference model and runs alike.
  auto best = weights::load_model<LunaModel>(folder.path("run/best.pt"));
  best->eval();
  const auto chunk = torch::randn({1, 1, 32, 48, 48}) * 300 - 500;
  const auto python = run_python_reference(folder.path("run/best.pt"), {chunk});
  torch::NoGradGuard no_grad;
  const auto probability_closeness =
      closeness(best(chunk).probabilities, python.at("probabilities_0"), kProbabilityTolerance);
  std::cout << "best.pt in Python: C++ vs Python probabilities " << probability_closeness << "\n";
  EXPECT_TRUE(probability_closeness.within) << probability_closeness;
  // Bad command lines are named.
  EXPECT_NE(run_command("'" + binary_dir() + "/apps/train' --task size --candidates '" + data.csv +
                        "' --scans '" + data.scans + "' -o '" + folder.path("x") + "' 2> /dev/null"),
            0);
}

TEST(TrainApp, TrainsTheUNetOnAnnotations) {
  TemporaryFolder folder;
  const auto data = write_synthetic_luna(folder, 5, 4);
  const std::string train = "'" + binary_dir() + "/apps/train' --task segmentation --candidates '" +
                            data.annotations + "' --scans '" + data.scans + "' -o '" +
                            folder.path("run") + "' --batch-size 4 --val-stride 5 --augment";
  const std::string log = " > '" + folder.path("log.txt") + "' 2>&1";
  ASSERT_EQ(run_command(train + " --epochs 1" + log), 0);
  ASSERT_EQ(run_command(train + " --epochs 2 --resume" + log), 0);
  std::ifstream file(folder.path("log.txt"));
  const std::string output((std::istreambuf_iterator<char>(file)), {});
  std::cout << output;
  EXPECT_THAT(output, ::testing::HasSubstr("resuming"));
  EXPECT_THAT(output, ::testing::HasSubstr("2 epochs done"));
  auto unet = weights::load_model<UNetWrapper>(folder.path("run/checkpoint/model.pt"));
  EXPECT_EQ(unet->options.in_channels(), 7);
  std::ifstream metrics(folder.path("run/metrics.csv"));
  int64_t lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  EXPECT_EQ(lines, 1 + 4) << "header, then train and val of epochs 1 and 2";
  // More workers than cores would abort the program (threads exhausted): refused up front.
  EXPECT_EQ(run_command(train + " --workers 100000" + log), 2);
  std::ifstream workers(folder.path("log.txt"));
  const std::string workers_output((std::istreambuf_iterator<char>(workers)), {});
  std::cout << workers_output;
  EXPECT_THAT(workers_output, ::testing::HasSubstr("--workers 100000: must be 0"));
  // A fine-tuning request for the U-Net is named as such.
  EXPECT_EQ(run_command(train + " --finetune x.pt" + log), 2);
  std::ifstream refused(folder.path("log.txt"));
  EXPECT_THAT(std::string((std::istreambuf_iterator<char>(refused)), {}),
              ::testing::HasSubstr("--finetune is for the classifier tasks"));
}

}  // namespace
}  // namespace dlwpt::testing
