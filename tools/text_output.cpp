#include <cstdio>
#include <fstream>

#include "command.hpp"
#include "evformer/error.hpp"

namespace evformer::tools {

void write_text(const std::string& path, const std::string& text) {
    if (path == "-") {
        std::fwrite(text.data(), 1, text.size(), stdout);
        return;
    }
    std::ofstream out(path);
    if (!out) throw FileError(path, -1, "cannot open for writing");
    out << text;
    if (!out.flush()) throw FileError(path, -1, "write failed");
}

}  // namespace evformer::tools
