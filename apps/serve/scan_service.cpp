#include "apps/serve/scan_service.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "apps/ct_segment/report.h"
#include "apps/serve/protocol.h"
#include "apps/serve/served_model.h"
#include "dlwpt/ct/scan_io.h"
#include "dlwpt/models/inference.h"
#include "dlwpt/weights/errors.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt::serve {

namespace fs = std::filesystem;

namespace {

// Where a MetaImage header says its voxels are; the header is text, at most this long.
constexpr size_t kMaxHeaderBytes = 64 << 10;

template <typename Model, typename Check>
Model pipeline_model(const ModelSource& source, Model untrained, const Check& check, Precision precision) {
  Model model = source.source == "untrained" ? untrained : weights::load_model<Model>(source.source);
  try {
    check(model);
  } catch (const ConfigError& error) {
    throw ConfigError("--model " + source.name + ": " + error.what());
  }
  model->eval();
  return optimize_for_inference(model, InferenceOptions().precision(precision));
}

// The value of the header's ElementDataFile line ("" when there is none in the header).
std::string element_data_file(std::string_view body) {
  const std::string_view header = body.substr(0, kMaxHeaderBytes);
  const size_t key = header.find("ElementDataFile");
  if (key == std::string_view::npos) return "";
  const size_t equals = header.find('=', key);
  const size_t end = header.find_first_of("\r\n", key);
  if (equals == std::string_view::npos || equals > end) return "";
  std::string_view value = header.substr(equals + 1, end - equals - 1);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  return std::string(value);
}

// A folder only this process uses, removed with everything in it.
class PrivateFolder {
 public:
  PrivateFolder() {
    std::string pattern = (fs::temp_directory_path() / "dlwpt-serve-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("cannot create a temporary folder");
    path_ = pattern;
  }
  ~PrivateFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  PrivateFolder(const PrivateFolder&) = delete;
  PrivateFolder& operator=(const PrivateFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

}  // namespace

ScanService::ScanService(const ModelSource& segmentation, const ModelSource& nodule,
                         int64_t max_queue_size, Precision precision,
                         std::function<void(const std::string&, const BatchStats&)> on_batch) {
  admission_ = AdmissionLimit(max_queue_size + 1);
  torch::manual_seed(0);
  models_.segmentation = pipeline_model(segmentation, UNetWrapper(book_segmentation_options()),
                                        ct::check_segmentation_model, precision);
  models_.nodule = pipeline_model(
      nodule, LunaModel(), [](const LunaModel& model) { ct::check_classification_model(model, "nodule"); },
      precision);
  batcher_ = std::make_unique<DynamicBatcher<std::shared_ptr<const ct::CtVolume>, std::string>>(
      BatcherOptions().max_batch_size(1).max_queue_size(max_queue_size),
      [this](std::vector<std::shared_ptr<const ct::CtVolume>>& scans) {
        torch::InferenceMode inference;
        std::vector<std::string> answers;
        for (const auto& scan : scans) {
          const ct::ScanAnalysis analysis = ct::analyse_scan(models_, *scan);
          answers.push_back(ct_segment::candidates_json(
              *scan, ct_segment::by_probability(analysis.candidates), /*malignancy=*/false));
        }
        return answers;
      },
      [on_batch](const BatchStats& stats) {
        if (on_batch) on_batch("ct_nodules", stats);
      });
}

ScanService::~ScanService() { stop(); }

ct::CtVolume ScanService::read_body(std::string_view body, int64_t max_voxels) {
  const std::string data_file = element_data_file(body);
  if (data_file.empty()) {
    throw RequestError(400, "the body is not a MetaImage .mha file (no ElementDataFile line in its "
                            "first 64 KiB of header)");
  }
  // Any other value names files on this server's disk, which a client must not choose.
  if (data_file != "LOCAL") {
    throw RequestError(400, "the .mha must hold its voxels itself (ElementDataFile = LOCAL), not "
                            "name other files (it says \"" + data_file.substr(0, 100) + "\")");
  }
  const PrivateFolder folder;
  const std::string path = (folder.path() / "scan.mha").string();
  {
    std::ofstream file(path, std::ios::binary);
    file.write(body.data(), static_cast<std::streamsize>(body.size()));
    if (!file.flush()) throw std::runtime_error("cannot write the scan to a temporary file (disk full?)");
  }
  try {
    return ct::read_metaimage(path, max_voxels);
  } catch (const LimitError& error) {
    throw RequestError(413, replaced(error.what(), path, "the request body"));
  } catch (const Error& error) {
    throw RequestError(400, replaced(error.what(), path, "the request body"));
  }
}

std::future<std::string> ScanService::submit(std::shared_ptr<const ct::CtVolume> volume,
                                             Clock::time_point deadline, std::shared_ptr<void> admission) {
  return batcher_->submit(std::move(volume), deadline, std::move(admission));
}

int64_t ScanService::queue_size() const { return batcher_->queue_size(); }

void ScanService::stop() {
  if (batcher_) batcher_->stop();
}

}  // namespace dlwpt::serve
