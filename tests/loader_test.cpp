// The strict loader: errors that name the problem, and archives that C++ and Python both read.

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tests/test_support.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt::testing {
namespace {

using ::testing::HasSubstr;
using weights::ArchiveError;

template <typename Fn>
std::string archive_error_of(Fn&& fn) {
  return error_message_of<ArchiveError>(std::forward<Fn>(fn));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Loader, LunaArchiveIntoUNetListsMissingAndUnexpected) {
  UNetWrapper unet(book_segmentation_options());
  const std::string path = reference_path("luna.pt");
  const std::string message = archive_error_of([&] { weights::load_archive(*unet, path); });
  EXPECT_THAT(message, HasSubstr(path));
  EXPECT_THAT(message, HasSubstr("missing from the archive"));
  EXPECT_THAT(message, HasSubstr("unet.last.weight [1, 16, 1, 1]"));
  EXPECT_THAT(message, HasSubstr("unexpected in the archive"));
  EXPECT_THAT(message, HasSubstr("head_linear.weight [2, 1152]"));
  EXPECT_THAT(message, HasSubstr("input_batchnorm.running_mean [7]"));
}

TEST(Loader, ArchiveOfAnotherModelIsNamed) {
  const std::string message =
      archive_error_of([] { weights::load_model<UNetWrapper>(reference_path("luna.pt")); });
  EXPECT_THAT(message, HasSubstr("holds a LunaModel, not a UNetWrapper"));
}

TEST(Loader, Ngf32IntoNgf64ListsEveryShapeMismatch) {
  ResNetGenerator generator;  // ngf = 64
  const std::string message = archive_error_of(
      [&] { weights::load_archive(*generator, reference_path("cyclegan_ngf32.pt")); });
  // Every tensor but the last bias, [3] for RGB whatever ngf is.
  EXPECT_THAT(message, HasSubstr("0 missing, 0 unexpected, 47 mismatched"));
  EXPECT_THAT(message, HasSubstr("model.1.weight: module has shape [64, 3, 7, 7], archive has "
                                 "[32, 3, 7, 7]"));
  EXPECT_THAT(message, HasSubstr("model.19.weight: module has shape [256, 128, 3, 3], archive "
                                 "has [128, 64, 3, 3]"));
}

TEST(Loader, MismatchLeavesTheModuleUntouched) {
  ResNetGenerator generator(ResNetGeneratorOptions().ngf(32).n_blocks(8));
  const auto before = weights::state_dict(*generator).at("model.1.weight").clone();
  archive_error_of(
      [&] { weights::load_archive(*generator, reference_path("cyclegan_ngf32.pt")); });
  EXPECT_TRUE(torch::equal(before, weights::state_dict(*generator).at("model.1.weight")));
}

TEST(Loader, DtypeMismatchIsNamed) {
  auto tensors = weights::read_archive(reference_path("luna.pt")).tensors;
  tensors["head_linear.bias"] = tensors["head_linear.bias"].to(torch::kDouble);
  LunaModel model;
  const std::string message =
      archive_error_of([&] { weights::load_state_dict(*model, tensors); });
  EXPECT_THAT(message, HasSubstr("head_linear.bias: module has dtype Float, archive has Double"));
}

TEST(Loader, TruncatedArchiveIsNamed) {
  TemporaryFolder folder;
  const std::string bytes = read_bytes(reference_path("luna.pt"));
  const std::string path = folder.path("truncated.pt");
  write_file(path, bytes.substr(0, bytes.size() / 2));
  const std::string message = archive_error_of([&] { weights::read_archive(path); });
  EXPECT_THAT(message, HasSubstr("cannot read weights archive '" + path + "'"));
  EXPECT_THAT(message, HasSubstr("truncated"));
}

TEST(Loader, TextFileIsNotAnArchive) {
  TemporaryFolder folder;
  const std::string path = folder.path("notes.pt");
  write_file(path, "these are not weights\n");
  const std::string message = archive_error_of([&] { weights::read_archive(path); });
  EXPECT_THAT(message, HasSubstr(path));
  EXPECT_THAT(message, HasSubstr("not a TorchScript archive"));
}

TEST(Loader, EmptyFileIsNamed) {
  TemporaryFolder folder;
  const std::string path = folder.path("empty.pt");
  write_file(path, "");
  EXPECT_THAT(archive_error_of([&] { weights::read_archive(path); }),
              HasSubstr("the file is empty"));
}

TEST(Loader, LegacyPickleGetsAConversionHint) {
  TemporaryFolder folder;
  const std::string path = folder.path("checkpoint.state");
  write_file(path, std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 14));
  EXPECT_THAT(archive_error_of([&] { weights::read_archive(path); }),
              HasSubstr("legacy (non-zip) torch.save pickle"));
}

TEST(Loader, MissingFileAndFolderAreNamed) {
  TemporaryFolder folder;
  EXPECT_THAT(archive_error_of([&] { weights::read_archive(folder.path("absent.pt")); }),
              HasSubstr("'" + folder.path("absent.pt") + "' does not exist"));
  EXPECT_THAT(archive_error_of([&] { weights::read_archive(folder.path("")); }),
              HasSubstr("is a folder, not a file"));
}

// Every reader of a named file asks regular_file_problem() first: a pipe would block it.
TEST(Loader, PipesDevicesAndFoldersAreNoFiles) {
  TemporaryFolder folder;
  const std::string pipe = folder.path("pipe.pt");
  ASSERT_EQ(::mkfifo(pipe.c_str(), 0600), 0);
  EXPECT_THAT(archive_error_of([&] { weights::read_archive(pipe); }),
              HasSubstr("'" + pipe + "' is not a regular file (a device, pipe or socket)"));
  EXPECT_EQ(regular_file_problem("/dev/zero"), "is not a regular file (a device, pipe or socket)");
  EXPECT_EQ(regular_file_problem(folder.path("")), "is a folder, not a file");
  EXPECT_EQ(regular_file_problem(folder.path("none")), "does not exist");
  EXPECT_EQ(regular_file_problem(reference_path("luna.pt")), std::nullopt);
}

TEST(Loader, NonStrictLoadReportsWhatItSkipped) {
  auto tensors = weights::read_archive(reference_path("luna.pt")).tensors;
  tensors.erase("head_linear.weight");
  tensors.erase("head_linear.bias");
  tensors["extra.weight"] = torch::zeros({3});
  LunaModel model;
  const auto report =
      weights::load_state_dict(*model, tensors, weights::LoadOptions().strict(false));
  EXPECT_EQ(report.missing, (std::vector<std::string>{"head_linear.bias [2]",
                                                      "head_linear.weight [2, 1152]"}));
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"extra.weight [3]"}));
  EXPECT_EQ(report.loaded.size(), 21u);
  EXPECT_TRUE(torch::equal(model->block4->conv2->weight, tensors.at("block4.conv2.weight")));
}

TEST(Loader, PrefixSelectsAWrappedModel) {
  // The book's traced CycleGAN wraps the generator as `model`, so its keys read model.model.*.
  TemporaryFolder folder;
  weights::TensorMap wrapped;
  for (const auto& [name, tensor] :
       weights::read_archive(reference_path("cyclegan_small.pt")).tensors) {
    wrapped["model." + name] = tensor;
  }
  wrapped["scale"] = torch::ones({1});
  const std::string path = folder.path("wrapped.pt");
  weights::write_archive(wrapped, path);
  ResNetGenerator generator(ResNetGeneratorOptions().ngf(8).n_blocks(2));
  const auto report =
      weights::load_archive(*generator, path, weights::LoadOptions().prefix("model."));
  EXPECT_EQ(report.loaded.size(), 2u * (3 + 2 * 2 + 2 + 1));
  EXPECT_TRUE(torch::equal(generator->named_parameters()["model.1.weight"],
                           wrapped.at("model.model.1.weight")));
}

void expect_same_tensors(const weights::TensorMap& actual, const weights::TensorMap& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, tensor] : expected) {
    ASSERT_EQ(actual.count(name), 1u) << name;
    EXPECT_EQ(actual.at(name).scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(actual.at(name), tensor)) << name << " changed";
  }
}

TEST(SaveArchive, NativeRoundTripIsBitIdentical) {
  TemporaryFolder folder;
  torch::manual_seed(3);
  UNetWrapper unet(book_segmentation_options());
  // Non-default buffers, so that the round trip of running statistics is visible.
  for (auto& buffer : unet->buffers()) buffer.add_(torch::randint(1, 5, buffer.sizes(), buffer.options()));
  const std::string path = folder.path("unet.pt");
  weights::save_model(unet, path);
  const UNetWrapper loaded = weights::load_model<UNetWrapper>(path);
  EXPECT_EQ(loaded->options.depth(), 3);
  EXPECT_TRUE(loaded->options.padding());
  expect_same_tensors(weights::state_dict(*loaded), weights::state_dict(*unet));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}

TEST(SaveArchive, PythonReadsWhatCppWrites) {
  TemporaryFolder folder;
  torch::manual_seed(4);
  LunaModel luna;
  for (auto& buffer : luna->buffers()) buffer.add_(torch::randint(1, 5, buffer.sizes(), buffer.options()));
  const std::string written = folder.path("luna_cpp.pt");
  weights::save_model(luna, written);
  // Python loads the archive strictly into its own LunaModel and returns the state_dict.
  const auto python = run_python_reference(written);
  weights::TensorMap echoed;
  for (const auto& [name, tensor] : python) echoed[name.substr(std::string("loaded_state.").size())] = tensor;
  expect_same_tensors(echoed, weights::state_dict(*luna));
}

TEST(Loader, ScriptedArchiveLoadsLikeATracedOne) {
  const auto model = weights::load_model<LunaModel>(reference_path("luna_scripted.pt"));
  const auto python = weights::read_archive(reference_path("luna_scripted.state.pt")).tensors;
  expect_same_tensors(weights::state_dict(*model), python);
}

TEST(Loader, ArchiveWrittenByTorchSaveLoads) {
  TemporaryFolder folder;
  torch::manual_seed(5);
  LunaModel saved;
  for (auto& buffer : saved->buffers()) buffer.add_(3);
  torch::save(saved, folder.path("torch_save.pt"));
  LunaModel loaded;
  const auto report = weights::load_archive(*loaded, folder.path("torch_save.pt"));
  EXPECT_EQ(report.loaded.size(), 23u);
  expect_same_tensors(weights::state_dict(*loaded), weights::state_dict(*saved));
}

TEST(SaveArchive, FailedSaveLeavesNoFile) {
  TemporaryFolder folder;
  const std::string path = folder.path("missing-folder/luna.pt");
  EXPECT_THAT(archive_error_of([&] { weights::save_model(LunaModel(), path); }),
              HasSubstr("cannot write weights archive '" + path + "'"));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(ModelConfig, MalformedConfigurationsAreNamed) {
  EXPECT_THAT(archive_error_of([] { weights::ModelConfig::parse("depth=3\n"); }),
              HasSubstr("names no model"));
  EXPECT_THAT(archive_error_of([] { weights::ModelConfig::parse("model=UNetWrapper\nbad\n"); }),
              HasSubstr("malformed model configuration line 'bad'"));
  const auto config = weights::ModelConfig::parse("model=UNetWrapper\ndepth=three\n");
  EXPECT_THAT(archive_error_of([&] { config.integer("depth"); }),
              HasSubstr("option 'depth' of the UNetWrapper configuration is 'three'"));
  EXPECT_THAT(archive_error_of([&] { config.integer("wf"); }), HasSubstr("lacks the option 'wf'"));
}

TEST(ModelConfig, WindowsLineEndsAreRead) {
  const auto config = weights::ModelConfig::parse("model=LunaModel\r\nconv_channels=2\r\n\r\n");
  EXPECT_EQ(config.model, "LunaModel");
  EXPECT_EQ(config.integer("conv_channels"), 2);
}

}  // namespace
}  // namespace dlwpt::testing
