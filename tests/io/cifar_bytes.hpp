// Hand-built CIFAR-10 / CIFAR-100 binary files in the upstream layout (the data sets are not on
// these machines), shared by the reader and command-line tests.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "support.hpp"

namespace evformer::test {

/// The pixel byte of image `id`, channel c, row y, column x: distinct enough to catch a swapped
/// plane, row or record.
inline unsigned char cifar_pixel(std::size_t id, std::size_t c, std::size_t y, std::size_t x) {
    return static_cast<unsigned char>((id * 97 + c * 61 + y * 7 + x * 3) % 256);
}

/// One record: the label bytes (CIFAR-10: the label; CIFAR-100: coarse, fine), then the red,
/// green and blue planes of image `id`, each 32×32 row-major.
inline std::vector<unsigned char> cifar_record(std::vector<unsigned char> labels, std::size_t id) {
    auto r = std::move(labels);
    for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t y = 0; y < 32; ++y)
            for (std::size_t x = 0; x < 32; ++x) r.push_back(cifar_pixel(id, c, y, x));
    return r;
}

/// The parts one after another.
inline std::vector<unsigned char> concat(const std::vector<std::vector<unsigned char>>& parts) {
    std::vector<unsigned char> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

/// A CIFAR-10 folder: five training batches of two images each (ids 0..9, label = id) and a
/// test batch of three (ids 100..102, labels 7, 8, 9).
inline void write_cifar10(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    for (std::size_t b = 0; b < 5; ++b)
        write_bytes(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"),
                    concat({cifar_record({static_cast<unsigned char>(2 * b)}, 2 * b),
                            cifar_record({static_cast<unsigned char>(2 * b + 1)}, 2 * b + 1)}));
    write_bytes(dir / "test_batch.bin",
                concat({cifar_record({7}, 100), cifar_record({8}, 101), cifar_record({9}, 102)}));
}

/// A CIFAR-100 folder: train.bin with (coarse, fine) = (19, 99), (0, 0), (4, 57); test.bin with
/// (12, 3).
inline void write_cifar100(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    write_bytes(dir / "train.bin", concat({cifar_record({19, 99}, 0), cifar_record({0, 0}, 1),
                                           cifar_record({4, 57}, 2)}));
    write_bytes(dir / "test.bin", cifar_record({12, 3}, 3));
}

}  // namespace evformer::test
