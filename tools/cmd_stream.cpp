// `evformer stream serve MODEL.h5`: receives live events over UDP (SPIF/AEStream or faery words)
// and TCP (dv-processing's AEDAT 4.0 framing), simulates them window by window with the
// event-driven engine and prints one JSON line per window — class scores, prediction, events in,
// SOPs and energy per layer, latency — to stdout and to TCP subscribers; statistics every second.
// `evformer stream send FILE --to HOST:PORT`: replays a recording at its real pace, faster or as
// fast as possible, or serves it as a dv-processing TCP stream.
#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/weights.hpp"
#include "evformer/stream/sender.hpp"
#include "evformer/stream/server.hpp"
#include "option_groups.hpp"

namespace evformer::tools {
namespace {

io::Geometry parse_size(const std::string& text, const char* option) {
    const auto x = text.find('x');
    std::uint32_t w = 0, h = 0;
    bool ok = x != std::string::npos;
    if (ok) {
        const auto r1 = std::from_chars(text.data(), text.data() + x, w);
        const auto r2 = std::from_chars(text.data() + x + 1, text.data() + text.size(), h);
        ok = r1.ec == std::errc() && r1.ptr == text.data() + x && r2.ec == std::errc() &&
             r2.ptr == text.data() + text.size() && w > 0 && h > 0 && w <= 65536 && h <= 65536;
    }
    if (!ok) throw ConfigError(fmt::format("{} '{}': expected WxH, e.g. 128x128", option, text));
    return {w, h};
}

io::Aedat4Compression parse_compression(const std::string& s) {
    for (int c = 0; c <= 4; ++c)
        if (s == io::aedat4_compression_name(static_cast<io::Aedat4Compression>(c)))
            return static_cast<io::Aedat4Compression>(c);
    throw ConfigError(
        fmt::format("--compression '{}': expected none, lz4, lz4_high, zstd or zstd_high", s));
}

struct ServeOptions {
    std::string model;
    std::string bind = "127.0.0.1";
    int udp_port = 3333;
    bool no_udp = false;
    std::string udp_format = "spif";
    std::vector<std::string> connect;
    int tcp_port = -1;
    int publish_port = -1;
    // 0: the model's bin length when it was trained on duration bins, else 20000
    std::int64_t dt_us = 0;
    std::size_t window = 0;
    bool continuous = false;
    std::string sensor;
    std::size_t queue_events = std::size_t{1} << 22;
    int idle_flush_ms = 50;
    std::int64_t grace_us = 3000;
    bool no_deadline = false;
    double stats_interval = 1.0;
    std::size_t max_peers = 16;
    std::size_t publish_buffer = std::size_t{1} << 20;
    EnergyOptions energy;
};

void serve(const ServeOptions& opt) {
    const auto energy = opt.energy.model();
    const auto weights = models::load_weights(opt.model);
    const auto& spec = weights.spec;
    if (spec.in_channels != 2)
        throw ConfigError(
            fmt::format("{}: the model reads {} input channel(s) (an image model); "
                        "live event streams need an event model (2 channels)",
                        opt.model, spec.in_channels));
    const auto net = models::build_network(weights);
    stream::ServerOptions so;
    so.bind = opt.bind;
    so.udp_port = opt.no_udp ? -1 : opt.udp_port;
    so.udp_format = stream::parse_udp_format(opt.udp_format);
    so.connect = opt.connect;
    so.tcp_port = opt.tcp_port;
    so.publish_port = opt.publish_port;
    so.max_peers = opt.max_peers;
    so.subscriber_buffer = opt.publish_buffer;
    so.queue_events = opt.queue_events;
    so.idle_flush = std::chrono::milliseconds(opt.idle_flush_ms);
    so.deadlines = !opt.no_deadline;
    so.stats_interval_s = opt.stats_interval;
    so.energy = energy;
    auto& w = so.window;
    // A model trained on duration bins (train --split-by duration --dt) is served with them.
    w.dt_us = opt.dt_us ? opt.dt_us : spec.input_split_by == "duration" ? spec.input_dt_us : 20000;
    w.window_steps = opt.window;
    w.continuous = opt.continuous;
    w.grace_us = opt.grace_us;
    auto& f = w.frames;
    f.frames = spec.time_steps;
    f.crop_x = spec.input_crop[0];
    f.crop_y = spec.input_crop[1];
    f.crop_width = spec.input_crop[2];
    f.crop_height = spec.input_crop[3];
    f.out_width = static_cast<std::uint32_t>(spec.in_width);
    f.out_height = static_cast<std::uint32_t>(spec.in_height);
    f.sensor = opt.sensor.empty()
                   ? io::Geometry{f.crop_width ? f.crop_x + f.crop_width : f.out_width,
                                  f.crop_height ? f.crop_y + f.crop_height : f.out_height}
                   : parse_size(opt.sensor, "--sensor");
    f = io::resolve_frame_options(f);
    if (so.udp_port < 0 && so.tcp_port < 0 && so.connect.empty())
        throw ConfigError("nothing to receive: --no-udp without --tcp-port or --connect");
    stream::ServerOutput out;
    out.json_line = [](const std::string& line) {
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);
    };
    out.note = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    stream::StreamServer server(net, so, out);
    server.start(true);
    server.run();
}

struct SendCliOptions {
    std::string file;
    std::string to;
    std::string transport = "udp";
    std::string udp_format = "spif";
    bool no_timestamps = false;
    std::size_t datagram_bytes = 0;
    double speed = 1.0;
    int serve_tcp = -1;
    std::string bind = "127.0.0.1";
    std::size_t wait_clients = 1;
    std::size_t packet_events = 4096;
    std::string compression = "lz4";
    std::uint64_t limit = 0;
    std::string format, sensor;
    std::string json;
};

void send(const SendCliOptions& opt) {
    check_distinct_files({{"file", opt.file}}, {{"--json", opt.json}});
    prepare_outputs({{"--json", opt.json}});
    stream::SendOptions so;
    so.file = opt.file;
    so.reader.format = opt.format;
    if (!opt.sensor.empty()) so.reader.geometry = parse_size(opt.sensor, "--sensor");
    if (opt.serve_tcp >= 0) {
        if (!opt.to.empty()) throw ConfigError("--serve-tcp and --to: give one of them");
        so.serve_tcp_port = opt.serve_tcp;
        so.host = opt.bind;
    } else {
        if (opt.to.empty()) throw ConfigError("give --to HOST:PORT (or --serve-tcp PORT)");
        const auto [host, port] = stream::parse_host_port(opt.to, "--to");
        so.host = host;
        so.port = port;
    }
    so.transport = opt.transport == "tcp" ? stream::Transport::tcp : stream::Transport::udp;
    so.udp_format = stream::parse_udp_format(opt.udp_format);
    so.timestamps = !opt.no_timestamps;
    if (opt.no_timestamps && so.udp_format != stream::UdpFormat::spif)
        throw ConfigError("--no-timestamps applies to the spif format only");
    so.datagram_bytes = opt.datagram_bytes;
    so.speed = opt.speed;
    so.wait_clients = opt.wait_clients;
    so.packet_events = opt.packet_events;
    so.compression = parse_compression(opt.compression);
    so.limit_events = opt.limit;
    const auto r = stream::send_recording(so, [](int port) {
        std::fprintf(stderr, "stream send: serving the dv-processing TCP framing on port %d\n",
                     port);
        std::fflush(stderr);
    });
    const nlohmann::json j = {{"file", opt.file},
                              {"events", r.events},
                              {"packets", r.packets},
                              {"bytes", r.bytes},
                              {"seconds", r.seconds},
                              {"span_s", double(r.span_us) * 1e-6},
                              {"events_per_s", r.rate()},
                              {"pace", r.pace()},
                              {"dropped_packets", r.dropped_packets},
                              {"send_errors", r.send_errors},
                              {"clients", r.clients}};
    if (!opt.json.empty()) write_text(opt.json, j.dump(2) + "\n");
    if (opt.json != "-")
        fmt::print(
            "sent {} events in {} {} ({} bytes) in {:.3f} s: {:.0f} events/s, {:.2f}x the "
            "recording's pace{}{}\n",
            r.events, r.packets,
            opt.serve_tcp >= 0 || so.transport == stream::Transport::tcp ? "packets" : "datagrams",
            r.bytes, r.seconds, r.rate(), r.pace(),
            r.dropped_packets ? fmt::format("; {} packets not sent to clients that fell behind",
                                            r.dropped_packets)
                              : "",
            r.send_errors ? fmt::format("; {} datagrams refused (nobody listening)", r.send_errors)
                          : "");
}

const RegisterCommand reg("stream", [](CLI::App& app) {
    auto* group = app.add_subcommand(
        "stream",
        "Live event streams: simulate events received over the network, or send a "
        "recording");
    group->require_subcommand(1);

    auto so = std::make_shared<ServeOptions>();
    auto* serve_cmd = group->add_subcommand(
        "serve",
        "Receive events (UDP: SPIF/AEStream or faery words; TCP: dv-processing AEDAT 4.0 "
        "framing), simulate them window by window and print one JSON line per window");
    serve_cmd->add_option("model", so->model, "Event model weights (HDF5), 2 input channels")
        ->required();
    serve_cmd->add_option("--bind", so->bind,
                          "Address to listen on (default 127.0.0.1; 0.0.0.0 for a camera on "
                          "the network)");
    serve_cmd->add_option("--udp-port", so->udp_port, "UDP port (default 3333; 0 = any free port)")
        ->check(CLI::Range(0, 65535));
    serve_cmd->add_flag("--no-udp", so->no_udp, "Do not receive UDP");
    serve_cmd
        ->add_option("--udp-format", so->udp_format,
                     "UDP words: spif (AEStream, default), t64_x16_y16_on8, t32_x16_y15_on1 "
                     "(faery)")
        ->check(CLI::IsMember({"spif", "t64_x16_y16_on8", "t32_x16_y15_on1"}));
    serve_cmd->add_option("--connect", so->connect,
                          "Read a dv-processing TCP stream from HOST:PORT (repeatable; "
                          "reconnects every second)");
    serve_cmd
        ->add_option("--tcp-port", so->tcp_port,
                     "Accept dv-processing TCP senders on this port (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    serve_cmd
        ->add_option("--publish", so->publish_port,
                     "Send every JSON line to TCP subscribers of this port (0 = any free "
                     "port)")
        ->check(CLI::Range(0, 65535));
    serve_cmd
        ->add_option("--dt", so->dt_us,
                     "Bin length = one time step, us (default: the model's when it was "
                     "trained with --split-by duration, else 20000)")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    serve_cmd->add_option("--window", so->window, "Steps per result (default: the model's T)")
        ->check(count_in(1, 1u << 20));
    serve_cmd->add_flag("--continuous", so->continuous,
                        "Keep membrane state from window to window (default: reset)");
    serve_cmd->add_option("--sensor", so->sensor,
                          "Sensor size WxH of the incoming events (default: the model's input "
                          "or crop); events are cropped (model's crop) and down-sampled to the "
                          "model's input");
    serve_cmd
        ->add_option("--queue-events", so->queue_events,
                     "Capacity of the queue between network and simulation, events "
                     "(default 4194304); whole packets beyond it are dropped and counted")
        ->check(count_in(1, 1u << 30));
    serve_cmd
        ->add_option("--idle-flush-ms", so->idle_flush_ms,
                     "Close a window after this long without events (default 50; 0 = never)")
        ->check(CLI::Range(0, 3600000));
    serve_cmd
        ->add_option("--grace-us", so->grace_us,
                     "Close each bin (and window) once the wall clock is this far past its end, "
                     "mapped from the arrivals, at least (default 3000); later events of it are "
                     "late")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{3'600'000'000}));
    serve_cmd->add_flag("--no-deadline", so->no_deadline,
                        "Close bins and windows only on a later event or the idle flush");
    serve_cmd
        ->add_option("--stats-interval", so->stats_interval,
                     "Seconds between statistics lines (default 1; 0 = only at exit)")
        ->check(CLI::Range(0.0, 86400.0));
    serve_cmd->add_option("--max-peers", so->max_peers, "TCP senders at once (default 16)")
        ->check(count_in(1, 4096));
    serve_cmd
        ->add_option("--publish-buffer", so->publish_buffer,
                     "Unsent bytes kept per subscriber (default 1048576); lines beyond "
                     "it are dropped for that subscriber and counted")
        ->check(count_in(1024, 1u << 30));
    add_energy_options(serve_cmd, so->energy);
    serve_cmd->callback([so] { serve(*so); });

    auto se = std::make_shared<SendCliOptions>();
    auto* send_cmd = group->add_subcommand(
        "send",
        "Replay a recording over the network at its pace (--speed 1), faster, or as fast as "
        "possible (--speed 0); or serve it as a dv-processing TCP stream (--serve-tcp)");
    send_cmd->add_option("file", se->file, "Recording (any readable format)")->required();
    send_cmd->add_option("--to", se->to, "Receiver HOST:PORT");
    send_cmd
        ->add_option("--transport", se->transport,
                     "udp (default) or tcp (dv-processing framing to a --tcp-port)")
        ->check(CLI::IsMember({"udp", "tcp"}));
    send_cmd
        ->add_option("--udp-format", se->udp_format,
                     "spif (default), t64_x16_y16_on8 or t32_x16_y15_on1")
        ->check(CLI::IsMember({"spif", "t64_x16_y16_on8", "t32_x16_y15_on1"}));
    send_cmd->add_flag("--no-timestamps", se->no_timestamps,
                       "spif: send words without timestamps (the receiver stamps them)");
    send_cmd
        ->add_option("--datagram-bytes", se->datagram_bytes,
                     "UDP payload per datagram (default 512 for spif, 1209/1208 for faery)")
        ->check(count_in(1, 65507));
    send_cmd
        ->add_option("--speed", se->speed,
                     "Pace: 1 = real time (default), 10 = ten times faster, 0 = as fast as "
                     "possible")
        ->check(CLI::Range(0.0, 1e9));
    send_cmd
        ->add_option("--serve-tcp", se->serve_tcp,
                     "Serve the dv-processing TCP framing on this port (0 = any free port) "
                     "instead of sending")
        ->check(CLI::Range(0, 65535));
    send_cmd->add_option("--bind", se->bind, "Address of --serve-tcp (default 127.0.0.1)");
    send_cmd
        ->add_option("--wait-clients", se->wait_clients,
                     "--serve-tcp: clients to wait for before replaying (default 1)")
        ->check(count_in(0, 4096));
    send_cmd
        ->add_option("--packet-events", se->packet_events,
                     "TCP: events per packet at most (default 4096)")
        ->check(count_in(1, 1u << 20));
    send_cmd->add_option("--compression", se->compression,
                         "TCP packet bodies: none, lz4 (default), lz4_high, zstd, zstd_high");
    send_cmd->add_option("--limit", se->limit, "Send only the first N events (0 = all)")
        ->check(count_in(0, std::numeric_limits<std::uint32_t>::max()));
    send_cmd->add_option("--format", se->format, "Force the recording's format");
    send_cmd->add_option("--sensor", se->sensor,
                         "Sensor size WxH when the recording does not state it");
    send_cmd->add_option("--json", se->json, "Write the report as JSON to FILE ('-' = stdout)");
    send_cmd->callback([se] { send(*se); });
});

}  // namespace
}  // namespace evformer::tools
