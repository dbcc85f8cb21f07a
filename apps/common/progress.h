#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace dlwpt::apps {

/// A progress bar with elapsed time and ETA on stderr. On a terminal it redraws one line; into
/// a file or pipe it prints a line at most every few seconds, so logs stay readable.
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::FILE* out = stderr);

  /// Marks `done` of `total` items finished, with an optional note (the current file).
  void update(int64_t done, const std::string& note = "");
  /// Prints a line of its own (a warning, a skipped file) without breaking the bar.
  void message(const std::string& text);
  /// Draws the final state and ends the line.
  void finish(const std::string& note = "");

 private:
  void draw(const std::string& note, bool final);

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  std::FILE* out_;
  bool interactive_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

/// "1:05" or "1:02:03"; "--:--" for a negative or non-finite number of seconds.
std::string format_duration(double seconds);

}  // namespace dlwpt::apps
