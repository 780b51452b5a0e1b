#include <doctest/doctest.h>

#include "support.hpp"

using evformer::test::count_lines;
using evformer::test::run_evformer;
using evformer::test::ScratchDir;

TEST_CASE("train --help lists the training settings") {
    const auto r = run_evformer("train --help");
    CHECK(r.exit_code == 0);
    for (const char* flag : {"--epochs", "--batch", "--lr", "--resume", "--config", "--variant"})
        CHECK(r.out.find(flag) != std::string::npos);
}

TEST_CASE("eval on a missing weights file gives one line on stderr and exit code 1") {
    const auto r = run_evformer("eval /nonexistent/model.h5 --limit 10");
    CHECK(r.exit_code == 1);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find("/nonexistent/model.h5") != std::string::npos);
}

TEST_CASE("eval and train with a bad option are usage errors") {
    const auto e = run_evformer("eval model.h5 --frobnicate 3");
    CHECK(e.exit_code == 2);
    CHECK(count_lines(e.err) == 1);
    const auto t = run_evformer("train --variant nonsense --epochs 1");
    CHECK(t.exit_code == 2);
    CHECK(count_lines(t.err) == 1);
    CHECK(t.err.find("ssa-bin") != std::string::npos);
}

TEST_CASE("train with a bad config file names the key") {
    ScratchDir dir;
    const auto cfg = dir / "cfg.json";
    evformer::test::write_bytes(cfg, {'{', '"', 'x', '"', ':', '1', '}'});
    const auto r = run_evformer("train --config " + cfg.string());
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'x'") != std::string::npos);
}
