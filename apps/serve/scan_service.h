#pragma once

// POST /v1/ct/nodules: a whole CT scan (one MetaImage .mha file) through the book's nodule
// pipeline (ct/pipeline.h, as ct-segment runs it), answered as ct-segment's candidates.json.
// Scans run one at a time on their own runner thread, after a bounded queue.

#include <future>
#include <memory>
#include <string>
#include <string_view>

#include "apps/serve/batcher.h"
#include "dlwpt/ct/pipeline.h"
#include "dlwpt/ct/volume.h"
#include "dlwpt/models/inference.h"

namespace dlwpt::serve {

struct ModelSource;

class ScanService {
 public:
  /// The U-Net and the nodule classifier from their sources (`--model` values: archives, or
  /// "untrained"), checked to fit the pipeline; ConfigError naming the archive otherwise.
  ScanService(const ModelSource& segmentation, const ModelSource& nodule, int64_t max_queue_size,
              Precision precision, std::function<void(const std::string& model, const BatchStats&)> on_batch);
  ~ScanService();
  ScanService(const ScanService&) = delete;
  ScanService& operator=(const ScanService&) = delete;

  /// Reads a MetaImage .mha body (header and voxels in one file; a header that names other
  /// files is refused) of at most `max_voxels`; RequestError 400 or 413 naming the problem.
  static ct::CtVolume read_body(std::string_view body, int64_t max_voxels);

  /// Queues the analysis of `volume`; the future holds candidates.json's text. `admission` is
  /// held until the analysis is done (see DynamicBatcher::submit). An analysis still running
  /// at `deadline` stops at its next slice or chunk, freeing the runner for the next scan.
  std::future<std::string> submit(std::shared_ptr<const ct::CtVolume> volume, Clock::time_point deadline,
                                  std::shared_ptr<void> admission = {});

  int64_t queue_size() const;
  /// Admission before a scan is read: the queue and the running scan.
  AdmissionLimit& admission() { return admission_; }
  void stop();

 private:
  ct::AnalysisModels models_;
  AdmissionLimit admission_{1};
  struct Job {
    std::shared_ptr<const ct::CtVolume> volume;
    Clock::time_point deadline;
  };
  std::unique_ptr<DynamicBatcher<Job, std::string>> batcher_;
};

}  // namespace dlwpt::serve
