// Hostile input: truncation at every byte, random corruption and wrong magic give a FileError
// (with an offset where one applies) or counted violations — never a crash or a hang.
#include <doctest/doctest.h>

#include <filesystem>
#include <random>

#include "events_bytes.hpp"
#include "evformer/error.hpp"
#include "evformer/io/events.hpp"
#include "support.hpp"

using namespace evformer::io;
using namespace evformer::test;

namespace {

struct Case {
    const char* format;
    Bytes bytes;
};

std::vector<Case> cases() {
    return {{"evt2", evt2_sample()},
            {"evt3", evt3_sample()},
            {"dat", dat_sample()},
            {"nmnist", nmnist_sample()},
            {"aedat2", aedat2_sample()},
            {"aedat3", aedat3_sample()},
            {"aedat4", aedat4_sample(1, {{{1, 1, 1, 1}, {2, 2, 2, 0}}, {{3, 3, 3, 1}}})},
            {"aedat4", aedat4_sample(3, {{{1, 1, 1, 1}, {2, 2, 2, 0}}})}};
}

// Decodes with the given format forced; returns the event count or -1 after a FileError.
// Any other exception type fails the test.
long decode_or_error(const Bytes& bytes, const char* format, std::size_t max_events) {
    ReaderOptions opt;
    opt.format = format;
    try {
        auto r = open_event_bytes(bytes, opt);
        EventChunk chunk(EventChunk::min_capacity);
        std::size_t n = 0;
        while (r->read(chunk) > 0) {
            n += chunk.size();
            REQUIRE(n <= max_events);  // no endless loop producing events
        }
        return static_cast<long>(n);
    } catch (const evformer::FileError&) {
        return -1;
    }
}

}  // namespace

TEST_CASE("truncation at every byte gives an error or a prefix of the events") {
    for (const auto& c : cases()) {
        INFO(c.format);
        const long full = decode_or_error(c.bytes, c.format, 1000);
        REQUIRE(full > 0);
        for (std::size_t len = 0; len < c.bytes.size(); ++len) {
            const Bytes cut(c.bytes.begin(), c.bytes.begin() + static_cast<long>(len));
            CHECK(decode_or_error(cut, c.format, 1000) <= full);
        }
    }
}

TEST_CASE("a record cut short names the byte offset where it starts") {
    auto b = evt2_sample();
    b.resize(b.size() - 2);
    ReaderOptions opt;
    try {
        read_all(*open_event_bytes(b, opt));
        FAIL("no error");
    } catch (const evformer::FileError& e) {
        CHECK(e.offset() == std::int64_t(b.size() - 2));
        CHECK(std::string(e.what()).find("truncated") != std::string::npos);
    }
}

TEST_CASE("random corruption never crashes any decoder") {
    std::mt19937 rng(12345);
    for (const auto& c : cases()) {
        INFO(c.format);
        for (int trial = 0; trial < 400; ++trial) {
            auto b = c.bytes;
            const int flips = 1 + int(rng() % 8);
            for (int f = 0; f < flips; ++f) b[rng() % b.size()] = std::uint8_t(rng());
            // Corrupt bytes can hold at most one event per 2 input bytes (EVT 3.0: 12 per word).
            decode_or_error(b, c.format, 12 * b.size());
        }
    }
}

TEST_CASE("wrong magic and unknown formats are rejected with a clear error") {
    ScratchDir dir;
    Bytes junk;
    put_text(junk, "#!AER-DAT9.9\r\nnothing here");
    write_bytes(dir / "junk.aedat", junk);
    CHECK_THROWS_AS(open_event_file(dir / "junk.aedat"), evformer::FileError);
    ReaderOptions as_aedat4;
    as_aedat4.format = "aedat4";
    CHECK_THROWS_AS(open_event_file(dir / "junk.aedat", as_aedat4), evformer::FileError);
    as_aedat4.format = "nosuch";
    CHECK_THROWS_AS(open_event_file(dir / "junk.aedat", as_aedat4), evformer::ConfigError);
    CHECK_THROWS_AS(open_event_file(dir / "missing.raw"), evformer::FileError);
    write_bytes(dir / "empty.raw", {});
    CHECK_THROWS_AS(open_event_file(dir / "empty.raw"), evformer::FileError);
    write_bytes(dir / "fake.h5", {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n', 0, 0});
    CHECK_THROWS_AS(read_event_file(dir / "fake.h5"), evformer::FileError);
}

TEST_CASE("a real AEDAT 4.0 recording truncated at every byte of its first packets fails cleanly") {
    const std::filesystem::path file =
        std::filesystem::path(EVFORMER_EVENTS_DATA) / "aedat4_davis346_trimmed_evl.aedat4";
    if (!std::filesystem::exists(file)) {
        MESSAGE("shared event samples not found; skipped");
        return;
    }
    const auto all = read_bytes(file);
    const Bytes head(all.begin(), all.begin() + 7000);
    for (std::size_t len = 0; len < head.size(); len += 7) {
        const Bytes cut(head.begin(), head.begin() + static_cast<long>(len));
        decode_or_error(cut, "aedat4", 100000);
    }
}
