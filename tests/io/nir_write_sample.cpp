// Test helper for the h5py check (ctest io.nir_h5py): writes NIR files with evformer's writer
// into the folder given as the only argument: sample.nir (the hand-built graph of
// nir_graphs.hpp), sample-gzip.nir (the same, gzip level 4), empty.nir (no nodes, no edges) and,
// re-written after reading, each real file of examples/nir/.
#include <cstdio>
#include <exception>
#include <filesystem>

#include "evformer/io/nir.hpp"
#include "io/nir_graphs.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUTPUT_FOLDER\n", argv[0]);
        return 2;
    }
    namespace nir = evformer::io::nir;
    try {
        const std::filesystem::path out = argv[1];
        std::filesystem::create_directories(out);
        const auto sample = evformer::test::sample_graph();
        nir::write(out / "sample.nir", sample);
        nir::write(out / "sample-gzip.nir", sample, {.gzip_level = 4});
        nir::write(out / "empty.nir", nir::Graph{});
        const auto examples = std::filesystem::path(EVFORMER_SOURCE_DIR) / "examples" / "nir";
        for (const char* name :
             {"lif_norse.nir", "cnn_sinabs.nir", "braille_noDelay_bias_zero.nir"})
            nir::write(out / (std::string("rewritten-") + name), nir::read(examples / name));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nir_write_sample: %s\n", e.what());
        return 1;
    }
    return 0;
}
