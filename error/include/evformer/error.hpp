// The project's error types: every failure that reaches an API boundary is one of these.
// Messages name the file, field or offset, what was found and what was expected.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace evformer {

/// Base of every error evformer throws on purpose.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// A file that is missing, unreadable, truncated, corrupt or of the wrong format.
class FileError : public Error {
  public:
    /// `path` names the file; `offset` the byte (or -1 when no position applies).
    FileError(std::string path, std::int64_t offset, const std::string& what)
        : Error(compose(path, offset, what)), path_(std::move(path)), offset_(offset) {}
    const std::string& path() const noexcept { return path_; }
    std::int64_t offset() const noexcept { return offset_; }

  private:
    static std::string compose(const std::string& path, std::int64_t offset,
                               const std::string& what) {
        if (offset < 0) return path + ": " + what;
        return path + ": at byte " + std::to_string(offset) + ": " + what;
    }
    std::string path_;
    std::int64_t offset_;
};

/// A configuration, specification or option value that breaks a rule; the message states it.
class ConfigError : public Error {
  public:
    using Error::Error;
};

/// A malformed packet or stream received over the network.
class NetworkError : public Error {
  public:
    using Error::Error;
};

}  // namespace evformer
