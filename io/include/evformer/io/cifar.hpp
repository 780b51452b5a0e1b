// The CIFAR-10 and CIFAR-100 binary versions (Krizhevsky, "Learning multiple layers of features
// from tiny images", 2009; layout as described on https://www.cs.toronto.edu/~kriz/cifar.html):
// files of fixed-length records, each a label byte (CIFAR-100: a coarse then a fine label byte)
// followed by a 32×32 colour image as 1024 red, 1024 green and 1024 blue bytes, each plane
// row-major. Layouts, checks and errors: docs/images.md.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "evformer/io/images.hpp"

namespace evformer::io {

/// Which of the two binary versions a file or folder holds.
enum class CifarVersion {
    /// `data_batch_1.bin` … `data_batch_5.bin` (train, 10 000 records each) and `test_batch.bin`;
    /// 3073-byte records: label (0–9), 3072 pixel bytes.
    cifar10,
    /// `train.bin` (50 000 records) and `test.bin` (10 000); 3074-byte records: coarse label
    /// (0–19, the superclass), fine label (0–99), 3072 pixel bytes.
    cifar100,
};

/// Which label of a CIFAR-100 record is the class. CIFAR-10 records have one label (`fine`).
enum class CifarLabel {
    fine,    ///< the 100 classes (CIFAR-10: its 10 classes)
    coarse,  ///< the 20 superclasses (CIFAR-100 only)
};

/// "fine" or "coarse".
std::string_view cifar_label_name(CifarLabel label);
/// The CifarLabel of this name; throws ConfigError naming the valid names otherwise.
CifarLabel parse_cifar_label(std::string_view name);

/// "CIFAR-10" or "CIFAR-100".
std::string_view cifar_version_name(CifarVersion version);

/// Image side (32), channels (3) and pixel bytes of one record (3072).
inline constexpr std::size_t kCifarSide = 32;
inline constexpr std::size_t kCifarChannels = 3;
inline constexpr std::size_t kCifarPixelBytes = kCifarChannels * kCifarSide * kCifarSide;

/// Bytes of one record: 3073 (CIFAR-10) or 3074 (CIFAR-100).
std::size_t cifar_record_bytes(CifarVersion version);

/// Number of classes: 10 for CIFAR-10; 100 (fine) or 20 (coarse) for CIFAR-100. Throws
/// ConfigError for CIFAR-10 with `coarse`.
std::size_t cifar_classes(CifarVersion version, CifarLabel label);

/// Reads one binary file of records. Checks that it holds at least one record, that its length
/// is a whole number of records (else FileError at the first byte of the partial record: a
/// truncated file) and that every label byte lies in range (both labels of a CIFAR-100 record,
/// whichever is used; FileError at the label byte). The result has 3×32×32 images, classes from
/// cifar_classes(), and `name` = the file name. Throws ConfigError for CIFAR-10 with `coarse`.
ImageDataset read_cifar_file(const std::filesystem::path& path, CifarVersion version,
                             CifarLabel label = CifarLabel::fine);

/// The version a file's upstream name stands for: `data_batch_N.bin` / `test_batch.bin` →
/// CIFAR-10, `train.bin` / `test.bin` → CIFAR-100; nothing for any other name.
std::optional<CifarVersion> cifar_file_version(const std::filesystem::path& file);

/// A folder of CIFAR binary files.
struct CifarFolder {
    std::filesystem::path dir;  ///< the folder holding the .bin files
    CifarVersion version;
};

/// Finds the CIFAR files in `dir`: the folder itself when it holds `data_batch_1.bin` or
/// `test_batch.bin` (CIFAR-10), or `train.bin` or `test.bin` and no `labels.txt` (CIFAR-100; a
/// `labels.txt` folder is an event dataset), else its subfolder `cifar-10-batches-bin/` or
/// `cifar-100-binary/` as the upstream archives unpack. Nothing when none matches.
std::optional<CifarFolder> find_cifar(const std::filesystem::path& dir);

/// Loads the `train` split (CIFAR-10: the five data batches in order, 50 000 images upstream;
/// CIFAR-100: `train.bin`) or the `test` split (`test_batch.bin`, `test.bin`). `name` is
/// "<folder>/<split>", with " (coarse)" for CIFAR-100 superclasses. Throws FileError for a
/// missing file (naming every file the version needs) or a malformed one (read_cifar_file), and
/// ConfigError for another split or CIFAR-10 with `coarse`.
ImageDataset load_cifar(const CifarFolder& folder, const std::string& split,
                        CifarLabel label = CifarLabel::fine);

}  // namespace evformer::io
