#pragma once
// The one place that configures CImg, so that every translation unit sees the same template
// definitions: JPEG and PNG through libjpeg and libpng, windows through X11.
#define cimg_use_jpeg
#define cimg_use_png
#define cimg_display 1
#define cimg_verbosity 0  // errors come back as exceptions, not as message boxes or prints
#include <CImg.h>

// X11 defines these as macros; they would break any header included after this one.
#undef None
#undef Bool
#undef Status
#undef Success
#undef Complex
#undef Always
