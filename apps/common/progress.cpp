#include "apps/common/progress.h"

#include <cmath>

#include <unistd.h>

namespace dlwpt::apps {

namespace {
constexpr int kBarWidth = 28;
constexpr double kTerminalRedrawSeconds = 0.1;
constexpr double kLogLineSeconds = 5.0;
}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto total = static_cast<int64_t>(std::lround(seconds));
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return text;
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::FILE* out)
    : label_(std::move(label)),
      total_(total),
      out_(out),
      interactive_(isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void ProgressBar::update(int64_t done, const std::string& note) {
  done_ = done;
  const auto now = std::chrono::steady_clock::now();
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (since_draw >= (interactive_ ? kTerminalRedrawSeconds : kLogLineSeconds)) {
    draw(note, /*final=*/false);
    last_draw_ = now;
  }
}

void ProgressBar::message(const std::string& text) {
  std::fprintf(out_, "%s%s\n", interactive_ ? "\r\033[K" : "", text.c_str());
  std::fflush(out_);
}

void ProgressBar::finish(const std::string& note) {
  done_ = total_;
  draw(note, /*final=*/true);
}

void ProgressBar::draw(const std::string& note, bool final) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fraction = total_ > 0 ? static_cast<double>(done_) / total_ : 1.0;
  const double eta = done_ > 0 ? elapsed * (total_ - done_) / done_ : -1.0;
  std::string bar(kBarWidth, ' ');
  for (int i = 0; i < static_cast<int>(fraction * kBarWidth); ++i) bar[i] = '#';
  std::fprintf(out_, "%s%s [%s] %lld/%lld %3.0f%% %s elapsed, ETA %s %s%s", interactive_ ? "\r" : "",
               label_.c_str(), bar.c_str(), static_cast<long long>(done_),
               static_cast<long long>(total_), 100 * fraction, format_duration(elapsed).c_str(),
               final ? "0:00" : format_duration(eta).c_str(), note.c_str(),
               interactive_ ? "\033[K" : "\n");
  if (final && interactive_) std::fputc('\n', out_);
  std::fflush(out_);
}

}  // namespace dlwpt::apps
