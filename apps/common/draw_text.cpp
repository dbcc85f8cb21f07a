#include "apps/common/draw_text.h"

#include "apps/common/cimg_config.h"

namespace dlwpt::apps {

void draw_text(cimg_library::CImg<unsigned char>& image, int x, int y, const std::string& text,
               const unsigned char* color, int height) {
  image.draw_text(x, y, "%s", color, 0, 1.0f, height, text.c_str());
}

}  // namespace dlwpt::apps
