#pragma once

#include <string>

namespace cimg_library {
template <typename T>
struct CImg;
}

namespace dlwpt::apps {

/// Draws one line of `text` in CImg's built-in font, `height` pixels high, its top left corner
/// at (x, y), in `color` (one value per channel of `image`).
///
/// Every app draws text through this one translation unit: CImg's font tables are arrays local
/// to each translation unit that the inline font function refers to, and with two such units in
/// one binary GCC's AddressSanitizer build cannot link (the tables end in a discarded section).
void draw_text(cimg_library::CImg<unsigned char>& image, int x, int y, const std::string& text,
               const unsigned char* color, int height);

}  // namespace dlwpt::apps
