#pragma once

// Dynamic request batching for dlwpt-serve, with the semantics of Triton's dynamic batcher:
// requests queue per model; the model's runner thread takes a batch as soon as it is free and
// either `max_batch_size` requests wait or the oldest has waited `max_queue_delay` (measured
// from its arrival, not from when the runner looked); beyond `max_queue_size` waiting requests
// new ones are refused (the server answers 503); a request whose deadline passes in the queue
// is dropped before it runs (504); an exception of the model fails its batch's requests (500)
// and the runner goes on. Several runners (model instances, Triton's instance groups) may
// share one queue: on a CPU, two single-threaded instances of a small model can run more
// requests per second than one instance with two intra-op threads.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <torch/arg.h>

namespace dlwpt::serve {

using Clock = std::chrono::steady_clock;

struct BatcherOptions {
  /// Requests run together at most.
  TORCH_ARG(int64_t, max_batch_size) = 1;
  /// How long the oldest waiting request may wait for others to fill its batch.
  TORCH_ARG(std::chrono::microseconds, max_queue_delay) = std::chrono::microseconds(0);
  /// Requests that may wait; more are refused with QueueFull.
  TORCH_ARG(int64_t, max_queue_size) = 64;
};

/// The queue holds max_queue_size requests already (HTTP 503, with Retry-After).
class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The request's deadline passed before it ran (HTTP 504).
class DeadlineExceeded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The batcher is stopping and takes no new requests (HTTP 503).
class ShuttingDown : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What one batch took, for the metrics.
struct BatchStats {
  int64_t size = 0;                          ///< requests that ran
  int64_t expired = 0;                       ///< requests dropped for their deadline
  std::vector<Clock::duration> queue_waits;  ///< arrival to dispatch, per request that ran
  Clock::duration compute{};                 ///< the model's time for the batch
  bool failed = false;                       ///< the model threw
};

/// Counts the requests a model has taken in, from their admission (before their bodies are
/// read) to their answers, up to a limit: the queue's own limit counts only requests already
/// submitted, so without this, a burst of connections would all read their bodies into memory
/// before most of them found the queue full.
class AdmissionLimit {
 public:
  explicit AdmissionLimit(int64_t limit) : limit_(limit) {}

  /// A token the request holds until it is answered; empty when the limit is reached.
  std::shared_ptr<void> try_admit() {
    if (count_->fetch_add(1) >= limit_) {
      count_->fetch_sub(1);
      return nullptr;
    }
    // Points at the counter (never null, so that it tests true); releasing it counts down.
    return std::shared_ptr<void>(count_.get(), [count = count_](void*) { count->fetch_sub(1); });
  }

  bool has_room() const { return count_->load() < limit_; }

 private:
  int64_t limit_;
  std::shared_ptr<std::atomic<int64_t>> count_ = std::make_shared<std::atomic<int64_t>>(0);
};

/// One model's queue and its runner threads. `Input` is one request's input, `Output` its
/// result; a runner maps a batch of inputs to their outputs in order, on its own thread.
template <typename Input, typename Output>
class DynamicBatcher {
 public:
  using RunBatch = std::function<std::vector<Output>(std::vector<Input>& inputs)>;
  using OnBatch = std::function<void(const BatchStats& stats)>;

  DynamicBatcher(const BatcherOptions& options, RunBatch run, OnBatch on_batch = {})
      : DynamicBatcher(options, std::vector<RunBatch>{std::move(run)}, std::move(on_batch)) {}

  /// One runner thread per element of `runs` (each its own model instance), one queue.
  DynamicBatcher(const BatcherOptions& options, std::vector<RunBatch> runs, OnBatch on_batch = {})
      : options_(options), runs_(std::move(runs)), on_batch_(std::move(on_batch)) {
    if (options_.max_batch_size() < 1 || options_.max_queue_size() < 1 ||
        options_.max_queue_delay().count() < 0 || runs_.empty()) {
      throw std::invalid_argument("batcher: max_batch_size and max_queue_size must be >= 1, "
                                  "max_queue_delay >= 0, and there must be a runner");
    }
    for (size_t i = 0; i < runs_.size(); ++i) runners_.emplace_back([this, i] { run_batches(runs_[i]); });
  }

  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  ~DynamicBatcher() { stop(); }

  /// Queues `input`; the future holds its output, or DeadlineExceeded, or the model's
  /// exception. Throws QueueFull or ShuttingDown instead of queueing. `hold` (an AdmissionLimit
  /// token) is kept until the model has finished with the request, not merely until its
  /// caller stops waiting: a request answered 504 while its batch runs still occupies the
  /// runner, so its room must not be given to a new request yet.
  std::future<Output> submit(Input input, Clock::time_point deadline, std::shared_ptr<void> hold = {}) {
    std::promise<Output> promise;
    auto future = promise.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) throw ShuttingDown("the server is shutting down");
      // Requests an idle runner is about to take are not waiting: admitted requests that come
      // together, before a runner wakes, must not find the queue full.
      const int64_t idle_room = (static_cast<int64_t>(runs_.size()) - busy_runners_) * options_.max_batch_size();
      if (static_cast<int64_t>(queue_.size()) >= options_.max_queue_size() + idle_room) {
        throw QueueFull("the queue holds " + std::to_string(queue_.size()) + " requests");
      }
      queue_.push_back({std::move(input), Clock::now(), deadline, std::move(promise), std::move(hold)});
    }
    changed_.notify_all();
    return future;
  }

  /// Requests waiting now.
  int64_t queue_size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int64_t>(queue_.size());
  }

  /// Refuses new requests, runs the queued ones, and returns when the runners have finished.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& runner : runners_) {
      if (runner.joinable()) runner.join();
    }
  }

  const BatcherOptions& options() const { return options_; }

 private:
  struct Pending {
    Input input;
    Clock::time_point arrival;
    Clock::time_point deadline;
    std::promise<Output> promise;
    std::shared_ptr<void> hold;  // released with the Pending, once the request is done
  };

  // Waits for the next batch: a runner is free now. Empty when stopping with nothing queued.
  std::vector<Pending> next_batch(BatchStats& stats) {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return {};
      const auto dispatch_at = queue_.front().arrival + options_.max_queue_delay();
      while (!stopping_ && static_cast<int64_t>(queue_.size()) < options_.max_batch_size() &&
             Clock::now() < dispatch_at) {
        changed_.wait_until(lock, dispatch_at);
      }
      std::vector<Pending> batch;
      const auto now = Clock::now();
      while (!queue_.empty() && static_cast<int64_t>(batch.size()) < options_.max_batch_size()) {
        Pending pending = std::move(queue_.front());
        queue_.pop_front();
        if (pending.deadline <= now) {
          pending.hold.reset();
          pending.promise.set_exception(std::make_exception_ptr(
              DeadlineExceeded("the request's deadline passed while it waited in the queue")));
          ++stats.expired;
          continue;
        }
        stats.queue_waits.push_back(now - pending.arrival);
        batch.push_back(std::move(pending));
      }
      if (!batch.empty()) {
        ++busy_runners_;
        return batch;
      }
    }
  }

  // Before the answers: whoever sees an answer may count on the room it held being free.
  static void release_holds(std::vector<Pending>& batch) {
    for (auto& pending : batch) pending.hold.reset();
  }

  void run_batches(const RunBatch& run) {
    for (;;) {
      BatchStats stats;
      std::vector<Pending> batch = next_batch(stats);
      if (batch.empty()) return;
      std::vector<Input> inputs;
      inputs.reserve(batch.size());
      for (auto& pending : batch) inputs.push_back(std::move(pending.input));
      stats.size = static_cast<int64_t>(batch.size());
      const auto start = Clock::now();
      try {
        std::vector<Output> outputs = run(inputs);
        release_holds(batch);
        if (outputs.size() != batch.size()) {
          throw std::logic_error("the model returned " + std::to_string(outputs.size()) +
                                 " outputs for a batch of " + std::to_string(batch.size()));
        }
        for (size_t i = 0; i < batch.size(); ++i) batch[i].promise.set_value(std::move(outputs[i]));
      } catch (...) {
        stats.failed = true;
        release_holds(batch);
        for (auto& pending : batch) pending.promise.set_exception(std::current_exception());
      }
      stats.compute = Clock::now() - start;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --busy_runners_;
      }
      if (on_batch_) {
        try {
          on_batch_(stats);
        } catch (...) {
          // Metrics are not worth the runner: the requests have their answers already.
        }
      }
    }
  }

  BatcherOptions options_;
  std::vector<RunBatch> runs_;
  OnBatch on_batch_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  int64_t busy_runners_ = 0;  // runners with a batch
  std::vector<std::thread> runners_;  // started last, once the members they use exist
};

}  // namespace dlwpt::serve
