#include "evformer/io/images.hpp"

namespace evformer::io {

void ImageDataset::keep_first(std::size_t n) {
    if (n >= count) return;
    count = n;
    pixels.resize(count * image_size());
    labels.resize(count);
}

}  // namespace evformer::io
