// Shared helpers for the tests: scratch folders, running the CLI, reading fixture paths.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace evformer::test {

/// A fresh folder under the system temp dir, removed with its contents on destruction.
class ScratchDir {
  public:
    ScratchDir() {
        std::random_device rd;
        path_ = std::filesystem::temp_directory_path() /
                ("evformer-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
        std::filesystem::create_directories(path_);
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

  private:
    std::filesystem::path path_;
};

/// Writes bytes to a file.
inline void write_bytes(const std::filesystem::path& path, const std::vector<unsigned char>& b) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

/// Reads a whole file as bytes.
inline std::vector<unsigned char> read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// What a finished command printed and returned.
struct CommandResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};

/// Runs a shell command line, capturing stdout and stderr separately.
inline CommandResult run_command(const std::string& command_line) {
    const auto dir = std::filesystem::temp_directory_path();
    const auto tag = std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
    const auto out_path = dir / ("evformer-out-" + tag);
    const auto err_path = dir / ("evformer-err-" + tag);
    const std::string full =
        command_line + " >" + out_path.string() + " 2>" + err_path.string() + " </dev/null";
    const int status = std::system(full.c_str());
    CommandResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    auto slurp = [](const std::filesystem::path& p) {
        std::ifstream in(p);
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    std::filesystem::remove(out_path);
    std::filesystem::remove(err_path);
    return r;
}

/// Runs the built `evformer` program with the given arguments.
inline CommandResult run_evformer(const std::string& args) {
    return run_command(std::string(EVFORMER_BINARY) + " " + args);
}

/// Number of lines in a text.
inline std::size_t count_lines(const std::string& s) {
    std::size_t n = 0;
    for (char c : s) n += c == '\n';
    if (!s.empty() && s.back() != '\n') ++n;
    return n;
}

}  // namespace evformer::test
