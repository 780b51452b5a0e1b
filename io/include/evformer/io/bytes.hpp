// Whole-file byte access with gzip detection by magic, shared by the dataset readers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace evformer::io {

/// Reads a whole file; throws FileError if it is missing or unreadable.
std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path);

/// True when the bytes start with the gzip magic 1f 8b.
bool is_gzip(const std::vector<std::uint8_t>& bytes) noexcept;

/// Inflates a gzip stream; `path` only names the source in errors (truncated or corrupt data).
std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& compressed,
                                 const std::filesystem::path& path);

/// Reads a file and inflates it when it is gzip-compressed (decided by magic, not extension).
std::vector<std::uint8_t> read_maybe_gzip(const std::filesystem::path& path);

}  // namespace evformer::io
