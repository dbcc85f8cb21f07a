#include "dlwpt/training/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <torch/serialize.h>

#include "dlwpt/weights/atomic_file.h"
#include "dlwpt/weights/errors.h"
#include "dlwpt/weights/numbers.h"

namespace dlwpt::training {

namespace fs = std::filesystem;

namespace {

// A checkpoint is swapped in by renames: new -> current, with the old one moved aside first;
// an interruption leaves either the current or the old folder complete.
fs::path current_folder(const std::string& folder) { return fs::path(folder); }
fs::path new_folder(const std::string& folder) { return fs::path(folder + ".new"); }
fs::path old_folder(const std::string& folder) { return fs::path(folder + ".old"); }

bool is_complete(const fs::path& folder) {
  return fs::exists(folder / CheckpointFiles::kModel) &&
         fs::exists(folder / CheckpointFiles::kOptimizer) &&
         fs::exists(folder / CheckpointFiles::kState);
}


std::string state_text(const TrainingState& state) {
  std::ostringstream text;
  text.precision(17);
  text << "epoch=" << state.epoch << "\nbest_f1=" << state.best_f1
       << "\nbest_epoch=" << state.best_epoch << "\nseed=" << state.seed << "\n";
  return text.str();
}

TrainingState parse_state(const fs::path& path) {
  std::ifstream file(path);
  if (!file) throw FileError("cannot read '" + path.string() + "'");
  TrainingState state;
  int found = 0;
  for (std::string line; std::getline(file, line);) {
    const auto equals = line.find('=');
    if (equals == std::string::npos) continue;
    const std::string key = line.substr(0, equals);
    const std::string value = line.substr(equals + 1);
    const auto bad_value = [&] {
      return FileError("'" + path.string() + "': bad value for " + key + ": '" + value + "'");
    };
    const auto read = [&](auto& field, auto parsed) {
      if (!parsed) throw bad_value();
      field = *parsed;
      ++found;
    };
    if (key == "epoch") read(state.epoch, parse_integer(value));
    if (key == "best_f1") read(state.best_f1, parse_double(value));
    if (key == "best_epoch") read(state.best_epoch, parse_integer(value));
    if (key == "seed") read(state.seed, parse_unsigned(value));
  }
  if (found != 4) throw FileError("'" + path.string() + "' is incomplete");
  return state;
}

// The folder to read: the current checkpoint, or the old one when a swap was interrupted.
fs::path readable_folder(const std::string& folder) {
  if (is_complete(current_folder(folder))) return current_folder(folder);
  if (is_complete(old_folder(folder))) return old_folder(folder);
  throw FileError("no complete checkpoint in '" + folder + "' (expected " +
                           CheckpointFiles::kModel + ", " + CheckpointFiles::kOptimizer + " and " +
                           CheckpointFiles::kState + ")");
}

}  // namespace

void save_checkpoint(const std::string& folder, const torch::nn::Module& model,
                     const weights::ModelConfig& config, torch::optim::Optimizer& optimizer,
                     const TrainingState& state) {
  const fs::path fresh = new_folder(folder);
  fs::remove_all(fresh);
  fs::create_directories(fresh);
  // Every file flushed to the disk before the swap below makes the folder the checkpoint.
  try {
    weights::save_archive(model, (fresh / CheckpointFiles::kModel).string(), config);
    write_serialized_atomically((fresh / CheckpointFiles::kOptimizer).string(),
                                [&](std::ostream& out) { torch::save(optimizer, out); });
    write_file_atomically((fresh / CheckpointFiles::kState).string(), state_text(state));
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(fresh, ignored);  // a checkpoint is the whole folder or nothing
    throw;
  }
  const fs::path current = current_folder(folder);
  const fs::path old = old_folder(folder);
  fs::remove_all(old);
  if (fs::exists(current)) fs::rename(current, old);
  fs::rename(fresh, current);
  sync_to_disk(current.parent_path().empty() ? "." : current.parent_path().string());
  fs::remove_all(old);
}

TrainingState load_checkpoint(const std::string& folder, torch::nn::Module& model,
                              const weights::ModelConfig& config,
                              torch::optim::Optimizer& optimizer) {
  const fs::path source = readable_folder(folder);
  const std::string model_path = (source / CheckpointFiles::kModel).string();
  const auto archive = weights::read_archive(model_path);
  const std::string saved = archive.model_config ? archive.model_config->to_text() : "(none)";
  if (!archive.model_config || archive.model_config->to_text() != config.to_text()) {
    throw FileError("checkpoint '" + model_path + "' holds another model:\n" + saved +
                             "expected:\n" + config.to_text());
  }
  try {
    weights::load_state_dict(model, archive.tensors);
  } catch (const weights::ArchiveError& error) {
    throw weights::ArchiveError("checkpoint '" + model_path + "': " + error.what());
  }
  const std::string optimizer_path = (source / CheckpointFiles::kOptimizer).string();
  try {
    torch::load(optimizer, optimizer_path);
  } catch (const c10::Error& error) {
    throw FileError("checkpoint '" + optimizer_path + "' cannot be read: " +
                    first_line(error.what_without_backtrace()));
  }
  return parse_state(source / CheckpointFiles::kState);
}

bool has_checkpoint(const std::string& folder) {
  return is_complete(current_folder(folder)) || is_complete(old_folder(folder));
}

}  // namespace dlwpt::training
