#include "evformer/io/bytes.hpp"

#include <zlib.h>

#include <fstream>

#include "evformer/error.hpp"

namespace evformer::io {

std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        throw FileError(path.string(), -1, "no such file (expected a readable regular file)");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FileError(path.string(), -1, "cannot open for reading");
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) throw FileError(path.string(), -1, "cannot determine the file size");
    std::vector<std::uint8_t> bytes(size);
    if (size > 0 &&
        !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
        throw FileError(path.string(), -1, "read failed");
    return bytes;
}

bool is_gzip(const std::vector<std::uint8_t>& bytes) noexcept {
    return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& compressed,
                                 const std::filesystem::path& path) {
    z_stream zs{};
    if (inflateInit2(&zs, 15 + 32) != Z_OK) throw Error("zlib: inflateInit2 failed");
    std::vector<std::uint8_t> out;
    out.reserve(compressed.size() * 4);
    zs.next_in = const_cast<Bytef*>(compressed.data());
    zs.avail_in = static_cast<uInt>(compressed.size());
    std::uint8_t buffer[1 << 16];
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        zs.next_out = buffer;
        zs.avail_out = sizeof(buffer);
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            const auto offset = static_cast<std::int64_t>(zs.total_in);
            inflateEnd(&zs);
            if (rc == Z_BUF_ERROR)
                throw FileError(path.string(), offset,
                                "gzip stream is truncated (expected more compressed data)");
            throw FileError(path.string(), offset, "gzip stream is corrupt");
        }
        out.insert(out.end(), buffer, buffer + (sizeof(buffer) - zs.avail_out));
    }
    inflateEnd(&zs);
    return out;
}

std::vector<std::uint8_t> read_maybe_gzip(const std::filesystem::path& path) {
    auto bytes = read_file_bytes(path);
    if (is_gzip(bytes)) return gunzip(bytes, path);
    return bytes;
}

}  // namespace evformer::io
