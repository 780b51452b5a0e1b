// The fast decoders work on blocks of records and fall back to an exact per-record path for a
// block with a fault (EVT 2.1, decoded word by word, is checked the same way). These tests decode
// long random streams with sparse faults (so clean and faulty blocks alternate, and faults land at
// every position of a block) and compare events, violation counts, skipped counts and the
// strict-mode offset with plain reference decoders written from the format rules in docs/events.md.
#include <doctest/doctest.h>

#include <limits>
#include <optional>
#include <random>

#include "events_bytes.hpp"
#include "evformer/error.hpp"
#include "evformer/io/events.hpp"
#include "support.hpp"

using namespace evformer::io;
using namespace evformer::test;

namespace {

// What a decoder produced: events, violations, skipped records and the first violation's offset.
struct Outcome {
    std::vector<Event> events;
    ViolationCounts violations;
    std::map<std::string, std::uint64_t> skipped;
    std::optional<std::int64_t> first_violation;

    void violate(Violation v, std::int64_t offset) {
        ++violations.by_kind[static_cast<std::size_t>(v)];
        if (!first_violation) first_violation = offset;
    }
};

std::uint32_t le16(const Bytes& b, std::size_t i) {
    return b[i] | (std::uint32_t{b[i + 1]} << 8);
}
std::uint32_t le32(const Bytes& b, std::size_t i) {
    return le16(b, i) | (le16(b, i + 2) << 16);
}

bool inside(const Geometry& g, std::uint32_t x, std::uint32_t y) {
    return !g.known() || (x < g.width && y < g.height);
}

Event make(std::int64_t t, std::uint32_t x, std::uint32_t y, std::uint32_t p) {
    return {t, static_cast<std::uint16_t>(x), static_cast<std::uint16_t>(y),
            static_cast<std::uint8_t>(p)};
}

Outcome reference_evt2(const Bytes& b, std::size_t body, Geometry g) {
    Outcome o;
    std::int64_t high = 0;
    bool has_time = false;
    for (std::size_t i = body; i + 4 <= b.size(); i += 4) {
        const std::uint32_t w = le32(b, i);
        const std::uint32_t type = w >> 28;
        const auto at = static_cast<std::int64_t>(i);
        if (type <= 1) {
            const std::uint32_t x = (w >> 11) & 2047, y = w & 2047;
            if (!has_time)
                ++o.skipped["events before the first TIME_HIGH"];
            else if (!inside(g, x, y))
                o.violate(Violation::coordinate_out_of_range, at);
            else
                o.events.push_back(make(high + ((w >> 22) & 63), x, y, type));
        } else if (type == 8) {
            const std::int64_t next = std::int64_t{w & 0x0FFFFFFF} << 6;
            if (has_time && next < high) o.violate(Violation::time_backwards, at);
            high = next;
            has_time = true;
        } else if (type == 0xA) {
            ++o.skipped["EXT_TRIGGER words"];
        } else if (type == 0xE) {
            ++o.skipped["OTHERS words"];
        } else if (type == 0xF) {
            ++o.skipped["CONTINUED words"];
        } else {
            o.violate(Violation::unknown_word, at);
        }
    }
    return o;
}

std::uint64_t le64(const Bytes& b, std::size_t i) {
    return le32(b, i) | (std::uint64_t{le32(b, i + 4)} << 32);
}

// EVT 2.1 words in the plain (one little-endian 64-bit word) or the legacy order (the upper 32
// bits first).
Outcome reference_evt21(const Bytes& b, std::size_t body, Geometry g, bool legacy) {
    Outcome o;
    std::int64_t high = 0;
    bool has_time = false;
    for (std::size_t i = body; i + 8 <= b.size(); i += 8) {
        const std::uint64_t raw = le64(b, i);
        const std::uint64_t w = legacy ? (raw >> 32) | (raw << 32) : raw;
        const auto type = static_cast<std::uint32_t>(w >> 60);
        const auto at = static_cast<std::int64_t>(i);
        if (type <= 1) {
            const auto x = static_cast<std::uint32_t>((w >> 43) & 2047);
            const auto y = static_cast<std::uint32_t>((w >> 32) & 2047);
            if (!has_time) {
                o.skipped["events before the first TIME_HIGH"] +=
                    static_cast<std::uint64_t>(__builtin_popcount(std::uint32_t(w)));
                continue;
            }
            for (std::uint32_t k = 0; k < 32; ++k) {
                if (((w >> k) & 1) == 0) continue;
                if (inside(g, x + k, y))
                    o.events.push_back(make(high + std::int64_t((w >> 54) & 63), x + k, y, type));
                else
                    o.violate(Violation::coordinate_out_of_range, at);
            }
        } else if (type == 8) {
            const auto next = static_cast<std::int64_t>((w >> 32) & 0x0FFFFFFF) << 6;
            if (has_time && next < high) o.violate(Violation::time_backwards, at);
            high = next;
            has_time = true;
        } else if (type == 0xA) {
            ++o.skipped["EXT_TRIGGER words"];
        } else if (type == 0xE) {
            ++o.skipped["OTHERS words"];
        } else if (type == 0xF) {
            ++o.skipped["CONTINUED words"];
        } else {
            o.violate(Violation::unknown_word, at);
        }
    }
    return o;
}

Outcome reference_evt3(const Bytes& b, std::size_t body, Geometry g) {
    Outcome o;
    std::int64_t loops = 0, t = 0, t_last = std::numeric_limits<std::int64_t>::min();
    std::uint32_t high = 0, base_x = 0, y = 0, vect_pol = 0;
    bool has_time = false, em_row = false;
    auto set_time = [&](std::int64_t next, std::int64_t) { t = next; };
    // An event stamped below the previous event's time is a violation.
    auto emit = [&](std::uint32_t x, std::uint32_t pol, std::int64_t at) {
        if (has_time) {
            if (t < t_last) o.violate(Violation::time_backwards, at);
            t_last = t;
        }
        if (!has_time)
            ++o.skipped["events before the first TIME_HIGH"];
        else if (!inside(g, x, y))
            o.violate(Violation::coordinate_out_of_range, at);
        else
            o.events.push_back(make(t, x, y, pol));
    };
    for (std::size_t i = body; i + 2 <= b.size(); i += 2) {
        const std::uint32_t w = le16(b, i);
        const auto at = static_cast<std::int64_t>(i);
        if (em_row && (w >> 12) >= 2 && (w >> 12) <= 5) {
            ++o.skipped["address words of EM rows"];
            continue;
        }
        switch (w >> 12) {
            case 0x0:
                y = w & 0x7FF;
                em_row = false;
                break;
            case 0x1:
                em_row = true;
                ++o.skipped["EM rows (type 0x1 words)"];
                break;
            case 0x2:
                emit(w & 0x7FF, (w >> 11) & 1, at);
                break;
            case 0x3:
                vect_pol = (w >> 11) & 1;
                base_x = w & 0x7FF;
                break;
            case 0x4:
            case 0x5: {
                const std::uint32_t bits = (w >> 12) == 4 ? 12 : 8;
                for (std::uint32_t k = 0; k < bits; ++k)
                    if ((w >> k) & 1) emit(base_x + k, vect_pol, at);
                base_x += bits;
                break;
            }
            case 0x6:
                set_time(loops + (std::int64_t{high} << 12) + (w & 0xFFF), at);
                break;
            case 0x8: {
                const std::uint32_t v = w & 0xFFF;
                if (has_time && v < high && high - v >= 2048) loops += std::int64_t{1} << 24;
                set_time(loops + (std::int64_t{v} << 12), at);
                high = v;
                has_time = true;
                break;
            }
            case 0xA:
                ++o.skipped["EXT_TRIGGER words"];
                break;
            case 0xE:
                ++o.skipped["OTHERS words"];
                break;
            case 0x7:
            case 0xF:
                ++o.skipped["CONTINUED words"];
                break;
            default:
                o.violate(Violation::unknown_word, at);
        }
    }
    return o;
}

Outcome reference_dat(const Bytes& b, std::size_t body, Geometry g) {
    Outcome o;
    std::uint32_t last = 0;
    std::int64_t epoch = 0;
    for (std::size_t i = body; i + 8 <= b.size(); i += 8) {
        const std::uint32_t ts = le32(b, i), a = le32(b, i + 4);
        const auto at = static_cast<std::int64_t>(i);
        if (ts < last) {
            if (last - ts > 0x80000000u)
                epoch += std::int64_t{1} << 32;
            else
                o.violate(Violation::time_backwards, at);
        }
        last = ts;
        const std::uint32_t x = a & 0x3FFF, y = (a >> 14) & 0x3FFF, p = a >> 28;
        if (!inside(g, x, y)) {
            o.violate(Violation::coordinate_out_of_range, at);
            continue;
        }
        if (p > 1) o.violate(Violation::bad_polarity, at);
        o.events.push_back(make(epoch + ts, x, y, p != 0));
    }
    return o;
}

Outcome reference_nmnist(const Bytes& b, Geometry g) {
    Outcome o;
    const Geometry limit = g.known() ? g : Geometry{256, 256};
    std::int64_t base = 0, last = 0;
    for (std::size_t i = 0; i + 5 <= b.size(); i += 5) {
        const auto at = static_cast<std::int64_t>(i);
        if (b[i + 1] == 240) {
            base += std::int64_t{1} << 23;
            ++o.skipped["timestamp overflow events"];
            continue;
        }
        const std::int64_t t =
            base + ((std::int64_t{b[i + 2] & 0x7Fu} << 16) | (b[i + 3] << 8) | b[i + 4]);
        if (t < last) o.violate(Violation::time_backwards, at);
        last = t;
        if (b[i] < limit.width && b[i + 1] < limit.height)
            o.events.push_back(make(t, b[i], b[i + 1], b[i + 2] >> 7));
        else
            o.violate(Violation::coordinate_out_of_range, at);
    }
    return o;
}

// Decodes with the real reader through a given chunk capacity and file buffer (0 = memory).
Outcome decode_with(const Bytes& bytes, const std::string& format, std::size_t chunk,
                    std::size_t buffer) {
    ReaderOptions opt;
    opt.format = format;
    std::unique_ptr<EventReader> r;
    ScratchDir dir;
    if (buffer == 0) {
        r = open_event_bytes(bytes, opt);
    } else {
        write_bytes(dir / "f", bytes);
        opt.buffer_bytes = buffer;
        r = open_event_file(dir / "f", opt);
    }
    Outcome o;
    o.events = read_all(*r, chunk);
    o.violations = r->violations();
    o.skipped = r->skipped();
    return o;
}

std::optional<std::int64_t> strict_offset(const Bytes& bytes, const std::string& format) {
    ReaderOptions opt;
    opt.format = format;
    opt.strict = true;
    try {
        auto r = open_event_bytes(bytes, opt);
        read_all(*r);
    } catch (const evformer::FileError& e) {
        return e.offset();
    }
    return std::nullopt;
}

void check_matches(const Bytes& bytes, const std::string& format, const Outcome& expected) {
    for (const auto& [chunk, buffer] : std::vector<std::pair<std::size_t, std::size_t>>{
             {std::size_t{1} << 16, 0},
             {64, 0},
             {1000, 0},
             {777, 4099},
             {std::size_t{1} << 16, std::size_t{1} << 20}}) {
        INFO(format << " chunk " << chunk << " buffer " << buffer);
        const auto got = decode_with(bytes, format, chunk, buffer);
        CHECK(got.events.size() == expected.events.size());
        CHECK(got.events == expected.events);
        for (std::size_t k = 0; k < violation_kinds; ++k) {
            INFO("violation " << std::string(violation_name(static_cast<Violation>(k))));
            CHECK(got.violations.by_kind[k] == expected.violations.by_kind[k]);
        }
        CHECK(got.skipped == expected.skipped);
    }
    CHECK(strict_offset(bytes, format) == expected.first_violation);
}

// 32-bit random numbers (std::mt19937 yields unsigned long).
struct Rng {
    std::mt19937 engine;
    explicit Rng(unsigned seed) : engine(seed) {}
    std::uint32_t operator()() { return static_cast<std::uint32_t>(engine()); }
};

// A fault roughly once per `every` records; 0 = none.
struct Faults {
    Rng& rng;
    std::uint32_t every;
    bool operator()() { return every != 0 && rng() % every == 0; }
};

Bytes evt2_stream(Rng& rng, bool geometry, std::uint32_t fault_every) {
    Bytes b;
    put_text(b, geometry ? "% evt 2.0\n% geometry 640x480\n% end\n" : "% evt 2.0\n% end\n");
    Faults fault{rng, fault_every};
    std::uint32_t high = 1;
    for (int k = 0; k < 5; ++k) put_le32(b, evt2_cd(1, 0, 3, 4));  // before the first TIME_HIGH
    put_le32(b, (8u << 28) | high);
    for (int i = 0; i < 60000; ++i) {
        if (rng() % 180 == 0) {
            high += 1 + rng() % 3;
            put_le32(b, (8u << 28) | (fault() ? high - 5 : high));
            continue;
        }
        if (fault()) {
            const std::uint32_t kinds[] = {0xA, 0xE, 0xF, 0x3, 0x5};
            put_le32(b, kinds[rng() % 5] << 28 | (rng() & 0x0FFFFFFF));
            continue;
        }
        std::uint32_t x = rng() % 640, y = rng() % 480;
        if (fault()) (rng() & 1 ? x : y) = 600 + rng() % 1400;
        put_le32(b, evt2_cd(rng() & 1, rng() % 64, x, y));
    }
    return b;
}

// Vectors of every density (empty, one event, sparse, full), 32-aligned and not, at the border
// of the geometry and beyond it when a fault is due.
Bytes evt21_stream(Rng& rng, bool geometry, bool legacy, std::uint32_t fault_every) {
    Faults fault{rng, fault_every};
    std::vector<std::uint64_t> words = {evt21_cd(1, 0, 3, 4, 0x5), evt21_cd(0, 0, 3, 4, 0)};
    std::uint64_t high = 10;  // a fall by 5 stays a TIME_HIGH word
    words.push_back(evt21_time_high(high));
    for (int i = 0; i < 30000; ++i) {
        if (rng() % 180 == 0) {
            high += 1 + rng() % 3;
            words.push_back(evt21_time_high(fault() ? high - 5 : high));
            continue;
        }
        if (fault()) {
            const std::uint64_t kinds[] = {0xA, 0xE, 0xF, 0x2, 0x7, 0x9, 0xC};
            words.push_back(kinds[rng() % 7] << 60 | (std::uint64_t{rng()} << 28) | rng());
            continue;
        }
        std::uint32_t x = rng() % 4 == 0 ? rng() % 640 : 32 * (rng() % 20), y = rng() % 480;
        if (fault()) (rng() & 1 ? x : y) = 600 + rng() % 1448;
        const std::uint32_t density = rng() % 8;
        const std::uint32_t valid = density == 0   ? 0
                                    : density < 4  ? 1u << (rng() % 32)
                                    : density < 6  ? rng() & rng() & rng()
                                    : density == 6 ? rng()
                                                   : 0xFFFFFFFF;
        words.push_back(evt21_cd(rng() & 1, rng() % 64, x, y, valid));
    }
    return evt21_file(std::string(legacy ? "% evt 2.1\n" : "% format EVT21\n") +
                          (geometry ? "% geometry 640x480\n" : "") + "% end\n",
                      words, legacy);
}

Bytes evt3_stream(Rng& rng, bool geometry, std::uint32_t fault_every) {
    Bytes b;
    put_text(b, geometry ? "% evt 3.0\n% format EVT3;height=720;width=1280\n% end\n"
                         : "% evt 3.0\n% end\n");
    Faults fault{rng, fault_every};
    std::uint32_t high = 4000, low = 0;
    put_le16(b, 0x2000 | 7);  // before the first TIME_HIGH
    put_le16(b, 0x8000 | high);
    for (int i = 0; i < 80000; ++i) {
        const auto r = rng() % 100;
        if (fault()) {
            const std::uint32_t kinds[] = {0x1, 0x7, 0x9, 0xA, 0xB, 0xE, 0xF};
            const std::uint32_t kind = kinds[rng() % 7];
            if (rng() % 4 == 0)
                put_le16(b, 0x6000 | (low / 2));  // TIME_LOW falls (or repeats at 0)
            else if (rng() % 3 == 0)
                put_le16(b, 0x8000 | ((high - 1 - rng() % 100) & 0xFFF));  // small fall
            else if (rng() % 2 == 0)
                put_le16(b, 0x2000 | (1200 + rng() % 848));  // x out of range
            else
                put_le16(b, kind << 12 | (rng() & 0xFFF));
        } else if (r < 20) {
            put_le16(b, 0x0000 | (fault() ? 700 + rng() % 1348 : rng() % 720));
        } else if (r < 80) {
            put_le16(b, 0x2000 | (rng() & 0x800) | (rng() % 1280));
        } else if (r < 85) {
            put_le16(b, 0x3000 | (rng() & 0x800) | (rng() % 1260));
        } else if (r < 91) {
            put_le16(b, 0x4000 | (rng() & rng() & 0xFFF));
        } else if (r < 95) {
            put_le16(b, 0x5000 | (rng() & rng() & 0xFF));
        } else if (r < 99) {
            low = std::min<std::uint32_t>(low + rng() % 200, 0xFFF);
            put_le16(b, 0x6000 | low);
        } else {
            high = (high + 1 + rng() % 3) & 0xFFF;  // loops through 4095 → 0
            low = 0;
            put_le16(b, 0x8000 | high);
        }
    }
    return b;
}

Bytes dat_stream(Rng& rng, bool geometry, std::uint32_t fault_every) {
    Bytes b;
    put_text(b, geometry ? "% Data file\n% Width 304\n% Height 240\n" : "% Data file\n");
    b.push_back(0x00);
    b.push_back(0x08);
    Faults fault{rng, fault_every};
    std::uint32_t t = 0xFFF00000u;  // wraps after a while
    for (int i = 0; i < 60000; ++i) {
        t += rng() % 40;
        std::uint32_t ts = t, x = rng() % 304, y = rng() % 240, p = rng() & 1;
        if (fault()) ts -= 1 + rng() % 50;
        if (fault()) p = 2 + rng() % 14;
        if (fault()) (rng() & 1 ? x : y) = 300 + rng() % 16000;
        put_le32(b, ts);
        put_le32(b, x | (y << 14) | (p << 28));
    }
    return b;
}

Bytes nmnist_stream(Rng& rng, std::uint32_t fault_every) {
    Bytes b;
    Faults fault{rng, fault_every};
    std::uint32_t t = 0;
    for (int i = 0; i < 60000; ++i) {
        t += rng() % 300;
        if (t >= (1u << 23)) {
            t -= 1u << 23;
            for (auto v : {0, 240, 0, 0, 0}) b.push_back(std::uint8_t(v));
        }
        std::uint32_t ts = t, x = rng() % 34, y = rng() % 34;
        if (fault()) ts = ts > 100 ? ts - 100 : 0;
        if (fault()) y = 241 + rng() % 15;
        b.push_back(std::uint8_t(x));
        b.push_back(std::uint8_t(y));
        b.push_back(std::uint8_t(((rng() & 1) << 7) | (ts >> 16)));
        b.push_back(std::uint8_t(ts >> 8));
        b.push_back(std::uint8_t(ts));
    }
    return b;
}

std::size_t body_start(const Bytes& b) {
    std::size_t pos = 0;
    while (pos < b.size() && b[pos] == '%')
        pos =
            static_cast<std::size_t>(std::find(b.begin() + long(pos), b.end(), '\n') - b.begin()) +
            1;
    return pos;
}

}  // namespace

TEST_CASE("evt2 block decoding matches a per-word reference with sparse faults") {
    Rng rng(2);
    for (bool geometry : {true, false})
        for (std::uint32_t every : {0u, 5000u, 300u, 20u}) {
            INFO("geometry " << geometry << " fault every " << every);
            const auto b = evt2_stream(rng, geometry, every);
            const Geometry g = geometry ? Geometry{640, 480} : Geometry{};
            check_matches(b, "evt2", reference_evt2(b, body_start(b), g));
        }
}

TEST_CASE("evt21 decoding matches a per-word reference with sparse faults, in both word orders") {
    Rng rng(6);
    for (bool legacy : {false, true})
        for (bool geometry : {true, false})
            for (std::uint32_t every : {0u, 5000u, 300u, 20u}) {
                INFO("legacy " << legacy << " geometry " << geometry << " fault every " << every);
                const auto b = evt21_stream(rng, geometry, legacy, every);
                const Geometry g = geometry ? Geometry{640, 480} : Geometry{};
                check_matches(b, "evt21", reference_evt21(b, body_start(b), g, legacy));
            }
}

TEST_CASE("evt3 block decoding matches a per-word reference with sparse faults") {
    Rng rng(3);
    for (bool geometry : {true, false})
        for (std::uint32_t every : {0u, 5000u, 300u, 20u}) {
            INFO("geometry " << geometry << " fault every " << every);
            const auto b = evt3_stream(rng, geometry, every);
            const Geometry g = geometry ? Geometry{1280, 720} : Geometry{};
            check_matches(b, "evt3", reference_evt3(b, body_start(b), g));
        }
}

TEST_CASE("dat block decoding matches a per-record reference with wraps and sparse faults") {
    Rng rng(4);
    for (bool geometry : {true, false})
        for (std::uint32_t every : {0u, 5000u, 300u, 20u}) {
            INFO("geometry " << geometry << " fault every " << every);
            const auto b = dat_stream(rng, geometry, every);
            const Geometry g = geometry ? Geometry{304, 240} : Geometry{};
            check_matches(b, "dat", reference_dat(b, body_start(b) + 2, g));
        }
}

TEST_CASE("nmnist block decoding matches a per-record reference with sparse faults") {
    Rng rng(5);
    for (std::uint32_t every : {0u, 5000u, 300u, 20u}) {
        INFO("fault every " << every);
        const auto b = nmnist_stream(rng, every);
        check_matches(b, "nmnist", reference_nmnist(b, Geometry{}));
    }
}
