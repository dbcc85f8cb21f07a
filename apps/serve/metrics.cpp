#include "apps/serve/metrics.h"

#include <fstream>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "dlwpt/weights/numbers.h"

namespace dlwpt::serve {

namespace {

double microseconds(Clock::duration duration) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(duration).count());
}

// From 100 us (a LunaModel chunk's queue wait) to 100 s (a whole CT scan), about 3 per decade.
const prometheus::Histogram::BucketBoundaries& duration_buckets_us() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7, 1e8};
  return buckets;
}

const prometheus::Histogram::BucketBoundaries& batch_size_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {1, 2, 4, 8, 16, 32, 64};
  return buckets;
}

}  // namespace

struct Metrics::Families {
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Counter>& inferences;
  prometheus::Family<prometheus::Counter>& executions;
  prometheus::Family<prometheus::Counter>& failures;
  prometheus::Family<prometheus::Counter>& expired;
  prometheus::Family<prometheus::Gauge>& queue_size;
  prometheus::Family<prometheus::Histogram>& queue_duration;
  prometheus::Family<prometheus::Histogram>& compute_duration;
  prometheus::Family<prometheus::Histogram>& request_duration;
  prometheus::Family<prometheus::Histogram>& batch_size;
  prometheus::Gauge& resident_memory;
};

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& registry = *registry_;
  families_ = std::make_unique<Families>(Families{
      prometheus::BuildCounter()
          .Name("dlwpt_requests_total")
          .Help("HTTP requests answered, by model, endpoint and status")
          .Register(registry),
      prometheus::BuildCounter()
          .Name("dlwpt_inference_count")
          .Help("Requests the model ran (each in some batch)")
          .Register(registry),
      prometheus::BuildCounter()
          .Name("dlwpt_execution_count")
          .Help("Batches the model ran; inference_count / execution_count is the mean batch size")
          .Register(registry),
      prometheus::BuildCounter()
          .Name("dlwpt_inference_failures_total")
          .Help("Requests whose batch failed in the model (answered 500)")
          .Register(registry),
      prometheus::BuildCounter()
          .Name("dlwpt_inference_expired_total")
          .Help("Requests dropped from the queue at their deadline (answered 504)")
          .Register(registry),
      prometheus::BuildGauge()
          .Name("dlwpt_queue_size")
          .Help("Requests waiting for the model")
          .Register(registry),
      prometheus::BuildHistogram()
          .Name("dlwpt_queue_duration_us")
          .Help("Time from a request's arrival in the queue to the start of its batch")
          .Register(registry),
      prometheus::BuildHistogram()
          .Name("dlwpt_compute_duration_us")
          .Help("The model's time per batch")
          .Register(registry),
      prometheus::BuildHistogram()
          .Name("dlwpt_request_duration_us")
          .Help("Whole request time in the server, from its handler's start to the answer")
          .Register(registry),
      prometheus::BuildHistogram()
          .Name("dlwpt_batch_size")
          .Help("Requests per batch")
          .Register(registry),
      prometheus::BuildGauge()
          .Name("process_resident_memory_bytes")
          .Help("Resident memory of the server process")
          .Register(registry)
          .Add({}),
  });
}

Metrics::~Metrics() = default;

void Metrics::count_request(const std::string& model, const std::string& endpoint, int status,
                            Clock::duration duration) {
  families_->requests.Add({{"model", model}, {"endpoint", endpoint}, {"status", std::to_string(status)}})
      .Increment();
  families_->request_duration.Add({{"model", model}}, duration_buckets_us()).Observe(microseconds(duration));
}

void Metrics::observe_batch(const std::string& model, const BatchStats& stats) {
  const prometheus::Labels labels = {{"model", model}};
  if (stats.expired) families_->expired.Add(labels).Increment(static_cast<double>(stats.expired));
  if (stats.size == 0) return;
  if (stats.failed) families_->failures.Add(labels).Increment(static_cast<double>(stats.size));
  families_->inferences.Add(labels).Increment(static_cast<double>(stats.size));
  families_->executions.Add(labels).Increment();
  families_->batch_size.Add(labels, batch_size_buckets()).Observe(static_cast<double>(stats.size));
  families_->compute_duration.Add(labels, duration_buckets_us()).Observe(microseconds(stats.compute));
  auto& queue = families_->queue_duration.Add(labels, duration_buckets_us());
  for (const auto wait : stats.queue_waits) queue.Observe(microseconds(wait));
}

void Metrics::set_queue_size(const std::string& model, int64_t size) {
  families_->queue_size.Add({{"model", model}}).Set(static_cast<double>(size));
}

std::string Metrics::scrape() {
  families_->resident_memory.Set(static_cast<double>(resident_memory_bytes()));
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

int64_t resident_memory_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::string_view number(line);
    number.remove_prefix(6);
    const auto end = number.find(" kB");
    const auto kilobytes = parse_integer(number.substr(0, end));
    return kilobytes ? *kilobytes * 1024 : 0;
  }
  return 0;
}

}  // namespace dlwpt::serve
