// dlwpt-serve's dynamic batcher (apps/serve/batcher.h): batch formation, the queue delay from
// the oldest arrival, overload, deadlines, model exceptions and draining on stop. Times are
// bounds far from the values they bound, so that a slow or loaded machine cannot fail them.

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apps/serve/batcher.h"

namespace dlwpt::testing {
namespace {

using namespace std::chrono_literals;
using serve::BatcherOptions;
using serve::Clock;
using Batcher = serve::DynamicBatcher<int, int>;

constexpr auto kForever = 1h;
constexpr auto kPatience = 10s;  // how long a test waits for what must happen

// A model that doubles its inputs, records its batches, and can be held while it runs.
class HeldModel {
 public:
  Batcher::RunBatch run() {
    return [this](std::vector<int>& inputs) {
      std::unique_lock<std::mutex> lock(mutex_);
      batches_.push_back(inputs);
      running_ = true;
      changed_.notify_all();
      changed_.wait(lock, [this] { return !held_; });
      running_ = false;
      std::vector<int> outputs;
      for (int input : inputs) {
        if (input < 0) throw std::runtime_error("negative input");
        outputs.push_back(2 * input);
      }
      return outputs;
    };
  }

  void hold() {
    std::lock_guard<std::mutex> lock(mutex_);
    held_ = true;
  }

  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      held_ = false;
    }
    changed_.notify_all();
  }

  bool wait_until_running() {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, kPatience, [this] { return running_; });
  }

  std::vector<std::vector<int>> batches() {
    std::lock_guard<std::mutex> lock(mutex_);
    return batches_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool held_ = false;
  bool running_ = false;
  std::vector<std::vector<int>> batches_;
};

Clock::time_point no_deadline() { return Clock::now() + kForever; }

// Declared after the batcher, so that a failed assertion releases the model before the
// batcher's destructor waits for its runner.
struct ReleaseOnExit {
  HeldModel& model;
  ~ReleaseOnExit() { model.release(); }
};

TEST(DynamicBatcher, AFullBatchGoesWithoutWaitingForTheDelay) {
  HeldModel model;
  Batcher batcher(BatcherOptions().max_batch_size(3).max_queue_delay(kForever), model.run());
  std::vector<std::future<int>> futures;
  for (int i = 1; i <= 3; ++i) futures.push_back(batcher.submit(i, no_deadline()));
  for (auto& future : futures) ASSERT_EQ(future.wait_for(kPatience), std::future_status::ready);
  EXPECT_EQ(futures[2].get(), 6);
  EXPECT_EQ(model.batches(), (std::vector<std::vector<int>>{{1, 2, 3}}));
}

TEST(DynamicBatcher, TheDelayCountsFromTheOldestArrival) {
  HeldModel model;
  // Counted from the newer request, the batch would wait until 1.9 s.
  constexpr auto kDelay = 1000ms;
  constexpr auto kNewerAfter = 900ms;
  Batcher batcher(BatcherOptions().max_batch_size(8).max_queue_delay(kDelay), model.run());
  const auto start = Clock::now();
  auto oldest = batcher.submit(1, no_deadline());
  std::this_thread::sleep_for(kNewerAfter);
  auto newer = batcher.submit(2, no_deadline());
  ASSERT_EQ(oldest.wait_for(kPatience), std::future_status::ready);
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, kDelay);
  EXPECT_LT(waited, kDelay + kNewerAfter) << "the delay counts from the oldest request";
  EXPECT_EQ(newer.get(), 4);
  EXPECT_EQ(model.batches().size(), 1u);
}

TEST(DynamicBatcher, InstancesShareTheQueueAndRunAtOnce) {
  HeldModel first;
  HeldModel second;
  first.hold();
  second.hold();
  Batcher batcher(BatcherOptions().max_batch_size(1), std::vector<Batcher::RunBatch>{first.run(), second.run()});
  ReleaseOnExit release_first{first};
  ReleaseOnExit release_second{second};
  auto one = batcher.submit(1, no_deadline());
  auto two = batcher.submit(2, no_deadline());
  // Both instances hold a request at the same time: neither waits for the other.
  ASSERT_TRUE(first.wait_until_running());
  ASSERT_TRUE(second.wait_until_running());
  first.release();
  second.release();
  EXPECT_EQ(one.get() + two.get(), 6);
  EXPECT_EQ(first.batches().size(), 1u);
  EXPECT_EQ(second.batches().size(), 1u);
}

TEST(DynamicBatcher, BeyondTheQueueSizeRequestsAreRefused) {
  HeldModel model;
  model.hold();
  Batcher batcher(BatcherOptions().max_batch_size(1).max_queue_size(2), model.run());
  ReleaseOnExit release{model};
  auto running = batcher.submit(1, no_deadline());
  ASSERT_TRUE(model.wait_until_running());
  auto second = batcher.submit(2, no_deadline());
  auto third = batcher.submit(3, no_deadline());
  EXPECT_EQ(batcher.queue_size(), 2);
  EXPECT_THROW(batcher.submit(4, no_deadline()), serve::QueueFull);
  model.release();
  EXPECT_EQ(third.get(), 6);
}

TEST(DynamicBatcher, WhatAnIdleRunnerWillTakeDoesNotCountAsWaiting) {
  // Admitted requests that arrive together, before the runner has taken any, fit: the idle
  // runner's batch counts as room. With a queue of 1 and batches of 4, five fit whenever the
  // runner takes its batch, and a sixth never does (the runner is held once it has one).
  HeldModel model;
  model.hold();
  Batcher batcher(BatcherOptions().max_batch_size(4).max_queue_size(1).max_queue_delay(10s), model.run());
  ReleaseOnExit release{model};
  std::vector<std::future<int>> accepted;
  for (int i = 1; i <= 5; ++i) accepted.push_back(batcher.submit(i, no_deadline()));
  EXPECT_THROW(batcher.submit(6, no_deadline()), serve::QueueFull);
  model.release();
  int total = 0;
  for (auto& answer : accepted) total += answer.get();
  EXPECT_EQ(total, 2 * (1 + 2 + 3 + 4 + 5));
}

TEST(DynamicBatcher, ARequestPastItsDeadlineIsDroppedBeforeItRuns) {
  HeldModel model;
  model.hold();
  Batcher batcher(BatcherOptions().max_batch_size(4), model.run());
  ReleaseOnExit release{model};
  auto running = batcher.submit(1, no_deadline());
  ASSERT_TRUE(model.wait_until_running());
  auto late = batcher.submit(7, Clock::now() + 50ms);
  auto in_time = batcher.submit(8, no_deadline());
  std::this_thread::sleep_for(200ms);
  model.release();
  EXPECT_THROW(late.get(), serve::DeadlineExceeded);
  EXPECT_EQ(in_time.get(), 16);
  for (const auto& batch : model.batches()) EXPECT_THAT(batch, ::testing::Not(::testing::Contains(7)));
}

TEST(DynamicBatcher, AModelExceptionFailsItsBatchAndTheRunnerGoesOn) {
  HeldModel model;
  std::atomic<int> failed_batches{0};
  Batcher batcher(BatcherOptions().max_batch_size(1), model.run(),
                  [&](const serve::BatchStats& stats) { failed_batches += stats.failed; });
  EXPECT_THROW(batcher.submit(-1, no_deadline()).get(), std::runtime_error);
  EXPECT_EQ(batcher.submit(5, no_deadline()).get(), 10);
  batcher.stop();
  EXPECT_EQ(failed_batches.load(), 1);
}

TEST(DynamicBatcher, StopRunsTheQueuedRequestsAndRefusesNewOnes) {
  HeldModel model;
  model.hold();
  Batcher batcher(BatcherOptions().max_batch_size(1), model.run());
  ReleaseOnExit release{model};
  auto running = batcher.submit(1, no_deadline());
  ASSERT_TRUE(model.wait_until_running());
  auto queued = batcher.submit(2, no_deadline());
  std::thread stopper([&] { batcher.stop(); });
  // Until the stop is seen, a request still queues (and runs after the release).
  std::vector<std::future<int>> accepted;
  bool refused = false;
  for (const auto until = Clock::now() + kPatience; !refused && Clock::now() < until;) {
    try {
      accepted.push_back(batcher.submit(3, no_deadline()));
      std::this_thread::sleep_for(1ms);
    } catch (const serve::ShuttingDown&) {
      refused = true;
    }
  }
  EXPECT_TRUE(refused);
  model.release();
  stopper.join();
  EXPECT_EQ(running.get(), 2);
  EXPECT_EQ(queued.get(), 4);
  for (auto& future : accepted) EXPECT_EQ(future.get(), 6);
}

TEST(DynamicBatcher, ARequestKeepsItsAdmissionUntilTheModelIsDoneWithIt) {
  HeldModel model;
  model.hold();
  serve::AdmissionLimit admission(1);
  Batcher batcher(BatcherOptions().max_batch_size(1), model.run());
  ReleaseOnExit release{model};
  auto token = admission.try_admit();
  ASSERT_TRUE(token);
  auto running = batcher.submit(1, no_deadline(), token);
  ASSERT_TRUE(model.wait_until_running());
  // The caller gives up (its deadline passed and it answered 504): the model still runs it.
  token.reset();
  EXPECT_FALSE(admission.has_room());
  EXPECT_FALSE(admission.try_admit());
  model.release();
  EXPECT_EQ(running.get(), 2);
  EXPECT_TRUE(admission.has_room());

  // A request dropped from the queue for its deadline gives its room back when it is dropped.
  model.hold();
  auto blocker = batcher.submit(1, no_deadline());
  ASSERT_TRUE(model.wait_until_running());
  auto late = batcher.submit(7, Clock::now() + 10ms, admission.try_admit());
  EXPECT_FALSE(admission.has_room());
  std::this_thread::sleep_for(50ms);
  model.release();
  EXPECT_THROW(late.get(), serve::DeadlineExceeded);
  EXPECT_TRUE(admission.has_room());
  EXPECT_EQ(blocker.get(), 2);
}

}  // namespace
}  // namespace dlwpt::testing
