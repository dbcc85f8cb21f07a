#include "apps/serve/scan_service.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "apps/ct_segment/report.h"
#include "apps/serve/protocol.h"
#include "apps/serve/served_model.h"
#include "dlwpt/ct/metaimage_data.h"
#include "dlwpt/ct/pipeline.h"
#include "dlwpt/ct/scan_io.h"
#include "dlwpt/models/inference.h"
#include "dlwpt/weights/errors.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt::serve {

namespace fs = std::filesystem;

namespace {

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
  batcher_ = std::make_unique<DynamicBatcher<Job, std::string>>(
      BatcherOptions().max_batch_size(1).max_queue_size(max_queue_size),
      [this](std::vector<Job>& jobs) {
        torch::InferenceMode inference;
        std::vector<std::string> answers;
        for (const auto& job : jobs) {
          // Whoever asked has had its 504 by then: a scan of hours must not hold the runner.
          const auto stop_at_deadline = [&job](int64_t, int64_t) {
            if (Clock::now() > job.deadline) throw RequestError(504, "the scan's deadline passed during its analysis");
          };
          const ct::ScanAnalysis analysis = ct::analyse_scan(models_, *job.volume, {}, stop_at_deadline);
          answers.push_back(ct_segment::candidates_json(
              *job.volume, ct_segment::by_probability(analysis.candidates), /*malignancy=*/false));
        }
        return answers;
      },
      [on_batch](const BatchStats& stats) {
        if (on_batch) on_batch("ct_nodules", stats);
      });
}

ScanService::~ScanService() { stop(); }

namespace {

// A MetaImage header may name its data file; a client must not choose files on this server's
// disk. The fields are read as MetaIO reads them (ct::metaimage_header_fields), not found by
// searching the text, where a comment or a key like "ElementDataFileX" can hold the words
// first; a key spelt like ElementDataFile in other letter cases is refused too.
void check_data_is_local(const std::map<std::string, std::string>& fields) {
  for (const auto& [key, value] : fields) {
    std::string lower = key;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower == "elementdatafile" && (key != "ElementDataFile" || value != "LOCAL")) {
      throw RequestError(400, "the .mha must hold its voxels itself (ElementDataFile = LOCAL), not "
                              "name other files (it says " + key + " = \"" + value.substr(0, 100) + "\")");
    }
  }
}

}  // namespace

ct::CtVolume ScanService::read_body(std::string_view body, int64_t max_voxels) {
  const PrivateFolder folder;
  const std::string path = (folder.path() / "scan.mha").string();
  {
    std::ofstream file(path, std::ios::binary);
    file.write(body.data(), static_cast<std::streamsize>(body.size()));
    if (!file.flush()) throw std::runtime_error("cannot write the scan to a temporary file (disk full?)");
  }
  try {
    check_data_is_local(ct::metaimage_header_fields(path));
    ct::CtVolume volume = ct::read_metaimage(path, max_voxels);
    ct::check_volume(volume);  // too small for the models: the client's to fix, before it queues
    return volume;
  } catch (const LimitError& error) {
    throw RequestError(413, replaced(error.what(), path, "the request body"));
  } catch (const Error& error) {
    throw RequestError(400, replaced(error.what(), path, "the request body"));
  }
}

std::future<std::string> ScanService::submit(std::shared_ptr<const ct::CtVolume> volume,
                                             Clock::time_point deadline, std::shared_ptr<void> admission) {
  return batcher_->submit(Job{std::move(volume), deadline}, deadline, std::move(admission));
}

int64_t ScanService::queue_size() const { return batcher_->queue_size(); }

void ScanService::stop() {
  if (batcher_) batcher_->stop();
}

}  // namespace dlwpt::serve
