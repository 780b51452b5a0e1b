#include "evformer/io/idx.hpp"

#include <fmt/format.h>

#include "evformer/error.hpp"
#include "evformer/io/bytes.hpp"

namespace evformer::io {
namespace {

std::uint32_t read_be32(const std::vector<std::uint8_t>& b, std::size_t at) {
    return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
           (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
}

}  // namespace

IdxArray read_idx(const std::filesystem::path& path) {
    const auto bytes = read_maybe_gzip(path);
    const auto file = path.string();
    if (bytes.size() < 4)
        throw FileError(
            file, static_cast<std::int64_t>(bytes.size()),
            fmt::format("truncated: {} bytes, expected at least a 4-byte IDX magic", bytes.size()));
    if (bytes[0] != 0 || bytes[1] != 0)
        throw FileError(file, 0,
                        fmt::format("wrong magic {:02x}{:02x}{:02x}{:02x}, expected 0000 then type "
                                    "and rank (an IDX file)",
                                    bytes[0], bytes[1], bytes[2], bytes[3]));
    if (bytes[2] != 0x08)
        throw FileError(
            file, 2, fmt::format("element type 0x{:02x}, expected 0x08 (unsigned byte)", bytes[2]));
    const std::size_t rank = bytes[3];
    if (rank == 0 || rank > 4)
        throw FileError(file, 3, fmt::format("rank {}, expected 1 to 4 dimensions", rank));
    const std::size_t header = 4 + 4 * rank;
    if (bytes.size() < header)
        throw FileError(file, static_cast<std::int64_t>(bytes.size()),
                        fmt::format("truncated header: {} bytes, expected {} for rank {}",
                                    bytes.size(), header, rank));
    IdxArray out;
    std::size_t expected = 1;
    for (std::size_t d = 0; d < rank; ++d) {
        const auto dim = read_be32(bytes, 4 + 4 * d);
        if (dim == 0)
            throw FileError(file, static_cast<std::int64_t>(4 + 4 * d),
                            fmt::format("dimension {} is 0, expected a positive size", d));
        out.dims.push_back(dim);
        expected *= dim;
        if (expected > (std::size_t{1} << 34))
            throw FileError(file, static_cast<std::int64_t>(4 + 4 * d),
                            "dimensions describe more than 16 GiB of data");
    }
    const std::size_t have = bytes.size() - header;
    if (have != expected)
        throw FileError(
            file, static_cast<std::int64_t>(bytes.size()),
            fmt::format("{}: {} data bytes, expected {} from the dimensions",
                        have < expected ? "truncated" : "trailing data", have, expected));
    out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
    return out;
}

ImageDataset read_idx_dataset(const std::filesystem::path& images,
                              const std::filesystem::path& labels, std::size_t classes) {
    auto img = read_idx(images);
    auto lab = read_idx(labels);
    if (img.dims.size() != 3)
        throw FileError(
            images.string(), 3,
            fmt::format("rank {}, expected 3 (count, rows, cols) for images", img.dims.size()));
    if (lab.dims.size() != 1)
        throw FileError(labels.string(), 3,
                        fmt::format("rank {}, expected 1 (count) for labels", lab.dims.size()));
    if (img.dims[0] != lab.dims[0])
        throw FileError(labels.string(), 4,
                        fmt::format("{} labels for {} images in {}, expected equal counts",
                                    lab.dims[0], img.dims[0], images.string()));
    for (std::size_t i = 0; i < lab.data.size(); ++i)
        if (lab.data[i] >= classes)
            throw FileError(
                labels.string(), static_cast<std::int64_t>(8 + i),
                fmt::format("label {} of sample {}, expected 0..{}", lab.data[i], i, classes - 1));
    ImageDataset ds;
    ds.name = images.parent_path().filename().string();
    ds.count = img.dims[0];
    ds.rows = img.dims[1];
    ds.cols = img.dims[2];
    ds.classes = classes;
    ds.pixels = std::move(img.data);
    ds.labels = std::move(lab.data);
    return ds;
}

std::filesystem::path resolve_dataset_dir(const std::string& name_or_path) {
    if (name_or_path == "fashion-mnist" || name_or_path == "fmnist")
        return "/usr/share/datasets/fashion-mnist";
    return name_or_path;
}

ImageDataset load_mnist_like(const std::filesystem::path& dir, const std::string& split) {
    std::string prefix;
    if (split == "train") {
        prefix = "train";
    } else if (split == "test") {
        prefix = "t10k";
    } else {
        throw ConfigError(fmt::format("split '{}': expected 'train' or 'test'", split));
    }
    auto pick = [&](const std::string& stem) {
        const auto plain = dir / stem;
        const auto gz = dir / (stem + ".gz");
        if (std::filesystem::exists(plain)) return plain;
        if (std::filesystem::exists(gz)) return gz;
        throw FileError(gz.string(), -1,
                        fmt::format("no such file (nor {}); expected the {} split of an "
                                    "MNIST-like dataset in {}",
                                    plain.filename().string(), split, dir.string()));
    };
    const auto images = pick(prefix + "-images-idx3-ubyte");
    const auto labels = pick(prefix + "-labels-idx1-ubyte");
    auto ds = read_idx_dataset(images, labels, 10);
    ds.name = dir.filename().string() + "/" + split;
    return ds;
}

}  // namespace evformer::io
