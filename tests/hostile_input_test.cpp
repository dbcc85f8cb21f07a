// Hostile and mismatched inputs to the weights loaders and the CT pipeline: each is refused
// with a dlwpt::Error naming the file or model and what was expected, before anything large is
// allocated or read out of bounds. The archives are the fuzz corpus's
// (tests/fuzz/regressions/archive_fuzzer/, written by tools/testing/make_archive_fixtures.py).

#include <algorithm>
#include <limits>

#include "dlwpt/ct/pipeline.h"
#include "dlwpt/ct/slices.h"
#include "tests/test_support.h"
#include "dlwpt/weights/model_archive.h"
#include "dlwpt/weights/zip_directory.h"

namespace dlwpt::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string fixture(const std::string& file) {
  return source_dir() + "/tests/fuzz/regressions/archive_fuzzer/" + file;
}

TEST(HostileArchive, TheFixturesValidArchiveLoads) {
  // The control: what the other fixtures break is a LunaModel that loads.
  const auto model = weights::load_model<LunaModel>(fixture("luna_c2.pt"));
  EXPECT_EQ(model->options.conv_channels(), 2);
}

TEST(HostileArchive, ATensorRecordShorterThanItsShapeIsRefused) {
  const std::string path = fixture("luna_c2_short_record.pt");
  const std::string message =
      error_message_of<weights::ArchiveError>([&] { weights::read_archive(path); });
  EXPECT_THAT(message, HasSubstr("'" + path + "'"));
  EXPECT_THAT(message, HasSubstr("tensor '"));
  EXPECT_THAT(message, HasSubstr("truncated or corrupt"));
  EXPECT_THAT(error_message_of<weights::ArchiveError>(
                  [&] { weights::load_model<LunaModel>(path); }),
              HasSubstr("truncated or corrupt"));
}

// libtorch's reader allocates what a ZIP record claims before reading it: a record claiming
// more than its stored bytes (the fuzzer's: 4 GB from a 70 KB file) is refused first.
TEST(HostileArchive, RecordsClaimingMoreThanTheirBytesAreRefusedBeforeReading) {
  const std::string fuzzed = fixture("defect_record_claims_4gb.pt");
  EXPECT_THAT(error_message_of<weights::ArchiveError>([&] { weights::read_archive(fuzzed); }),
              HasSubstr("claims 4294967294 bytes"));

  // A stored tensor record of the valid fixture, its size in the central directory raised.
  std::string bytes = read_text(fixture("luna_c2.pt"));
  const std::string name = "luna_c2.pt/data/0";
  const size_t central_name = bytes.rfind(name);
  ASSERT_NE(central_name, std::string::npos);
  const size_t size_field = central_name - 46 + 24;
  ASSERT_EQ(bytes.compare(central_name - 46, 4, "PK\x01\x02"), 0);
  bytes.replace(size_field, 4, "\xff\xff\xff\x7f");
  TemporaryFolder folder;
  const std::string path = folder.path("claims.pt");
  write_file(path, bytes);
  const std::string message =
      error_message_of<weights::ArchiveError>([&] { weights::read_archive(path); });
  EXPECT_THAT(message, HasSubstr("its record '" + name + "' claims 2147483647 bytes"));

  // The directory as libtorch's writer makes it: tensors stored, their sizes those of the
  // values.
  const std::string saved = folder.path("saved.pt");
  weights::save_model(LunaModel(LunaModelOptions().conv_channels(2)), saved);
  int64_t tensor_records = 0;
  for (const auto& record : weights::read_zip_directory(saved)) {
    if (record.name.find("/data/") == std::string::npos) continue;
    ++tensor_records;
    EXPECT_EQ(record.method, 0) << record.name;
    EXPECT_EQ(record.size, record.compressed_size) << record.name;
  }
  EXPECT_EQ(tensor_records, static_cast<int64_t>(weights::read_archive(saved).tensors.size()));
}

// libtorch's Unpickler sizes its memo table by the index a BINPUT gives (the fuzzer's asked
// for 25 GB): indices must follow each other.
TEST(HostileArchive, PickleMemoIndicesMustFollowEachOther) {
  const std::string path = fixture("defect_memo_index.pt");
  EXPECT_THAT(error_message_of<weights::ArchiveError>([&] { weights::read_archive(path); }),
              HasSubstr("its data.pkl is corrupt: a memo index of 1600088163 after 65 entries"));
}

TEST(HostileArchive, NonFiniteWeightsAreRefused) {
  TemporaryFolder folder;
  LunaModel model(LunaModelOptions().conv_channels(2));
  {
    torch::NoGradGuard no_grad;
    model->block2->conv1->weight[0][0][1][1][1] = std::numeric_limits<float>::quiet_NaN();
    model->head_linear->bias[1] = std::numeric_limits<float>::infinity();
  }
  const std::string path = folder.path("diverged.pt");
  weights::save_model(model, path);
  const std::string message =
      error_message_of<weights::ArchiveError>([&] { weights::load_model<LunaModel>(path); });
  std::cout << message << "\n";
  EXPECT_THAT(message, HasSubstr("weights archive '" + path + "'"));
  EXPECT_THAT(message, HasSubstr("non-finite values"));
}

// The native loader reads the module tree's data only: it never compiles the archive's
// TorchScript code (the compiler crashed on a fuzzed source), so broken code does not matter
// to it, and a truncated archive names the file.
TEST(HostileArchive, TheArchivesCodeIsNeverCompiledAndTruncationNamesTheFile) {
  const auto valid = weights::read_archive(fixture("luna_c2.pt")).tensors;
  const auto with_bad_code = weights::read_archive(fixture("luna_c2_bad_code.pt")).tensors;
  ASSERT_EQ(with_bad_code.size(), valid.size());
  for (const auto& [name, tensor] : valid) EXPECT_TRUE(torch::equal(with_bad_code.at(name), tensor)) << name;
  const std::string path = fixture("luna_c2_truncated.pt");
  const std::string message =
      error_message_of<weights::ArchiveError>([&] { weights::load_model<LunaModel>(path); });
  EXPECT_THAT(first_line(message), HasSubstr("weights archive '" + path + "'"));
}

TEST(HostileArchive, AConfigurationOfAnotherSizeIsRefusedBeforeBuilding) {
  // wf=12 describes a 30 GB U-Net; the archive holds a small one. Refused in closed form.
  const std::string path = fixture("unet_wf12.pt");
  int64_t held = 0;
  for (const auto& [name, tensor] : weights::read_archive(path).tensors) held += tensor.numel();
  const std::string message =
      error_message_of<weights::ArchiveError>([&] { weights::load_model<UNetWrapper>(path); });
  EXPECT_THAT(message, HasSubstr("'" + path + "'"));
  EXPECT_THAT(message, HasSubstr("configuration describes a UNetWrapper of "));
  EXPECT_THAT(message, HasSubstr("the archive holds " + std::to_string(held)));
  // The same through explicit options that do not fit.
  EXPECT_THAT(error_message_of<weights::ArchiveError>([&] {
                weights::load_model<LunaModel>(fixture("luna_c2.pt"), LunaModelOptions());
              }),
              HasSubstr("configuration describes a LunaModel of "));
}

TEST(HostileArchive, OptionsBeyondAnyLoadableModelAreConfigErrors) {
  const std::string path = fixture("unet_wf12.pt");
  EXPECT_THAT(error_message_of<ConfigError>([&] {
                weights::load_model<UNetWrapper>(path, UNetWrapperOptions().wf(13));
              }),
              HasSubstr("option 'wf' of the UNetWrapper configuration is 13; it must be 0 to 12"));
  EXPECT_THAT(error_message_of<ConfigError>([&] {
                weights::load_model<UNetWrapper>(path, UNetWrapperOptions().depth(40));
              }),
              HasSubstr("option 'depth'"));
  EXPECT_THAT(error_message_of<ConfigError>([&] {
                weights::load_model<ResNetGenerator>(path, ResNetGeneratorOptions().ngf(1 << 20));
              }),
              HasSubstr("option 'ngf'"));
  EXPECT_THAT(error_message_of<ConfigError>([&] {
                weights::load_model<ResNetGenerator>(path,
                                                     ResNetGeneratorOptions().n_blocks(100000));
              }),
              HasSubstr("option 'n_blocks'"));
}

UNetWrapperOptions small_segmentation_options() {
  return book_segmentation_options().wf(1);
}

TEST(PipelineModels, ModelsThePipelineCannotFeedAreNamed) {
  ct::AnalysisModels models;
  models.segmentation = UNetWrapper(small_segmentation_options());
  models.nodule = LunaModel(LunaModelOptions().conv_channels(1));
  EXPECT_NO_THROW(ct::check_models(models));

  models.segmentation = UNetWrapper(small_segmentation_options().in_channels(8));
  EXPECT_THAT(error_message_of<ConfigError>([&] { ct::check_models(models); }),
              HasSubstr("segmentation UNetWrapper takes in_channels=8; the pipeline feeds it 7"));
  models.segmentation = UNetWrapper(small_segmentation_options().n_classes(2));
  EXPECT_THAT(error_message_of<ConfigError>([&] { ct::check_models(models); }),
              HasSubstr("n_classes=2"));
  models.segmentation = UNetWrapper(small_segmentation_options().padding(false));
  EXPECT_THAT(error_message_of<ConfigError>([&] { ct::check_models(models); }),
              HasSubstr("padding=false"));

  models.segmentation = UNetWrapper(small_segmentation_options());
  models.malignancy = LunaModel(LunaModelOptions().in_channels(2).conv_channels(1));
  EXPECT_THAT(error_message_of<ConfigError>([&] { ct::check_models(models); }),
              HasSubstr("malignancy LunaModel takes in_channels=2"));
  models.malignancy = LunaModel(LunaModelOptions().conv_channels(1).chunk_size({16, 48, 48}));
  EXPECT_THAT(error_message_of<ConfigError>([&] { ct::check_models(models); }),
              HasSubstr("16x48x48 chunks; the pipeline cuts the book's 32x48x48"));
}

// Slices whose sides the U-Net's poolings cannot halve evenly are padded with air and the
// output cropped back: the same as running the model on the padded stack by hand.
TEST(PipelineSlices, SidesTheUNetCannotTakeArePaddedWithAirAndSaidSo) {
  torch::manual_seed(11);
  ct::AnalysisModels models;
  models.segmentation = UNetWrapper(small_segmentation_options());
  models.segmentation->eval();
  models.nodule = LunaModel(LunaModelOptions().conv_channels(1));
  models.nodule->eval();
  ct::CtVolume volume;
  volume.series_uid = "odd";
  volume.hu = torch::rand({8, 30, 35}) * 2000 - 1000;

  // threshold > 1: no candidates, only the segmentation is under test.
  const auto analysis = ct::analyse_scan(models, volume, ct::AnalysisOptions().threshold(2));
  ASSERT_EQ(analysis.probability.sizes(), volume.hu.sizes());
  ASSERT_EQ(analysis.notes.size(), 1u);
  std::cout << "  note: " << analysis.notes[0] << "\n";
  EXPECT_THAT(analysis.notes[0], HasSubstr("35x30 voxels were padded with air (-1000 HU)"));
  EXPECT_THAT(analysis.notes[0], HasSubstr("to 36x32"));

  torch::InferenceMode inference;
  const auto stack = ct::segmentation_input(volume.hu, 0, 8);
  const auto padded = torch::constant_pad_nd(stack, {0, 1, 0, 2}, ct::kMinHu);
  const auto by_hand = models.segmentation(padded).select(1, 0).narrow(1, 0, 30).narrow(2, 0, 35);
  const auto same = closeness(analysis.probability, by_hand, kProbabilityTolerance);
  std::cout << "  pipeline vs padded by hand: " << same << "\n";
  EXPECT_TRUE(same.within) << same;

  volume.hu = torch::rand({8, 32, 36}) * 2000 - 1000;
  EXPECT_TRUE(ct::analyse_scan(models, volume, ct::AnalysisOptions().threshold(2)).notes.empty());
}

}  // namespace
}  // namespace dlwpt::testing
