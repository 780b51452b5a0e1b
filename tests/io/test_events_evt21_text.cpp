// The EVT 2.1 reader on hand-built words of every type (both word orders), and the text-event
// reader (`t x y p` in seconds, CSV with a header) with its detection rule and writers.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "events_bytes.hpp"
#include "evformer/error.hpp"
#include "evformer/io/events.hpp"
#include "support.hpp"

using namespace evformer::io;
using namespace evformer::test;

namespace {

struct Decoded {
    std::vector<Event> events;
    ViolationCounts violations;
    std::map<std::string, std::uint64_t> skipped;
    Geometry geometry;
    std::string format;
};

Decoded decode(const Bytes& bytes, std::size_t chunk = 1 << 16, ReaderOptions opt = {}) {
    auto r = open_event_bytes(bytes, opt);
    Decoded d;
    d.events = read_all(*r, chunk);
    d.violations = r->violations();
    d.skipped = r->skipped();
    d.geometry = r->geometry();
    d.format = r->format_name();
    return d;
}

std::vector<std::uint64_t> every_word_type() {
    return {
        evt21_cd(1, 0, 5, 5, 0x1),           // before the first TIME_HIGH: skipped
        evt21_time_high(2),                  // t = 128
        evt21_cd(1, 3, 10, 20, 0x80000005),  // ON at x 10, 12, 41; t 131
        evt21_cd(0, 63, 600, 479, 0x1),      // OFF at x 600, t 191
        (std::uint64_t{0xA} << 60) | 7,      // EXT_TRIGGER
        std::uint64_t{0xE} << 60,            // OTHERS
        std::uint64_t{0xF} << 60,            // CONTINUED
        std::uint64_t{0x3} << 60,            // reserved: unknown word
        evt21_cd(1, 0, 630, 1, 0x00000C01),  // x 630 in, 640 and 641 outside 640: 2 violations
        evt21_cd(1, 0, 0, 480, 0x1),         // y outside 480: violation
        evt21_time_high(0x0FFFFFFF),         // TIME_HIGH max
        evt21_time_high(1),                  // falls: violation
        evt21_cd(0, 1, 3, 4, 0xFFFFFFFF),    // 32 OFF events at t 65
    };
}

Bytes text(const std::string& s) {
    Bytes b;
    put_text(b, s);
    return b;
}

}  // namespace

TEST_CASE("evt21 decoder reads every word type, in both word orders") {
    for (bool legacy : {false, true}) {
        INFO("legacy " << legacy);
        const std::string header = legacy ? "% evt 2.1\n% geometry 640x480\n% end\n"
                                          : "% format EVT21;height=480;width=640\n% end\n";
        const auto bytes = evt21_file(header, every_word_type(), legacy);
        for (std::size_t chunk : {std::size_t{64}, std::size_t{1} << 16}) {
            const auto d = decode(bytes, chunk);
            CHECK(d.format == "evt21");
            CHECK(d.geometry == Geometry{640, 480});
            std::vector<Event> expected = {{131, 10, 20, 1},
                                           {131, 12, 20, 1},
                                           {131, 41, 20, 1},
                                           {191, 600, 479, 0},
                                           {128, 630, 1, 1}};
            for (std::uint16_t k = 0; k < 32; ++k)
                expected.push_back({65, std::uint16_t(3 + k), 4, 0});
            CHECK(d.events == expected);
            CHECK(d.skipped.at("events before the first TIME_HIGH") == 1);
            CHECK(d.skipped.at("EXT_TRIGGER words") == 1);
            CHECK(d.skipped.at("OTHERS words") == 1);
            CHECK(d.skipped.at("CONTINUED words") == 1);
            CHECK(d.violations[Violation::unknown_word] == 1);
            CHECK(d.violations[Violation::coordinate_out_of_range] == 3);
            CHECK(d.violations[Violation::time_backwards] == 1);
            CHECK(d.violations.total() == 5);
        }
    }
}

TEST_CASE("evt21 without a geometry keeps every vector event; files through tiny buffers") {
    const auto bytes =
        evt21_file("% format EVT21\n% end\n",
                   {evt21_time_high(1), evt21_cd(1, 2, 2040, 2047, 0x80000001)}, false);
    CHECK(decode(bytes).events == std::vector<Event>{{66, 2040, 2047, 1}, {66, 2071, 2047, 1}});
    const auto all =
        evt21_file("% format EVT21;height=480;width=640\n% end\n", every_word_type(), false);
    ScratchDir dir;
    write_bytes(dir / "f.raw", all);
    const auto whole = decode(all).events;
    for (std::size_t buffer : {16, 24, 40}) {
        ReaderOptions opt;
        opt.buffer_bytes = buffer;
        auto r = open_event_file(dir / "f.raw", opt);
        CHECK(read_all(*r, EventChunk::min_capacity) == whole);
    }
    Bytes cut = all;
    cut.resize(cut.size() - 3);
    CHECK_THROWS_WITH_AS(decode(cut), doctest::Contains("truncated EVT 2.1 word"),
                         evformer::FileError);
}

TEST_CASE("evt21 strict mode names the offset of the first violation") {
    const std::string header = "% format EVT21;height=480;width=640\n% end\n";
    ReaderOptions opt;
    opt.strict = true;
    try {
        decode(evt21_file(header, every_word_type(), false), 1 << 16, opt);
        FAIL("no error");
    } catch (const evformer::FileError& e) {
        CHECK(e.offset() == std::int64_t(header.size() + 7 * 8));
    }
}

TEST_CASE("text events: 't x y p' lines with t in seconds (Event Camera Dataset, v2e)") {
    const auto d =
        decode(text("# v2e output\n# t x y p\n0.000000 1 2 1\n0.000001 3 4 0\n"
                    "1.5 239 179 1\r\n\n12.3456785 0 0 0\n"));
    CHECK(d.format == "text");
    CHECK(d.events == std::vector<Event>{
                          {0, 1, 2, 1}, {1, 3, 4, 0}, {1500000, 239, 179, 1}, {12345679, 0, 0, 0}});
    CHECK(d.violations.total() == 0);
}

TEST_CASE("text events: CSV with a header naming the columns, in any order and unit") {
    CHECK(decode(text("x,y,polarity,timestamp\n5,6,1,100\n7,8,0,250\n")).events ==
          std::vector<Event>{{100, 5, 6, 1}, {250, 7, 8, 0}});
    CHECK(decode(text("t,x,y,p\n0.25,5,6,1\n0.5,7,8,-1\n")).events ==
          std::vector<Event>{{250000, 5, 6, 1}, {500000, 7, 8, 0}});
    CHECK(decode(text("t_s,x,y,p\n1,5,6,1\n")).events == std::vector<Event>{{1000000, 5, 6, 1}});
    CHECK(decode(text("p,t_us,y,x,extra\n1,7,2,3,foo\n")).events ==
          std::vector<Event>{{7, 3, 2, 1}});
}

TEST_CASE("text events: bad lines are errors naming the line; faults are counted") {
    // Detection looks at the first 64 lines; a bad line after them is a FileError naming it,
    // and so is any bad line when the format is given.
    std::string good;
    for (int i = 0; i < 70; ++i) good += "0." + std::to_string(100 + i) + " 1 2 1\n";
    CHECK_THROWS_WITH_AS(decode(text(good + "0.2 1 2\n")),
                         doctest::Contains("line 71: '0.2 1 2' is not an event"),
                         evformer::FileError);
    ReaderOptions opt;
    opt.format = "text";
    CHECK_THROWS_WITH_AS(decode(text("t,x,y,p\n1,2,3,1\n1,2,x,1\n"), 1 << 16, opt),
                         doctest::Contains("line 3"), evformer::FileError);
    const auto d = decode(text("0.2 1 2 1\n0.1 1 2 1\n0.3 -1 2 1\n0.4 1 2 3\n"), 1 << 16, opt);
    CHECK(d.violations[Violation::time_backwards] == 1);
    CHECK(d.violations[Violation::coordinate_out_of_range] == 1);
    CHECK(d.violations[Violation::bad_polarity] == 1);
    CHECK(d.events.size() == 3);
}

TEST_CASE("text detection does not take other text for events") {
    const auto detected = [](const std::string& s) { return detect_event_format(text(s)); };
    CHECK(detected("0.1 1 2 1\n0.2 3 4 0\n") == "text");
    CHECK(detected("t,x,y,p\n1,2,3,1\n") == "text");
    CHECK(detected("Hello world, this is a README\n") == "");
    CHECK(detected("1 2 3\n4 5 6\n") == "");          // three columns
    CHECK(detected("0.1 1.5 2 1\n") == "");           // x not an integer
    CHECK(detected("0.1 1 2 7\n") == "");             // p not a polarity
    CHECK(detected("0.5 1 2 1\n0.2 1 2 1\n") == "");  // time falls
    CHECK(detected("a,b,c,d\n1,2,3,4\n") == "");      // header names no t/x/y/p
    CHECK(detected("x,y,t\n1,2,3\n") == "");          // no polarity column
    CHECK(detected("% evt 2.0\n% end\n") != "text");
    CHECK(detected("") == "");
}

TEST_CASE("text and CSV writers round-trip through the text reader") {
    const std::vector<Event> events = {{0, 1, 2, 1}, {999999, 3, 4, 0}, {5000001, 65535, 7, 1}};
    ScratchDir dir;
    for (const std::string name : {"e.txt", "e.csv"}) {
        write_event_file(dir / name, events);
        CHECK(read_event_file(dir / name) == events);
    }
    CHECK(read_bytes(dir / "e.txt") ==
          text("0.000000 1 2 1\n0.999999 3 4 0\n5.000001 65535 7 1\n"));
}
