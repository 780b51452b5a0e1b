// `evformer bench events`: decode throughput per format on one core, decoding in-memory inputs
// (~200 MB, built by repeating the shared samples with shifted timestamps) into one reused,
// already-touched chunk — the constant-memory path users get — against memcpy of the same bytes.
// There is no shared EVT 2.1 sample: its input is the EVT 2.0 sample's events re-encoded as
// EVT 2.1 vectors, then repeated the same way.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/io/bytes.hpp"
#include "evformer/io/events.hpp"

namespace evformer::tools {
namespace {

namespace fs = std::filesystem;

struct BenchOptions {
    std::string data = EVFORMER_EVENTS_DATA_DEFAULT;
    std::vector<std::string> formats{"evt2", "evt21", "evt3", "dat", "nmnist"};
    double megabytes = 200;
    int repeats = 3;
    std::size_t chunk = 1 << 16;
    std::string json;
};

// A benchmark input: the bytes and the number of events they hold.
struct Input {
    std::vector<std::uint8_t> bytes;
    std::uint64_t events = 0;
};

// Splits a Prophesee file into its '%' header and body.
std::size_t header_end(const std::vector<std::uint8_t>& b) {
    std::size_t pos = 0;
    while (pos < b.size() && b[pos] == '%') {
        const auto nl = std::find(b.begin() + static_cast<std::ptrdiff_t>(pos), b.end(), '\n');
        pos = static_cast<std::size_t>(nl - b.begin()) + 1;
    }
    return pos;
}

std::uint64_t count_events(std::span<const std::uint8_t> bytes, const std::string& format) {
    io::ReaderOptions o;
    o.format = format;
    auto r = io::open_event_bytes(bytes, o);
    io::EventChunk chunk;
    std::uint64_t n = 0;
    while (r->read(chunk) > 0) n += chunk.size();
    if (r->violations().total() != 0)
        throw Error(fmt::format("bench input for {} decodes with {} violations", format,
                                r->violations().total()));
    return n;
}

// Repeats the body of a sample's bytes (after `skip` header bytes) until `target` bytes,
// rewriting each copy's timestamps with `shift`.
template <class Shift>
Input repeat(const std::vector<std::uint8_t>& src, std::size_t skip, std::size_t target,
             std::size_t align, const std::string& format, Shift&& shift) {
    std::vector<std::uint8_t> body(src.begin() + static_cast<std::ptrdiff_t>(skip), src.end());
    body.resize(body.size() / align * align);
    Input in;
    in.bytes.assign(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(skip));
    in.bytes.reserve(target + body.size());
    std::vector<std::uint8_t> copy;
    for (std::uint32_t k = 0; in.bytes.size() < target; ++k) {
        copy = body;
        shift(copy, k);
        in.bytes.insert(in.bytes.end(), copy.begin(), copy.end());
    }
    in.events = count_events(in.bytes, format);
    return in;
}

template <class Shift>
Input repeat(const fs::path& file, std::size_t skip, std::size_t target, std::size_t align,
             const std::string& format, Shift&& shift) {
    return repeat(io::read_file_bytes(file), skip, target, align, format,
                  std::forward<Shift>(shift));
}

void append_le64(std::vector<std::uint8_t>& b, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// The events of an EVT 2.0 recording as an EVT 2.1 file (plain 64-bit little-endian words), the
// way a sensor groups them: consecutive events with the same time, polarity and row whose x
// fall in the same 32-aligned span, in rising x, share one vector word; a TIME_HIGH word
// precedes each new 64 µs period.
std::vector<std::uint8_t> evt21_from_evt2(const fs::path& evt2_file) {
    io::ReaderOptions o;
    o.format = "evt2";
    auto reader = io::open_event_file(evt2_file, o);
    std::vector<std::uint8_t> out;
    const std::string header = fmt::format("% format EVT21;height={};width={}\n% end\n",
                                           reader->geometry().height, reader->geometry().width);
    out.assign(header.begin(), header.end());
    std::uint64_t vector = 0;  // open vector word (without its valid bits), 0 = none
    std::uint32_t valid = 0;
    std::int64_t time_high = -1;
    const auto flush = [&] {
        if (valid != 0) append_le64(out, vector | valid);
        valid = 0;
    };
    io::EventChunk chunk;
    while (reader->read(chunk) > 0) {
        for (const auto& e : chunk.events()) {
            const std::int64_t high = e.t >> 6;
            const std::uint32_t bit = e.x & 31u;
            const std::uint64_t head =
                (std::uint64_t{e.p} << 60) | (static_cast<std::uint64_t>(e.t & 63) << 54) |
                (std::uint64_t{e.x & ~31u} << 43) | (std::uint64_t{e.y} << 32);
            if (high != time_high || head != vector || valid >> bit != 0) {
                flush();
                if (high != time_high) {
                    append_le64(out, (std::uint64_t{8} << 60) |
                                         (static_cast<std::uint64_t>(high & 0x0FFFFFFF) << 32));
                    time_high = high;
                }
                vector = head;
            }
            valid |= 1u << bit;
        }
    }
    flush();
    if (reader->violations().total() != 0)
        throw Error(fmt::format("bench input: {} decodes with {} violations", evt2_file.string(),
                                reader->violations().total()));
    return out;
}

Input build_input(const std::string& format, const fs::path& data, std::size_t target) {
    if (format == "evt2") {
        const auto file = data / "evt2_gen3_vga_expelliarmus.raw";
        const auto skip = header_end(io::read_file_bytes(file));
        // Each copy moves TIME_HIGH forward by 50 ms (the sample spans 50 ms).
        return repeat(file, skip, target, 4, format, [](auto& b, std::uint32_t k) {
            for (std::size_t i = 0; i + 4 <= b.size(); i += 4) {
                std::uint32_t w;
                std::memcpy(&w, &b[i], 4);
                if ((w >> 28) == 8) w = (8u << 28) | ((w + k * 782u) & 0x0FFFFFFF);
                std::memcpy(&b[i], &w, 4);
            }
        });
    }
    if (format == "evt21") {
        const auto src = evt21_from_evt2(data / "evt2_gen3_vga_expelliarmus.raw");
        // Each copy moves TIME_HIGH forward by 50 ms, as for EVT 2.0.
        return repeat(src, header_end(src), target, 8, format, [](auto& b, std::uint32_t k) {
            for (std::size_t i = 0; i + 8 <= b.size(); i += 8) {
                std::uint64_t w;
                std::memcpy(&w, &b[i], 8);
                if ((w >> 60) == 8)
                    w = (std::uint64_t{8} << 60) | (((w >> 32) + k * 782u) & 0x0FFFFFFF) << 32;
                std::memcpy(&b[i], &w, 8);
            }
        });
    }
    if (format == "evt3") {
        const auto file = data / "evt3_gen41_hd_expelliarmus.raw";
        const auto skip = header_end(io::read_file_bytes(file));
        // Each copy moves the 12-bit TIME_HIGH forward by 3 (12.3 ms; the sample spans 8.8 ms);
        // the 24-bit counter loops as in a long recording.
        return repeat(file, skip, target, 2, format, [](auto& b, std::uint32_t k) {
            for (std::size_t i = 0; i + 2 <= b.size(); i += 2) {
                std::uint16_t w;
                std::memcpy(&w, &b[i], 2);
                if ((w >> 12) == 8) w = static_cast<std::uint16_t>(0x8000 | ((w + 3 * k) & 0xFFF));
                std::memcpy(&b[i], &w, 2);
            }
        });
    }
    if (format == "dat") {
        const auto file = data / "dat_ncars_atis_tonic.dat";
        const auto skip = header_end(io::read_file_bytes(file)) + 2;
        // Each copy moves time forward by 100 ms (32-bit µs counters wrap after 71 minutes).
        return repeat(file, skip, target, 8, format, [](auto& b, std::uint32_t k) {
            for (std::size_t i = 0; i + 8 <= b.size(); i += 8) {
                std::uint32_t t;
                std::memcpy(&t, &b[i], 4);
                t += k * 100000u;
                std::memcpy(&b[i], &t, 4);
            }
        });
    }
    if (format == "nmnist") {
        const auto file = data / "nmnist_sample_tonic.bin";
        // Each copy starts with an overflow event, moving time forward by 2²³ µs.
        auto in = repeat(file, 0, target, 5, format, [](auto& b, std::uint32_t) {
            const std::uint8_t overflow[5] = {0, 240, 0, 0, 0};
            b.insert(b.begin(), overflow, overflow + 5);
        });
        return in;
    }
    throw ConfigError("bench events: no benchmark input for format '" + format +
                      "' (available: evt2, evt21, evt3, dat, nmnist)");
}

template <class F>
double best_seconds(int repeats, F&& f) {
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        const auto t1 = std::chrono::steady_clock::now();
        best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    }
    return best;
}

// Published anchors (expelliarmus, M events/s, one core, EPYC Zen 4) the goal is 2× of.
double anchor(const std::string& format) {
    if (format == "evt2") return 370;
    if (format == "evt3") return 135;
    if (format == "dat") return 400;
    return 0;
}

void run_bench(const BenchOptions& opt) {
    if (!fs::is_directory(opt.data))
        throw FileError(opt.data, -1,
                        "no shared event samples here (give --data DIR; inputs are built from "
                        "them)");
    if (opt.repeats < 1) throw ConfigError("--repeats must be at least 1");
    const std::vector<NamedPath> outputs{{"--json", opt.json}};
    check_distinct_files({}, outputs);
    prepare_outputs(outputs);
    const auto target = static_cast<std::size_t>(opt.megabytes * 1e6);
    nlohmann::json results = nlohmann::json::array();
    if (opt.json != "-")
        fmt::print("{:<8} {:>9} {:>12} {:>10} {:>11} {:>8} {:>14}\n", "format", "MB", "events",
                   "M ev/s", "memcpy GB/s", "ratio", "vs anchor (2x)");
    for (const auto& format : opt.formats) {
        const auto in = build_input(format, opt.data, target);
        std::vector<std::uint8_t> dst(in.bytes.size(), 1);  // touched before timing
        const double t_copy = best_seconds(opt.repeats, [&] {
            std::memcpy(dst.data(), in.bytes.data(), in.bytes.size());
            asm volatile("" : : "r"(dst.data()) : "memory");
        });
        io::EventChunk chunk(opt.chunk);
        io::ReaderOptions ro;
        ro.format = format;
        std::uint64_t checksum = 0, decoded = 0;
        const double t_decode = best_seconds(opt.repeats, [&] {
            auto reader = io::open_event_bytes(in.bytes, ro);
            decoded = 0;
            while (reader->read(chunk) > 0) {
                decoded += chunk.size();
                checksum += static_cast<std::uint64_t>(chunk[chunk.size() - 1].t);
            }
        });
        if (decoded != in.events) throw Error("bench events: decoded event count changed");
        const double mev = double(in.events) / t_decode * 1e-6;
        const double copy_gbs = double(in.bytes.size()) / t_copy * 1e-9;
        const double ratio = t_decode / t_copy;
        const double a = anchor(format);
        nlohmann::json r{{"format", format},
                         {"bytes", in.bytes.size()},
                         {"events", in.events},
                         {"decode_s", t_decode},
                         {"memcpy_s", t_copy},
                         {"mev_per_s", mev},
                         {"decode_gb_per_s", double(in.bytes.size()) / t_decode * 1e-9},
                         {"memcpy_gb_per_s", copy_gbs},
                         {"decode_over_memcpy_time", ratio},
                         {"anchor_mev_per_s", a},
                         {"checksum", checksum}};
        results.push_back(r);
        if (opt.json != "-")
            fmt::print("{:<8} {:>9.1f} {:>12} {:>10.1f} {:>11.2f} {:>7.2f}x {:>14}\n", format,
                       double(in.bytes.size()) * 1e-6, in.events, mev, copy_gbs, ratio,
                       a > 0 ? fmt::format("{:.2f}x of {:.0f}", mev / a, a) : std::string("-"));
    }
    if (!opt.json.empty()) write_text(opt.json, results.dump(2) + "\n");
    if (opt.json != "-")
        fmt::print(
            "ratio = decode time / memcpy time of the same bytes (1.0 = physical limit); "
            "chunk of {} events reused\n",
            opt.chunk);
}

const RegisterCommand reg("bench events", [](CLI::App& app) {
    auto opt = std::make_shared<BenchOptions>();
    auto* cmd = bench_group(app)->add_subcommand(
        "events", "Decode throughput per event format (M events/s, one core) against memcpy");
    cmd->add_option("--data", opt->data, "Folder of the shared sample recordings");
    cmd->add_option("--formats", opt->formats, "Formats to measure (evt2 evt21 evt3 dat nmnist)");
    cmd->add_option("--mb", opt->megabytes, "Size of each in-memory input in MB (default 200)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--repeats", opt->repeats, "Timed runs per measurement; best is kept")
        ->check(count_in(1, 1000));
    cmd->add_option("--chunk", opt->chunk, "Events per reused chunk (default 65536)")
        ->check(count_in(1, 1u << 30));
    cmd->add_option("--json", opt->json,
                    "Write the results as JSON to FILE ('-' = stdout instead of the table)");
    cmd->callback([opt] { run_bench(*opt); });
});

}  // namespace
}  // namespace evformer::tools
