// The atomic writer every output goes through: whole files or none, never a temporary left.

#include <csignal>
#include <filesystem>
#include <fstream>

#include <sys/resource.h>

#include "tests/test_support.h"
#include "dlwpt/training/checkpoint.h"
#include "dlwpt/training/optimizer.h"
#include "dlwpt/weights/atomic_file.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::vector<std::string> entries(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Lowers RLIMIT_FSIZE for the scope, with SIGXFSZ ignored as the apps do: writes past the limit
// then fail with EFBIG, as they would on a full disk.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_handler_);
  }

 private:
  rlimit saved_{};
  void (*previous_handler_)(int) = SIG_DFL;
};

TEST(AtomicFile, AFinishedWriteReplacesTheFileWhole) {
  TemporaryFolder folder;
  const std::string path = folder.path("out.csv");
  write_file(path, "old");
  write_file_atomically(path, "new contents");
  EXPECT_EQ(read_text(path), "new contents");
  EXPECT_EQ(entries(folder.path("")), std::vector<std::string>{"out.csv"});
}

TEST(AtomicFile, AFailedWriterLeavesTheOldFileAndNoTemporary) {
  TemporaryFolder folder;
  const std::string path = folder.path("image.png");
  write_file(path, "old");
  std::string temporary_name;
  const std::string message = error_message_of<FileError>([&] {
    write_atomically(path, [&](const std::string& temporary) {
      temporary_name = temporary;
      write_file(temporary, "half");
      throw std::runtime_error("encoder failed");
    });
  });
  EXPECT_THAT(message, HasSubstr("cannot write '" + path + "': encoder failed"));
  EXPECT_EQ(fs::path(temporary_name).extension(), ".png") << "writers choose formats by it";
  EXPECT_EQ(fs::path(temporary_name).parent_path(), fs::path(path).parent_path());
  EXPECT_EQ(read_text(path), "old");
  EXPECT_EQ(entries(folder.path("")), std::vector<std::string>{"image.png"});
}

TEST(AtomicFile, AWriterThatWritesNothingFails) {
  TemporaryFolder folder;
  EXPECT_THAT(error_message_of<FileError>([&] {
                write_atomically(folder.path("a.txt"), [](const std::string&) {});
              }),
              HasSubstr("produced no file"));
  EXPECT_TRUE(entries(folder.path("")).empty());
}

TEST(AtomicFile, AFullDiskIsAnErrorAndLeavesNothing) {
  TemporaryFolder folder;
  const std::string path = folder.path("big.raw");
  std::string message;
  {
    FileSizeLimit limit(4096);
    message = error_message_of<FileError>([&] { write_file_atomically(path, std::string(100000, 'x')); });
  }
  EXPECT_THAT(message, HasSubstr("File too large"));
  EXPECT_TRUE(entries(folder.path("")).empty());
}

// libtorch's zip writer terminates the process when a write fails under it (its destructor
// throws again): archives and checkpoints are serialized in memory first.
TEST(AtomicFile, ArchivesAndCheckpointsOnAFullDiskAreErrors) {
  TemporaryFolder folder;
  LunaModel model;
  auto optimizer = training::make_optimizer(model->parameters(), training::book_classification_optimizer());
  std::string archive_message, checkpoint_message;
  {
    FileSizeLimit limit(4096);
    archive_message = error_message_of<FileError>([&] { weights::save_model(model, folder.path("luna.pt")); });
    checkpoint_message = error_message_of<FileError>([&] {
      training::save_checkpoint(folder.path("run"), *model, weights::to_model_config(model->options),
                                *optimizer, training::TrainingState{});
    });
  }
  std::cout << archive_message << "\n" << checkpoint_message << "\n";
  EXPECT_THAT(archive_message, HasSubstr("'" + folder.path("luna.pt") + "'"));
  EXPECT_THAT(archive_message, HasSubstr("File too large"));
  EXPECT_THAT(checkpoint_message, HasSubstr("File too large"));
  // The checkpoint is staged in run.new and swapped in whole: a failed one leaves nothing.
  EXPECT_TRUE(entries(folder.path("")).empty()) << "no temporary or partial checkpoint left";
}

TEST(AtomicFile, TemporaryNamesDifferPerCall) {
  const std::string first = unique_name_suffix();
  const std::string second = unique_name_suffix();
  std::cout << "suffixes: " << first << ", " << second << "\n";
  EXPECT_NE(first, second);
  EXPECT_THAT(first, HasSubstr("-" + std::to_string(::getpid()) + "-"));
}

TEST(ErrorMessages, LibtorchErrorsLoseTheirBacktraceAndBadAllocIsNamed) {
  try {
    TORCH_CHECK(false, "shape is wrong");
  } catch (const std::exception& error) {
    EXPECT_EQ(message_of(error), "shape is wrong");
  }
  EXPECT_THAT(message_of(std::bad_alloc()), HasSubstr("out of memory"));
  EXPECT_EQ(message_of(LimitError("too big")), "too big");
}

}  // namespace
}  // namespace dlwpt::testing
