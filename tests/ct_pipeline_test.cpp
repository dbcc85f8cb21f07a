// The C++ nodule analysis (ct/pipeline.h) against the Python reference (tools/testing/ct_reference.py)
// on a synthetic phantom and, when the book's data is present, on the real CT series.

#include <algorithm>
#include <chrono>
#include <thread>

#include "dlwpt/ct/pipeline.h"
#include "dlwpt/ct/scan_io.h"
#include "tests/test_support.h"
#include "dlwpt/weights/model_archive.h"
#include "dlwpt/weights/reference_case.h"

namespace dlwpt::testing {
namespace {

struct ModelFiles {
  std::string segmentation;
  std::string nodule;
};

// The Python reference runs on every core: on one it took 363 s for the real CT here. (The
// plain C++ models, on libtorch's default single thread here, took 121 s; on two, 174 s.)
int every_core() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// The Python reference's results for a scan, from tools/testing/ct_reference.py.
weights::TensorMap python_analysis(const std::string& scan, const ModelFiles& models,
                                   const TemporaryFolder& folder) {
  const std::string out = folder.path("python.pt");
  const std::string command = "'" + python() + "' '" + source_dir() + "/tools/testing/ct_reference.py' '" +
                              scan + "' '" + models.segmentation + "' '" + models.nodule + "' '" +
                              out + "' --threads " + std::to_string(every_core());
  if (run_command(command) != 0) throw std::runtime_error("failed: " + command);
  return weights::read_archive(out).tensors;
}

torch::Tensor column(const std::vector<ct::Candidate>& candidates,
                     const std::function<double(const ct::Candidate&)>& field) {
  std::vector<double> values;
  for (const auto& candidate : candidates) values.push_back(field(candidate));
  return torch::tensor(values, torch::kDouble);
}

torch::Tensor points(const std::vector<ct::Candidate>& candidates, ct::Irc ct::Candidate::*field) {
  std::vector<double> values;
  for (const auto& candidate : candidates) {
    const auto& point = candidate.*field;
    values.insert(values.end(), point.begin(), point.end());
  }
  return torch::tensor(values, torch::kDouble).view({-1, 3});
}

// Runs both pipelines on a MetaImage scan and compares everything they produce.
void expect_pipeline_equals_python(const std::string& scan, const ModelFiles& files) {
  TemporaryFolder folder;
  const auto python = python_analysis(scan, files, folder);

  ct::AnalysisModels models;
  models.segmentation = weights::load_model<UNetWrapper>(files.segmentation);
  models.nodule = weights::load_model<LunaModel>(files.nodule);
  const auto volume = ct::read_metaimage(scan);
  const auto start = std::chrono::steady_clock::now();
  const auto analysis = ct::analyse_scan(models, volume);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const auto& candidates = analysis.candidates;
  const int64_t count = python.at("ids").numel();
  const auto probability_closeness =
      closeness(analysis.probability, python.at("probability"), kHuInputTolerance);
  const int64_t mask_differences =
      (analysis.mask != python.at("mask").to(torch::kBool)).sum().item<int64_t>();
  std::cout << scan << ": " << candidates.size() << " candidates (Python " << count << "), "
            << analysis.mask.sum().item<int64_t>() << " mask voxels, " << mask_differences
            << " differ; probability vs Python " << probability_closeness << "; C++ "
            << seconds << " s, Python " << python.at("seconds").item<double>() << " s\n";
  EXPECT_TRUE(probability_closeness.within) << probability_closeness;
  EXPECT_EQ(mask_differences, 0);
  ASSERT_EQ(static_cast<int64_t>(candidates.size()), count);
  if (count == 0) return;

  EXPECT_TRUE(torch::equal(column(candidates, [](const auto& c) { return double(c.id); }),
                           python.at("ids").to(torch::kDouble)));
  EXPECT_TRUE(torch::equal(column(candidates, [](const auto& c) { return double(c.voxels); }),
                           python.at("voxels").to(torch::kDouble)));
  const double irc_difference =
      weights::max_abs_difference(points(candidates, &ct::Candidate::center_irc), python.at("center_irc"));
  const double xyz_difference =
      weights::max_abs_difference(points(candidates, &ct::Candidate::center_xyz), python.at("center_xyz"));
  const auto nodule_closeness =
      closeness(column(candidates, [](const auto& c) { return c.nodule_probability; }),
                python.at("nodule_probability"), kProbabilityTolerance);
  std::cout << "  max differences: center " << irc_difference << " voxels, " << xyz_difference
            << " mm; nodule probability " << nodule_closeness << "\n";
  // Centres are means of voxel indices (exact up to float64 summation): no rounding of models.
  EXPECT_LE(irc_difference, 1e-3);
  EXPECT_LE(xyz_difference, 1e-3);
  EXPECT_TRUE(nodule_closeness.within) << nodule_closeness;
}

std::string write_phantom(const TemporaryFolder& folder) {
  const std::string path = folder.path("phantom.mhd");
  const std::string command =
      "'" + python() + "' '" + source_dir() + "/tools/testing/ct_phantom.py' '" + path + "'";
  if (run_command(command) != 0) throw std::runtime_error("failed: " + command);
  return path;
}

TEST(CtPipeline, PhantomWithSeededWeightsEqualsPython) {
  TemporaryFolder folder;
  expect_pipeline_equals_python(write_phantom(folder),
                                {reference_path("unet_book.pt"), reference_path("luna.pt")});
}

TEST(CtPipeline, PhantomGeometryIsReadAsWritten) {
  TemporaryFolder folder;
  const auto volume = ct::read_metaimage(write_phantom(folder));
  // tools/testing/ct_phantom.py: a quarter turn about z with the slice axis reversed.
  const std::array<double, 9> direction = {0, -1, 0, 1, 0, 0, 0, 0, -1};
  EXPECT_EQ(volume.geometry.direction, direction);
  EXPECT_EQ(volume.geometry.origin, (std::array<double, 3>{-182.5, -160.25, -310.0}));
  EXPECT_EQ(volume.geometry.spacing, (std::array<double, 3>{0.7, 0.75, 2.5}));
  // Voxel (index 1, row 2, column 3): direction @ (3 * 0.7, 2 * 0.75, 1 * 2.5) + origin.
  const auto xyz = ct::irc_to_xyz({1, 2, 3}, volume.geometry);
  EXPECT_NEAR(xyz[0], -182.5 - 1.5, 1e-12);
  EXPECT_NEAR(xyz[1], -160.25 + 2.1, 1e-12);
  EXPECT_NEAR(xyz[2], -310.0 - 2.5, 1e-12);
}

TEST(CtPipeline, PhantomWithTheBooksWeightsEqualsPython) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing: " << data_dir();
  TemporaryFolder folder;
  expect_pipeline_equals_python(write_phantom(folder),
                                {reference_path("book_seg.pt"), reference_path("book_cls.pt")});
}

TEST(CtPipeline, RealCtWithTheBooksWeightsEqualsPython) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing: " << data_dir();
  TemporaryFolder folder;
  const auto dicom =
      ct::read_dicom_series(data_dir() + "/data/p1ch4/volumetric-dicom/2-LUNG 3.0  B70f-04083");
  ct::write_metaimage(dicom.hu, dicom.geometry, folder.path("real.mhd"));
  expect_pipeline_equals_python(folder.path("real.mhd"),
                                {reference_path("book_seg.pt"), reference_path("book_cls.pt")});
}

TEST(CtPipeline, TooFewSlicesAreRefused) {
  ct::AnalysisModels models;
  models.segmentation = UNetWrapper(book_segmentation_options());
  models.nodule = LunaModel();
  ct::CtVolume volume;
  volume.hu = torch::zeros({6, 64, 64});
  volume.series_uid = "thin";
  EXPECT_THAT(error_message_of<ct::ScanError>([&] { ct::analyse_scan(models, volume); }),
              ::testing::HasSubstr("scan thin has 6 slices; the segmentation needs at least 7"));
}

TEST(CtPipeline, ComponentsAndErosionFollowScipy) {
  // Two blobs touching only diagonally are two components under 6-connectivity; numbering
  // follows the raster order of each component's first voxel.
  auto mask = torch::zeros({1, 3, 4}, torch::kBool);
  mask[0][0][2] = true;
  mask[0][1][1] = true;  // diagonal to (0, 2): separate
  mask[0][1][0] = true;
  const auto labels = ct::label_components(mask);
  EXPECT_EQ(labels.count, 2);
  EXPECT_EQ(labels.labels[0][0][2].item<int>(), 1);
  EXPECT_EQ(labels.labels[0][1][0].item<int>(), 2);
  EXPECT_EQ(labels.labels[0][1][1].item<int>(), 2);
  // A 3x3x3 cube erodes to its center: the border counts as background.
  auto cube = torch::ones({3, 3, 3}, torch::kBool);
  const auto eroded = ct::binary_erosion(cube);
  EXPECT_EQ(eroded.sum().item<int64_t>(), 1);
  EXPECT_TRUE(eroded[1][1][1].item<bool>());
}

}  // namespace
}  // namespace dlwpt::testing
