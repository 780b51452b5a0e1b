// Labelled 8-bit image datasets held in memory, whatever file format they came from (IDX for
// MNIST / Fashion-MNIST, the CIFAR-10 / CIFAR-100 binary batches).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace evformer::io {

/// A labelled set of 8-bit images: `count × channels × rows × cols` bytes, each image stored as
/// its channel planes one after another (CIFAR: red, green, blue), each plane row-major.
struct ImageDataset {
    std::string name;
    std::size_t count = 0;
    std::size_t channels = 1;
    std::size_t rows = 0;
    std::size_t cols = 0;
    std::size_t classes = 0;
    std::vector<std::uint8_t> pixels;
    std::vector<std::uint8_t> labels;  ///< class of each image, in [0, classes)

    /// Bytes of one image: channels · rows · cols.
    std::size_t image_size() const noexcept { return channels * rows * cols; }
    /// The first byte of image i.
    const std::uint8_t* image(std::size_t i) const { return pixels.data() + i * image_size(); }
    /// Keeps the first `n` images (no change when n >= count).
    void keep_first(std::size_t n);
};

}  // namespace evformer::io
