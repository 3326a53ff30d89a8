// libFuzzer harness: the JPEG path of image folders (csrc/data/image.cpp): header check, decode to RGB and grey
// under a pixel limit, then the eval crop and resample, as ImageFolder::load does. Bad input must throw BadImage.
#include <vector>

#include "csrc/data/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (int64_t channels : {3, 1}) {
    try {
      // A small pixel limit keeps each run fast; the check is the same at the default.
      const mnq::data::Image img = mnq::data::decode_jpeg(data, size, channels, "fuzz.jpg", int64_t(1) << 20);
      const mnq::data::Box box = mnq::data::eval_box(img.height, img.width, 8, 0.875);
      std::vector<float> out(size_t(channels * 8 * 8));
      std::vector<double> mean(size_t(channels), 0.5), std(size_t(channels), 0.25);
      mnq::data::resample_normalized(img, box, 8, 8, mnq::data::Filter::kBicubic, channels == 3, mean, std,
                                     out.data());
    } catch (const mnq::data::BadImage&) {
    }
  }
  return 0;
}
