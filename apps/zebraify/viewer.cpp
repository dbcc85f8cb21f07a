#include "apps/zebraify/viewer.h"

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <thread>

#include "apps/common/cimg_config.h"

namespace dlwpt::zebraify {

namespace fs = std::filesystem;
using apps::load_image;
using apps::save_image;
using cimg_library::CImg;
using cimg_library::CImgDisplay;

namespace {

constexpr int kMaxInitialWidth = 1600;
constexpr int kMaxInitialHeight = 900;
constexpr unsigned kPollMilliseconds = 30;

// One image's conversion, as the worker leaves it.
struct Conversion {
  RgbImage input;
  RgbImage zebra;
  double seconds = 0;
  std::string error;
};

CImg<unsigned char> to_cimg(const RgbImage& image) {
  return CImg<unsigned char>(image.planes.data(), image.width, image.height, 1, 3);
}

// Converts the image the window asks for on its own thread, one at a time, keeping results.
class ConversionWorker {
 public:
  ConversionWorker(const Zebraifier& zebraifier, std::vector<std::string> inputs, int64_t max_side,
                   const apps::ImageReadOptions& read_options)
      : zebraifier_(zebraifier), inputs_(std::move(inputs)), max_side_(max_side),
        read_options_(read_options),
        thread_([this] { loop(); }) {}

  ~ConversionWorker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  void request(size_t index) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requested_ = index;
    }
    wake_.notify_all();
  }

  /// The finished conversion of an image, or null while it is pending.
  std::shared_ptr<const Conversion> result(size_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = done_.find(index);
    return found == done_.end() ? nullptr : found->second;
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      wake_.wait(lock, [this] { return stopping_ || (requested_ && !done_.count(*requested_)); });
      if (stopping_) return;
      const size_t index = *requested_;
      lock.unlock();
      auto conversion = std::make_shared<const Conversion>(convert(inputs_[index]));
      lock.lock();
      done_[index] = std::move(conversion);
    }
  }

  Conversion convert(const std::string& path) const {
    Conversion conversion;
    try {
      conversion.input = load_image(path, read_options_);
      const auto start = std::chrono::steady_clock::now();
      conversion.zebra = zebraifier_.convert(conversion.input, max_side_);
      conversion.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } catch (const std::exception& error) {
      conversion.error = error.what();
    }
    return conversion;
  }

  const Zebraifier& zebraifier_;
  const std::vector<std::string> inputs_;
  const int64_t max_side_;
  const apps::ImageReadOptions read_options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<size_t> requested_;
  std::map<size_t, std::shared_ptr<const Conversion>> done_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything it uses exists
};

// Scales `image` to fit `width` x `height`, keeping its aspect ratio.
CImg<unsigned char> fit(const CImg<unsigned char>& image, int width, int height) {
  const double scale = std::min(static_cast<double>(width) / image.width(),
                                static_cast<double>(height) / image.height());
  return image.get_resize(std::max(1, static_cast<int>(image.width() * scale)),
                          std::max(1, static_cast<int>(image.height() * scale)), 1, 3,
                          /*interpolation=*/3);
}

void draw_centered(CImg<unsigned char>& canvas, const CImg<unsigned char>& image, int left,
                   int width) {
  const auto scaled = fit(image, width, canvas.height());
  canvas.draw_image(left + (width - scaled.width()) / 2, (canvas.height() - scaled.height()) / 2,
                    scaled);
}

void draw_message(CImg<unsigned char>& canvas, const std::string& text) {
  const unsigned char grey[] = {200, 200, 200};
  canvas.draw_text(12, canvas.height() / 2 - 10, "%s", grey, 0, 1.0f, 20, text.c_str());
}

// The window's picture: input on the left, zebra (or the original, when toggled) on the right.
CImg<unsigned char> compose(const CImgDisplay& display, const Conversion* conversion,
                            bool show_original) {
  CImg<unsigned char> canvas(std::max(2, display.window_width()),
                             std::max(1, display.window_height()), 1, 3, 32);
  const int half = canvas.width() / 2;
  if (!conversion) {
    draw_message(canvas, "converting...");
  } else if (!conversion->error.empty()) {
    draw_message(canvas, conversion->error);
  } else {
    draw_centered(canvas, to_cimg(conversion->input), 0, half);
    draw_centered(canvas, to_cimg(show_original ? conversion->input : conversion->zebra), half,
                  canvas.width() - half);
  }
  return canvas;
}

std::string title(const std::string& path, size_t index, size_t count,
                  const Conversion* conversion, bool show_original,
                  const Zebraifier& zebraifier) {
  std::string text = "zebraify - " + fs::path(path).filename().string() + " (" +
                     std::to_string(index + 1) + "/" + std::to_string(count) + ") - ";
  if (!conversion) return text + "converting...";
  if (!conversion->error.empty()) return text + "cannot convert";
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.2f s", conversion->seconds);
  return text + seconds + (show_original ? " - showing the original" : "") +
         (zebraifier.trained() ? "" : " - UNTRAINED weights");
}

// The keys released since the last call, oldest first. Released rather than pressed keys:
// a quick tap is pressed and released between two polls, which clears the pressed-key
// buffer but leaves its code among the released keys.
std::vector<unsigned> take_released_keys(CImgDisplay& display) {
  std::vector<unsigned> keys;
  for (unsigned position = 128; position-- > 0;) {
    if (const unsigned key = display.released_key(position)) keys.push_back(key);
  }
  display.set_key();  // empty both key buffers
  return keys;
}

void save_zebra(const Conversion& conversion, const std::string& input,
                const std::string& save_folder) {
  const std::string path =
      (fs::path(save_folder) / (fs::path(input).stem().string() + "_zebra.png")).string();
  try {
    fs::create_directories(save_folder);
    save_image(conversion.zebra, path);
    std::cerr << "zebraify: saved " << path << "\n";
  } catch (const std::exception& error) {
    std::cerr << "zebraify: " << error.what() << "\n";
  }
}

}  // namespace

int run_viewer(const Zebraifier& zebraifier, const std::vector<std::string>& inputs,
               int64_t max_side, const std::string& save_folder,
               const apps::ImageReadOptions& read_options) {
  CImgDisplay display;
  try {
    display.assign(kMaxInitialWidth / 2, kMaxInitialHeight / 2, "zebraify", 0);
  } catch (const cimg_library::CImgException& error) {
    std::cerr << "zebraify: cannot open a window (is DISPLAY set?): " << error.what() << "\n";
    return 2;
  }
  ConversionWorker worker(zebraifier, inputs, max_side, read_options);
  size_t index = 0;
  bool show_original = false;
  bool sized_to_image = false;
  std::string shown_state;
  worker.request(index);

  while (!display.is_closed()) {
    const auto conversion = worker.result(index);
    if (conversion && conversion->error.empty() && !sized_to_image) {
      // First image ready: size the window to the pair at the zebra's size (pixel for pixel
      // when it fits), within screen-friendly bounds.
      const RgbImage& zebra = conversion->zebra;
      const double scale = std::min({1.0, kMaxInitialWidth / (2.0 * zebra.width),
                                     kMaxInitialHeight / static_cast<double>(zebra.height)});
      display.resize(static_cast<int>(2 * zebra.width * scale),
                     static_cast<int>(zebra.height * scale), true);
      sized_to_image = true;
    }
    const std::string state = title(inputs[index], index, inputs.size(), conversion.get(),
                                    show_original, zebraifier);
    if (display.is_resized() || state != shown_state) {
      display.resize(false);
      display.display(compose(display, conversion.get(), show_original));
      display.set_title("%s", state.c_str());
      shown_state = state;
    }

    display.wait(kPollMilliseconds);
    for (const unsigned key : take_released_keys(display)) {
      namespace cimg = cimg_library::cimg;
      if (key == cimg::keyQ || key == cimg::keyESC) return 0;
      if ((key == cimg::keyARROWRIGHT || key == cimg::keyN) && index + 1 < inputs.size()) {
        worker.request(++index);
      } else if ((key == cimg::keyARROWLEFT || key == cimg::keyP) && index > 0) {
        worker.request(--index);
      } else if (key == cimg::keySPACE) {
        show_original = !show_original;
      } else if (key == cimg::keyS && conversion && conversion->error.empty()) {
        save_zebra(*conversion, inputs[index], save_folder);
      }
    }
  }
  return 0;
}

}  // namespace dlwpt::zebraify
