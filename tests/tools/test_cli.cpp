#include <doctest/doctest.h>

#include "support.hpp"

using evformer::test::count_lines;
using evformer::test::run_evformer;
using evformer::test::ScratchDir;

TEST_CASE("evformer --help and --version succeed") {
    auto help = run_evformer("--help");
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("data") != std::string::npos);
    auto version = run_evformer("--version");
    CHECK(version.exit_code == 0);
    CHECK(version.out.find("evformer ") != std::string::npos);
    auto sub = run_evformer("data info --help");
    CHECK(sub.exit_code == 0);
    CHECK(sub.out.find("--json") != std::string::npos);
}

TEST_CASE("an unknown option gives one line on stderr and exit code 2") {
    auto r = run_evformer("data info --frobnicate x");
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find("evformer: error:") == 0);
    CHECK(r.err.find("--frobnicate") != std::string::npos);
}

TEST_CASE("no subcommand and a bad choice are usage errors") {
    CHECK(run_evformer("").exit_code == 2);
    auto r = run_evformer("data info fashion-mnist --split valid");
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.err) == 1);
}

TEST_CASE("a missing file gives one line naming it and exit code 1") {
    auto r = run_evformer("data info /nonexistent/train-images-idx3-ubyte.gz");
    CHECK(r.exit_code == 1);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find("/nonexistent/train-images-idx3-ubyte.gz") != std::string::npos);
}

TEST_CASE("a file with a wrong magic is a clear error, not a crash") {
    ScratchDir dir;
    evformer::test::write_bytes(dir / "junk-images-idx3-ubyte", {'n', 'o', 'p', 'e', '!'});
    auto r = run_evformer((dir / "junk-images-idx3-ubyte").string());
    CHECK(r.exit_code == 2);  // not a subcommand
    r = run_evformer("data info " + (dir / "junk-images-idx3-ubyte").string());
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("wrong magic") != std::string::npos);
}

TEST_CASE("data info prints the real Fashion-MNIST numbers") {
    const std::string images = std::string(EVFORMER_FMNIST_DIR) + "/train-images-idx3-ubyte.gz";
    if (!std::filesystem::exists(images)) {
        MESSAGE("Fashion-MNIST not installed; skipped");
        return;
    }
    auto r = run_evformer("data info " + images);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("60000 images of 28x28, 10 classes") != std::string::npos);
    auto j = run_evformer("data info fashion-mnist --split test --json -");
    REQUIRE(j.exit_code == 0);
    CHECK(j.out.find("\"count\": 10000") != std::string::npos);
}
