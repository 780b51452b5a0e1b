// IDX files (the MNIST / Fashion-MNIST container) and the grey-image datasets built on them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "evformer/io/images.hpp"

namespace evformer::io {

/// An IDX array of unsigned bytes: its dimensions and its row-major data.
struct IdxArray {
    std::vector<std::uint32_t> dims;
    std::vector<std::uint8_t> data;
};

/// Reads an IDX file of unsigned bytes (type 0x08), gzip-compressed or plain. Validates the magic,
/// the element type, the dimensions and that the data length matches them exactly.
IdxArray read_idx(const std::filesystem::path& path);

/// Reads an image file and its label file and checks that they agree (count, label range).
ImageDataset read_idx_dataset(const std::filesystem::path& images,
                              const std::filesystem::path& labels, std::size_t classes);

/// The folder a known dataset name stands for (`fashion-mnist`), or the argument itself.
std::filesystem::path resolve_dataset_dir(const std::string& name_or_path);

/// Loads the `train` or `test` split of Fashion-MNIST (or MNIST) from a folder of IDX files named
/// as upstream (`train-images-idx3-ubyte[.gz]`, `t10k-…`).
ImageDataset load_mnist_like(const std::filesystem::path& dir, const std::string& split);

}  // namespace evformer::io
