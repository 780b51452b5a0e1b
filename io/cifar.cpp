#include "evformer/io/cifar.hpp"

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "evformer/error.hpp"
#include "evformer/io/bytes.hpp"

namespace evformer::io {
namespace {

namespace fs = std::filesystem;

constexpr std::array<const char*, 5> kCifar10TrainFiles = {"data_batch_1.bin", "data_batch_2.bin",
                                                           "data_batch_3.bin", "data_batch_4.bin",
                                                           "data_batch_5.bin"};

// The files of one split, in reading order.
std::vector<std::string> split_files(CifarVersion version, const std::string& split) {
    if (split != "train" && split != "test")
        throw ConfigError(fmt::format("split '{}': expected 'train' or 'test'", split));
    if (version == CifarVersion::cifar10) {
        if (split == "test") return {"test_batch.bin"};
        return {kCifar10TrainFiles.begin(), kCifar10TrainFiles.end()};
    }
    return {split + ".bin"};
}

std::string expected_files(CifarVersion version) {
    return version == CifarVersion::cifar10
               ? "data_batch_1.bin … data_batch_5.bin and test_batch.bin"
               : "train.bin and test.bin";
}

// What a record holds, for messages.
std::string record_layout(CifarVersion version) {
    return version == CifarVersion::cifar10
               ? "3073-byte CIFAR-10 records (1 label byte, 3072 pixel bytes)"
               : "3074-byte CIFAR-100 records (coarse and fine label bytes, 3072 pixel bytes)";
}

void check_label_kind(CifarVersion version, CifarLabel label) {
    if (version == CifarVersion::cifar10 && label == CifarLabel::coarse)
        throw ConfigError(
            "label 'coarse': CIFAR-10 has one label per image; coarse labels (the 20 "
            "superclasses) exist in CIFAR-100 only");
}

}  // namespace

std::string_view cifar_label_name(CifarLabel label) {
    return label == CifarLabel::fine ? "fine" : "coarse";
}

CifarLabel parse_cifar_label(std::string_view name) {
    if (name == "fine") return CifarLabel::fine;
    if (name == "coarse") return CifarLabel::coarse;
    throw ConfigError(fmt::format("label '{}': expected 'fine' or 'coarse'", name));
}

std::string_view cifar_version_name(CifarVersion version) {
    return version == CifarVersion::cifar10 ? "CIFAR-10" : "CIFAR-100";
}

std::size_t cifar_record_bytes(CifarVersion version) {
    return (version == CifarVersion::cifar10 ? 1 : 2) + kCifarPixelBytes;
}

std::size_t cifar_classes(CifarVersion version, CifarLabel label) {
    check_label_kind(version, label);
    if (version == CifarVersion::cifar10) return 10;
    return label == CifarLabel::fine ? 100 : 20;
}

ImageDataset read_cifar_file(const fs::path& path, CifarVersion version, CifarLabel label) {
    check_label_kind(version, label);
    const auto file = path.string();
    const auto bytes = read_file_bytes(path);
    const std::size_t record = cifar_record_bytes(version);
    if (bytes.empty())
        throw FileError(file, 0, fmt::format("empty file, expected {}", record_layout(version)));
    const std::size_t records = bytes.size() / record;
    if (bytes.size() % record != 0)
        throw FileError(file, static_cast<std::int64_t>(records * record),
                        fmt::format("truncated: record {} has {} of {} bytes (the file holds {} "
                                    "bytes, expected a whole number of {})",
                                    records, bytes.size() % record, record, bytes.size(),
                                    record_layout(version)));
    const std::size_t label_bytes = record - kCifarPixelBytes;
    ImageDataset ds;
    ds.name = path.filename().string();
    ds.count = records;
    ds.channels = kCifarChannels;
    ds.rows = ds.cols = kCifarSide;
    ds.classes = cifar_classes(version, label);
    ds.labels.resize(records);
    ds.pixels.resize(records * kCifarPixelBytes);
    for (std::size_t r = 0; r < records; ++r) {
        const std::uint8_t* rec = bytes.data() + r * record;
        if (version == CifarVersion::cifar10) {
            if (rec[0] >= 10)
                throw FileError(file, static_cast<std::int64_t>(r * record),
                                fmt::format("label {} of record {}, expected 0..9 (a CIFAR-10 "
                                            "class)",
                                            rec[0], r));
            ds.labels[r] = rec[0];
        } else {
            if (rec[0] >= 20)
                throw FileError(file, static_cast<std::int64_t>(r * record),
                                fmt::format("coarse label {} of record {}, expected 0..19 (a "
                                            "CIFAR-100 superclass)",
                                            rec[0], r));
            if (rec[1] >= 100)
                throw FileError(file, static_cast<std::int64_t>(r * record + 1),
                                fmt::format("fine label {} of record {}, expected 0..99 (a "
                                            "CIFAR-100 class)",
                                            rec[1], r));
            ds.labels[r] = label == CifarLabel::coarse ? rec[0] : rec[1];
        }
        std::memcpy(ds.pixels.data() + r * kCifarPixelBytes, rec + label_bytes, kCifarPixelBytes);
    }
    return ds;
}

std::optional<CifarVersion> cifar_file_version(const fs::path& file) {
    const auto name = file.filename().string();
    if (name == "test_batch.bin") return CifarVersion::cifar10;
    for (const char* batch : kCifar10TrainFiles)
        if (name == batch) return CifarVersion::cifar10;
    if (name == "train.bin" || name == "test.bin") return CifarVersion::cifar100;
    return std::nullopt;
}

std::optional<CifarFolder> find_cifar(const fs::path& dir) {
    std::error_code ec;
    auto has = [&](const fs::path& d, const char* name) { return fs::exists(d / name, ec); };
    auto match = [&](const fs::path& d) -> std::optional<CifarFolder> {
        if (has(d, "data_batch_1.bin") || has(d, "test_batch.bin"))
            return CifarFolder{d, CifarVersion::cifar10};
        if ((has(d, "train.bin") || has(d, "test.bin")) && !has(d, "labels.txt"))
            return CifarFolder{d, CifarVersion::cifar100};
        return std::nullopt;
    };
    if (!fs::is_directory(dir, ec)) return std::nullopt;
    if (auto found = match(dir)) return found;
    for (const char* sub : {"cifar-10-batches-bin", "cifar-100-binary"})
        if (fs::is_directory(dir / sub, ec))
            if (auto found = match(dir / sub)) return found;
    return std::nullopt;
}

ImageDataset load_cifar(const CifarFolder& folder, const std::string& split, CifarLabel label) {
    check_label_kind(folder.version, label);
    ImageDataset all;
    for (const auto& name : split_files(folder.version, split)) {
        const auto path = folder.dir / name;
        std::error_code ec;
        if (!fs::is_regular_file(path, ec))
            throw FileError(path.string(), -1,
                            fmt::format("no such file; the {} binary version has {} (the {} "
                                        "split needs {})",
                                        cifar_version_name(folder.version),
                                        expected_files(folder.version), split, name));
        auto part = read_cifar_file(path, folder.version, label);
        if (all.count == 0) {
            all = std::move(part);
            continue;
        }
        all.count += part.count;
        all.pixels.insert(all.pixels.end(), part.pixels.begin(), part.pixels.end());
        all.labels.insert(all.labels.end(), part.labels.begin(), part.labels.end());
    }
    auto base = folder.dir.lexically_normal();
    if (base.filename().empty()) base = base.parent_path();  // "dir/" names "dir"
    all.name = base.filename().string() + "/" + split;
    if (label == CifarLabel::coarse) all.name += " (coarse)";
    return all;
}

}  // namespace evformer::io
