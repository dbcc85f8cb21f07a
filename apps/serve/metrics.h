#pragma once

// dlwpt-serve's metrics in Prometheus' text format (GET /metrics), named after Triton's where
// they mean the same: per model, requests by endpoint and status, inferences (requests run)
// against executions (batches run), queue size, and histograms of queue wait, compute time,
// whole request time and batch size; and the process's resident memory.

#include <memory>
#include <string>

#include "apps/serve/batcher.h"

namespace prometheus {
class Registry;
}

namespace dlwpt::serve {

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// One answered request; `model` is empty for requests that reached no model.
  void count_request(const std::string& model, const std::string& endpoint, int status,
                     Clock::duration duration);
  /// One batch the model's runner took (BatcherOptions::on_batch).
  void observe_batch(const std::string& model, const BatchStats& stats);
  void set_queue_size(const std::string& model, int64_t size);

  /// The text exposition of every metric, the process's memory read now.
  std::string scrape();

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
};

/// The process's resident memory in bytes (VmRSS), 0 where /proc cannot tell.
int64_t resident_memory_bytes();

}  // namespace dlwpt::serve
