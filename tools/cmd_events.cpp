// `evformer events info|convert|frames`: inspect, convert and bin event-camera recordings.
#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/io/events.hpp"
#include "evformer/io/events_frames.hpp"

namespace evformer::tools {
namespace {

using io::Event;
using io::EventChunk;

// Reader options shared by every events subcommand.
struct ReaderFlags {
    std::string format;
    std::string orientation = "jaer";
    std::string sensor;
    std::string stream;
    bool strict = false;
    bool t_seconds = false;
};

io::Geometry parse_geometry(const std::string& text, const char* option) {
    io::Geometry g;
    const auto x = text.find('x');
    const auto parse = [&](std::string_view s, std::uint32_t& v) {
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        return r.ec == std::errc() && r.ptr == s.data() + s.size() && v > 0;
    };
    if (x == std::string::npos || !parse(std::string_view(text).substr(0, x), g.width) ||
        !parse(std::string_view(text).substr(x + 1), g.height))
        throw ConfigError(fmt::format("{} '{}' must be WIDTHxHEIGHT, e.g. 128x128", option, text));
    return g;
}

io::ReaderOptions reader_options(const ReaderFlags& f) {
    io::ReaderOptions o;
    o.format = f.format;
    o.strict = f.strict;
    if (!f.format.empty()) io::event_format(f.format);  // unknown names fail early
    if (f.orientation == "jaer")
        o.aedat2_orientation = io::Aedat2Orientation::jaer;
    else if (f.orientation == "spikingjelly")
        o.aedat2_orientation = io::Aedat2Orientation::spikingjelly;
    else
        o.aedat2_orientation = io::Aedat2Orientation::tonic;
    if (!f.sensor.empty()) o.geometry = parse_geometry(f.sensor, "--sensor");
    o.aedat4_stream = f.stream;
    o.float_seconds = f.t_seconds;
    return o;
}

void add_reader_flags(CLI::App* cmd, ReaderFlags& f) {
    std::string names;
    for (const auto& fmt : io::event_formats()) names += (names.empty() ? "" : ", ") + fmt.name;
    cmd->add_option("--format", f.format,
                    "Read as this format instead of detecting it from the bytes (" + names + ")");
    cmd->add_option("--orientation", f.orientation,
                    "AEDAT 2.0 DVS128 address orientation: jaer (default), spikingjelly, tonic")
        ->check(CLI::IsMember({"jaer", "spikingjelly", "tonic"}));
    cmd->add_option("--sensor", f.sensor, "Sensor size WxH when the file does not state it");
    cmd->add_flag("--strict", f.strict,
                  "Fail at the first protocol violation instead of counting it");
    cmd->add_option("--stream", f.stream,
                    "AEDAT 4.0 with several event streams: the EVTS stream to read, by id or "
                    "name (default: the lowest id; the others are skipped and counted)");
    cmd->add_flag("--t-seconds", f.t_seconds,
                  "HDF5 events whose t is floating-point seconds: convert to integer µs");
}

// ---------------------------------------------------------------------------------------------
// info

struct InfoOptions {
    std::vector<std::string> files;
    ReaderFlags reader;
    std::string json;
};

nlohmann::json describe(const std::string& path, const io::ReaderOptions& ro) {
    auto reader = io::open_event_file(path, ro);
    EventChunk chunk;
    std::uint64_t n = 0, n_on = 0;
    std::int64_t t_first = 0, t_last = 0;
    std::uint32_t x_max = 0, y_max = 0;
    while (reader->read(chunk) > 0) {
        const auto ev = chunk.events();
        if (n == 0) t_first = ev.front().t;
        t_last = ev.back().t;
        for (const auto& e : ev) {
            n_on += e.p;
            x_max = std::max<std::uint32_t>(x_max, e.x);
            y_max = std::max<std::uint32_t>(y_max, e.y);
        }
        n += ev.size();
    }
    const auto& v = reader->violations();
    nlohmann::json kinds = nlohmann::json::object();
    for (std::size_t k = 0; k < io::violation_kinds; ++k)
        if (v.by_kind[k]) kinds[io::violation_name(static_cast<io::Violation>(k))] = v.by_kind[k];
    const double span_s = double(t_last - t_first) * 1e-6;
    return {{"file", path},
            {"format", reader->format_name()},
            {"width", reader->geometry().width},
            {"height", reader->geometry().height},
            {"events", n},
            {"t_first", t_first},
            {"t_last", t_last},
            {"span_us", t_last - t_first},
            {"n_on", n_on},
            {"n_off", n - n_on},
            {"x_max", x_max},
            {"y_max", y_max},
            {"rate_ev_per_s", span_s > 0 ? double(n) / span_s : 0.0},
            {"violations", v.total()},
            {"violations_by_kind", kinds},
            {"skipped", reader->skipped()}};
}

void run_info(const InfoOptions& opt) {
    std::vector<NamedPath> inputs;
    for (const auto& f : opt.files) inputs.push_back({"file", f});
    const std::vector<NamedPath> outputs{{"--json", opt.json}};
    check_distinct_files(inputs, outputs);
    prepare_outputs(outputs);
    const auto ro = reader_options(opt.reader);
    nlohmann::json all = nlohmann::json::array();
    for (const auto& f : opt.files) {
        const auto d = describe(f, ro);
        all.push_back(d);
        if (opt.json == "-") continue;
        const auto w = d["width"].get<std::uint32_t>();
        fmt::print("{}\n  format      {}\n", f, d["format"].get<std::string>());
        fmt::print("  geometry    {}\n", w ? fmt::format("{}x{}", w, d["height"].get<int>())
                                           : std::string("unknown (not stated by the file)"));
        fmt::print("  events      {} ({} ON, {} OFF)\n", d["events"].get<std::uint64_t>(),
                   d["n_on"].get<std::uint64_t>(), d["n_off"].get<std::uint64_t>());
        fmt::print("  time        {} .. {} µs (span {} µs)\n", d["t_first"].get<std::int64_t>(),
                   d["t_last"].get<std::int64_t>(), d["span_us"].get<std::int64_t>());
        fmt::print("  rate        {:.3f} M events/s\n", d["rate_ev_per_s"].get<double>() * 1e-6);
        fmt::print("  violations  {}", d["violations"].get<std::uint64_t>());
        for (const auto& [k, c] : d["violations_by_kind"].items())
            fmt::print(" {}={}", k, c.get<std::uint64_t>());
        fmt::print("\n");
        for (const auto& [k, c] : d["skipped"].items())
            fmt::print("  skipped     {} {}\n", c.get<std::uint64_t>(), k);
    }
    if (!opt.json.empty()) write_text(opt.json, all.dump(2) + "\n");
}

// ---------------------------------------------------------------------------------------------
// convert

struct ConvertOptions {
    std::string input, output, to;
    ReaderFlags reader;
};

void run_convert(const ConvertOptions& opt) {
    const std::vector<NamedPath> outputs{{"output", opt.output}};
    check_distinct_files({{"input", opt.input}}, outputs);
    prepare_outputs(outputs);
    const auto ro = reader_options(opt.reader);
    auto reader = io::open_event_file(opt.input, ro);
    io::WriterOptions wo;
    wo.geometry = reader->geometry();
    auto writer = io::create_event_writer(opt.output, opt.to, wo);
    EventChunk chunk;
    std::uint64_t n = 0;
    while (reader->read(chunk) > 0) {
        writer->write(chunk.events());
        n += chunk.size();
    }
    writer->finish();
    fmt::print("wrote {} events from {} ({}) to {}\n", n, opt.input, reader->format_name(),
               opt.output);
    if (reader->violations().total() > 0)
        fmt::print("note: {} protocol violations were counted while reading\n",
                   reader->violations().total());
}

// ---------------------------------------------------------------------------------------------
// frames

struct FramesOptions {
    std::string input, output, split = "number", crop, size, dtype = "f32";
    std::size_t frames = 16;
    std::int64_t dt_us = 0;  // --split duration: bin length
    ReaderFlags reader;
};

void run_frames(const FramesOptions& opt) {
    const auto ro = reader_options(opt.reader);
    io::FrameOptions fo;
    fo.frames = opt.frames;
    fo.split_by = opt.split == "time"       ? io::SplitBy::time
                  : opt.split == "duration" ? io::SplitBy::duration
                                            : io::SplitBy::number;
    if (fo.split_by == io::SplitBy::duration && opt.dt_us < 1)
        throw ConfigError("--split duration needs the bin length: --dt US");
    if (fo.split_by != io::SplitBy::duration && opt.dt_us != 0)
        throw ConfigError("--dt is the bin length of --split duration; give both or neither");
    fo.dt_us = opt.dt_us;
    fo.sensor = ro.geometry;
    if (!opt.crop.empty()) {
        std::uint32_t v[4] = {};
        std::size_t pos = 0;
        for (int i = 0; i < 4; ++i) {
            const auto end = opt.crop.find(',', pos);
            const auto part = opt.crop.substr(pos, end == std::string::npos ? end : end - pos);
            const auto r = std::from_chars(part.data(), part.data() + part.size(), v[i]);
            if (r.ec != std::errc() || r.ptr != part.data() + part.size() ||
                (i < 3 && end == std::string::npos) || (i == 3 && end != std::string::npos))
                throw ConfigError("--crop '" + opt.crop + "' must be X,Y,WIDTH,HEIGHT");
            pos = end + 1;
        }
        fo.crop_x = v[0];
        fo.crop_y = v[1];
        fo.crop_width = v[2];
        fo.crop_height = v[3];
    }
    if (!opt.size.empty()) {
        const auto g = parse_geometry(opt.size, "--size");
        fo.out_width = g.width;
        fo.out_height = g.height;
    }
    if (fo.frames == 0) throw ConfigError("--T must be at least 1");
    const auto out = opt.output.empty()
                         ? std::filesystem::path(opt.input).stem().string() + ".frames.h5"
                         : opt.output;
    const std::vector<NamedPath> outputs{{"--output", out}};
    check_distinct_files({{"input", opt.input}}, outputs);
    prepare_outputs(outputs);
    auto frames = io::bin_event_file(opt.input, fo, ro, &fo);  // fo: as applied
    io::write_frames(out, frames, fo, opt.dtype);
    double total = 0;
    for (float c : frames.data) total += c;
    fmt::print("wrote {}: frames [{}, 2, {}, {}] {}, {} events binned (split by {}{})\n", out,
               frames.frames, frames.height, frames.width, opt.dtype, total, opt.split,
               opt.dt_us ? fmt::format(", dt {} us", opt.dt_us) : std::string());
}

const RegisterCommand reg("events", [](CLI::App& app) {
    auto* events = app.add_subcommand(
        "events", "Event-camera recordings: inspect, convert between formats, bin into frames");
    events->require_subcommand(1);

    auto info_opt = std::make_shared<InfoOptions>();
    auto* info = events->add_subcommand(
        "info",
        "Format, sensor size, event count, time span, ON/OFF counts, rate and protocol "
        "violations of each file");
    info->add_option("files", info_opt->files, "Recordings (format detected from the bytes)")
        ->required();
    info->add_option("--json", info_opt->json,
                     "Write a JSON array with one object per file to FILE ('-' = stdout "
                     "instead of the text)");
    add_reader_flags(info, info_opt->reader);
    info->callback([info_opt] { run_info(*info_opt); });

    auto conv_opt = std::make_shared<ConvertOptions>();
    auto* conv = events->add_subcommand(
        "convert",
        "Convert a recording of any readable format to HDF5, N-MNIST .bin, EVT 2.0, text, CSV or "
        "AEDAT 4.0");
    conv->add_option("input", conv_opt->input, "Recording to read")->required();
    conv->add_option("output", conv_opt->output,
                     "File to write (format from the extension: .h5/.hdf5, .bin/.bs2, .raw, "
                     ".txt, .csv, .aedat4)")
        ->required();
    conv->add_option("--to", conv_opt->to,
                     "Output format: hdf5, nmnist, evt2, text, csv or aedat4 (LZ4 packets)")
        ->check(CLI::IsMember({"hdf5", "nmnist", "evt2", "text", "csv", "aedat4"}));
    add_reader_flags(conv, conv_opt->reader);
    conv->callback([conv_opt] { run_convert(*conv_opt); });

    auto fr_opt = std::make_shared<FramesOptions>();
    auto* fr = events->add_subcommand(
        "frames", "Bin a recording into T frames of per-pixel ON/OFF counts [T, 2, H, W] (HDF5)");
    fr->add_option("input", fr_opt->input, "Recording to read")->required();
    fr->add_option("--T", fr_opt->frames, "Number of frames (default 16)")->check(count_in(1));
    fr->add_option("--split", fr_opt->split,
                   "number: equal event counts, last frame takes the remainder (default); "
                   "time: equal durations; duration: T bins of --dt us from the first event, "
                   "later events unused (the bins of `evformer stream serve`)")
        ->check(CLI::IsMember({"number", "time", "duration"}));
    fr->add_option("--dt", fr_opt->dt_us, "--split duration: bin length in us")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    fr->add_option("--crop", fr_opt->crop, "Crop window X,Y,WIDTH,HEIGHT in sensor pixels");
    fr->add_option("--size", fr_opt->size,
                   "Output frame size WxH (down-sampling, e.g. 64x64 from 128x128)");
    fr->add_option("--dtype", fr_opt->dtype, "Element type of the tensor: f32 (default) or u16")
        ->check(CLI::IsMember({"f32", "u16"}));
    fr->add_option("-o,--output", fr_opt->output,
                   "HDF5 file to write (default: <input stem>.frames.h5 here)");
    add_reader_flags(fr, fr_opt->reader);
    fr->callback([fr_opt] { run_frames(*fr_opt); });
});

}  // namespace
}  // namespace evformer::tools
