// `evformer bench stream`: the live-stream path measured in one process, each figure beside a
// baseline run side by side.
//  1. Receive path: SPIF datagrams (512 bytes = 64 events with timestamps, as AEStream sends
//     them, and 8 KiB) over loopback into the server's receiver (decode + bounded queue;
//     simulation off), against a bare recvmmsg loop on an identical socket (no decoding, no
//     queue), both fed by the same sender as fast as it goes; then paced senders at rising rates:
//     the highest rate whose events all arrived (no kernel, queue or decode drop).
//  2. Simulation: the shipped event model over real recordings as a stream (windows of `--dt`
//     bins), also compressed in time to about 1 M events/s: real-time factor = event time /
//     simulation time, beside the offline engine
//     (Simulator::run_events on the same windows, pre-binned) — the stream's binning overhead.
//  3. Window latency over loopback: the shipped recordings replayed into a running server at their
//     pace (back to back, and with a silent window after each so that windows close by their
//     deadline; once more without deadlines), compressed in time to ~1 M events/s at its pace,
//     and replayed 10x and 30x; median and 99th percentile from the arrival of a window's last
//     event to its result, and the server's share (from the moment the window could be closed),
//     with the parts (wait, hand-off, closing, JSON, output).
// Boost 1.74's Asio uses std::exchange without including <utility> (fails with GCC 12, C++20).
#include <utility>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/io/events_dataset.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/builder_run.hpp"
#include "evformer/models/trainer.hpp"
#include "evformer/models/weights.hpp"
#include "evformer/stream/sender.hpp"
#include "evformer/stream/server.hpp"

namespace evformer::tools {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct BenchStreamOptions {
    std::string model = "examples/models/nmnist-ssa-bin.h5";
    std::string data = EVFORMER_EVENTS_DATA_DEFAULT;
    std::uint64_t events = 20'000'000;
    std::int64_t dt_us = 20000;
    double latency_seconds = 6;
    std::int64_t grace_us = -1;  // -1: the server's default
    std::vector<std::string> parts{"receive", "simulation", "latency"};
    std::string json;
};

// A temporary folder removed on destruction.
struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() /
               fmt::format("evformer-bench-stream-{}", Clock::now().time_since_epoch().count());
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// The shipped N-MNIST recordings as one stream: recording k starts one window (16 bins) after
// recording k − 1, repeated until `count` events (with `whole`: until the end of that recording).
std::vector<io::Event> nmnist_stream(const std::string& folder, std::int64_t window_us,
                                     std::uint64_t count, bool whole = false) {
    io::EventDatasetOptions o;
    const auto ds = io::open_event_dataset(folder, o);
    std::vector<io::Event> out;
    std::int64_t start = 0;
    while (out.size() < count) {
        for (const auto& s : ds.test) {
            auto ev = ds.load(s);
            if (ev.empty()) continue;
            const auto shift = start - ev.front().t;
            for (auto& e : ev) {
                e.t += shift;
                out.push_back(e);
                if (out.size() == count && !whole) return out;
            }
            if (out.size() >= count) return out;
            start += window_us;
        }
    }
    return out;
}

double span_s(const std::vector<io::Event>& ev) {
    return ev.empty() ? 0 : double(ev.back().t - ev.front().t) * 1e-6;
}

// A server on loopback in its own thread.
struct RunningServer {
    stream::StreamServer server;
    stream::BoundPorts ports;
    std::thread thread;
    std::vector<std::string> lines;
    std::mutex mutex;
    RunningServer(const sim::Network& net, stream::ServerOptions o)
        : server(net, std::move(o),
                 stream::ServerOutput{[this](const std::string& l) {
                                          std::lock_guard lock(mutex);
                                          lines.push_back(l);
                                      },
                                      {}}) {
        ports = server.start(false);
        thread = std::thread([this] { server.run(); });
    }
    json finish() {
        server.stop();
        thread.join();
        return json::parse(server.summary());
    }
    std::vector<json> windows() {
        std::vector<json> w;
        std::lock_guard lock(mutex);
        for (const auto& l : lines)
            if (l.find("\"type\":\"window\"") != std::string::npos) w.push_back(json::parse(l));
        return w;
    }
};

stream::ServerOptions server_options(const models::ModelSpec& spec, std::int64_t dt) {
    stream::ServerOptions so;
    so.udp_port = 0;
    so.stats_interval_s = 0;
    so.udp_receive_buffer = std::size_t{32} << 20;
    so.window.dt_us = dt;
    auto& f = so.window.frames;
    f.sensor = {static_cast<std::uint32_t>(spec.in_width),
                static_cast<std::uint32_t>(spec.in_height)};
    f.out_width = static_cast<std::uint32_t>(spec.in_width);
    f.out_height = static_cast<std::uint32_t>(spec.in_height);
    f = io::resolve_frame_options(f);
    return so;
}

// The bare baseline: recvmmsg into a buffer until `expected` events or 1.5 s of silence.
struct RawResult {
    std::uint64_t events = 0;
    double seconds = 0;
    std::uint32_t kernel_drops = 0;
};
RawResult raw_receive(int fd, std::uint64_t expected) {
    constexpr std::size_t batch = 32, size = 65536;
    std::vector<std::uint8_t> buf(batch * size);
    std::array<mmsghdr, batch> msgs{};
    std::array<iovec, batch> iov{};
    std::array<std::array<char, CMSG_SPACE(sizeof(std::uint32_t))>, batch> ctl{};
    RawResult r;
    Clock::time_point first{}, last = Clock::now();
    bool started = false;
    while (r.events < expected) {
        for (std::size_t i = 0; i < batch; ++i) {
            iov[i] = {buf.data() + i * size, size};
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctl[i].data();
            msgs[i].msg_hdr.msg_controllen = ctl[i].size();
        }
        // Blocks for the first datagram (the socket's receive timeout is 100 ms), so that
        // waiting costs no CPU, as the server's receiver waits in epoll.
        const int n = ::recvmmsg(fd, msgs.data(), batch, MSG_WAITFORONE, nullptr);
        if (n <= 0) {
            if (Clock::now() - last > std::chrono::milliseconds(1500)) break;
            continue;
        }
        last = Clock::now();
        if (!started) started = true, first = last;
        for (int i = 0; i < n; ++i) {
            r.events += msgs[std::size_t(i)].msg_len / 8;
            auto& h = msgs[std::size_t(i)].msg_hdr;
            for (cmsghdr* cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm))
                if (cm->cmsg_type == SO_RXQ_OVFL)
                    std::memcpy(&r.kernel_drops, CMSG_DATA(cm), sizeof r.kernel_drops);
        }
    }
    r.seconds = std::chrono::duration<double>(last - first).count();
    return r;
}

double cpu_seconds(int who) {
    rusage u{};
    getrusage(who, &u);
    return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// The bench's own sender: SPIF datagrams encoded once in memory and sent with sendmmsg in batches
// of 64, flat out or paced at `rate` events/s, so that the receive path is measured with a sender
// that costs only its system calls (no file reading, no encoding). Its CPU time is its thread's.
struct MemSend {
    std::uint64_t events = 0, datagrams = 0, refused = 0;
    double seconds = 0, cpu_s = 0;
    double rate() const { return seconds > 0 ? double(events) / seconds : 0; }
};
MemSend send_datagrams(const std::vector<std::uint8_t>& bytes, std::size_t datagram, int port,
                       double rate, std::uint64_t limit_events) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int sndbuf = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        ::close(fd);
        throw NetworkError("bench stream: cannot connect a UDP socket to the loopback");
    }
    const std::size_t per = datagram / 8;
    std::size_t total = bytes.size() / datagram;
    if (limit_events) total = std::min<std::size_t>(total, (limit_events + per - 1) / per);
    constexpr std::size_t batch = 64;
    std::array<mmsghdr, batch> msgs{};
    std::array<iovec, batch> iov{};
    MemSend r;
    const double cpu0 = cpu_seconds(RUSAGE_THREAD);
    const auto start = Clock::now();
    for (std::size_t i = 0; i < total;) {
        const std::size_t n = std::min(batch, total - i);
        if (rate > 0) {  // the batch goes out when its last datagram is due
            const auto due = start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                         double((i + n) * per) / rate * 1e9));
            if (due > Clock::now()) std::this_thread::sleep_until(due);
        }
        for (std::size_t k = 0; k < n; ++k) {
            iov[k] = {const_cast<std::uint8_t*>(bytes.data() + (i + k) * datagram), datagram};
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        std::size_t done = 0;
        while (done < n) {
            const int m = ::sendmmsg(fd, msgs.data() + done, static_cast<unsigned>(n - done), 0);
            if (m < 0) {
                if (errno == EINTR) continue;
                ++r.refused;  // nobody listening: that datagram is lost
                ++done;
                continue;
            }
            done += std::size_t(m);
        }
        i += n;
        r.datagrams += n;
        r.events += n * per;
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    r.cpu_s = cpu_seconds(RUSAGE_THREAD) - cpu0;
    ::close(fd);
    return r;
}

void bench(const BenchStreamOptions& opt) {
    check_distinct_files({{"model", opt.model}}, {{"--json", opt.json}});
    prepare_outputs({{"--json", opt.json}});
    auto say = [&](const std::string& s) {
        std::fprintf(opt.json == "-" ? stderr : stdout, "%s", s.c_str());
        std::fflush(opt.json == "-" ? stderr : stdout);
    };
    const auto weights = models::load_weights(opt.model);
    const auto& spec = weights.spec;
    if (spec.in_channels != 2) throw ConfigError(opt.model + ": bench stream needs an event model");
    const auto net = models::build_network(weights);
    const std::int64_t window_us = opt.dt_us * std::int64_t(spec.time_steps);
    const std::string nmnist = fs::exists(fs::path(opt.data) / "nmnist_test100")
                                   ? (fs::path(opt.data) / "nmnist_test100").string()
                                   : "examples/data/nmnist_test100";
    json report = {{"model", opt.model}, {"dt_us", opt.dt_us}};
    TempDir tmp;

    auto wanted = [&](const char* part) {
        return std::find(opt.parts.begin(), opt.parts.end(), part) != opt.parts.end();
    };
    // Replays go through EVT 2.0 files (fast to decode, so the sender's reading costs little).
    io::WriterOptions wo;
    wo.geometry = {34, 34};
    std::size_t datagram = 512;
    auto send_file = [&](const fs::path& file, int port, double speed, std::uint64_t limit = 0) {
        stream::SendOptions so;
        so.file = file.string();
        so.port = static_cast<std::uint16_t>(port);
        so.speed = speed;
        so.limit_events = limit;
        so.datagram_bytes = datagram;
        return stream::send_recording(so);
    };
    // ---- 1. receive path ------------------------------------------------------------------
    if (wanted("receive")) {
        say(fmt::format("receive path: {} events as SPIF words with timestamps over loopback\n",
                        opt.events));
        const auto ev = nmnist_stream(nmnist, window_us, opt.events);
        const auto file = tmp.path / "stream.raw";
        io::write_event_file(file, ev, "evt2", wo);
        // The server's receiver (simulation off) fed by `sender`; its CPU time is the process's
        // minus the sender's thread's (the main thread sleeps).
        auto ours = [&](auto&& sender) {
            auto so = server_options(spec, opt.dt_us);
            so.simulate = false;
            RunningServer s(net, so);
            const double cpu0 = cpu_seconds(RUSAGE_SELF);
            const auto sent = sender(s.ports.udp);
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            auto sum = s.finish();
            // NaN when the sender's share is not known (`stream send` runs in this thread).
            const double server_cpu = cpu_seconds(RUSAGE_SELF) - cpu0 - sent.cpu_s;
            const std::uint64_t got = sum["received"];
            const std::uint64_t lost = sent.events - got;
            return json{{"offered_events_per_s", sent.rate()},
                        {"sent", sent.events},
                        {"received", got},
                        {"lost", lost},
                        {"dropped_kernel_datagrams", sum["dropped_kernel_datagrams"]},
                        {"dropped_queue_events", sum["dropped_queue_events"]},
                        {"received_events_per_s", double(got) / sent.seconds},
                        {"sender_cpu_s", sent.cpu_s},
                        {"server_cpu_s", server_cpu},
                        {"server_ns_per_event",
                         server_cpu * 1e9 / double(std::max<std::uint64_t>(got, 1))}};
        };
        // `stream send` as users run it (reads the EVT 2.0 file, encodes, sendmmsg).
        auto recording = [&](double speed) {
            return [&, speed](int port) {
                const auto r = send_file(file, port, speed);
                MemSend m;
                m.events = r.events;
                m.seconds = r.seconds;
                m.cpu_s = std::nan("");  // the sender's share is not known here
                return m;
            };
        };
        std::vector<std::uint8_t> bytes;
        auto memory = [&](double rate, std::uint64_t limit = 0) {
            return [&, rate, limit](int port) {
                MemSend m;
                std::thread t([&] { m = send_datagrams(bytes, datagram, port, rate, limit); });
                t.join();
                return m;
            };
        };
        auto raw = [&] {
            boost::asio::io_context io;
            boost::asio::ip::udp::socket sock(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
            const int fd = sock.native_handle();
            int size = 32 << 20;
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
            const int one = 1;
            ::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
            const timeval wait{0, 100000};  // the receive timeout of the blocking baseline
            ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
            RawResult rr;
            const std::uint64_t expected = bytes.size() / datagram * (datagram / 8);
            std::thread rx([&] { rr = raw_receive(fd, expected); });
            const auto sent = memory(0)(sock.local_endpoint().port());
            rx.join();
            return json{{"sent", sent.events},
                        {"received", rr.events},
                        {"lost", sent.events - rr.events},
                        {"dropped_kernel_datagrams", rr.kernel_drops},
                        {"received_events_per_s", double(rr.events) / sent.seconds},
                        {"offered_events_per_s", sent.rate()}};
        };
        json receive = json::array();
        double best_any = 0;
        for (std::size_t size : {std::size_t{512}, std::size_t{8192}}) {
            datagram = size;
            // The datagrams, encoded once (whole datagrams only).
            const std::size_t per = size / 8, n = ev.size() / per;
            bytes.assign(n * size, 0);
            stream::encode_records(stream::UdpFormat::spif, true, std::span(ev).first(n * per),
                                   bytes.data());
            say(fmt::format(" datagrams of {} bytes ({} events):\n", size, per));
            json max_ours = ours(memory(0)), max_raw = raw(), max_file = ours(recording(0));
            auto line = [&](const char* what, const json& r) {
                say(fmt::format(
                    "  {}: {:.2f} M ev/s received ({} of {} lost); server CPU {:.1f} ns/event "
                    "= {:.1f} M ev/s per core\n",
                    what, r["received_events_per_s"].get<double>() / 1e6,
                    r["lost"].get<std::uint64_t>(), r["sent"].get<std::uint64_t>(),
                    r["server_ns_per_event"].get<double>(),
                    1e3 / std::max(r["server_ns_per_event"].get<double>(), 1e-9)));
            };
            line("in-memory sender flat out", max_ours);
            say(
                fmt::format("  bare recvmmsg loop, same sender: {:.2f} M ev/s ({} lost); "
                            "server/bare {:.2f}x\n",
                            max_raw["received_events_per_s"].get<double>() / 1e6,
                            max_raw["lost"].get<std::uint64_t>(),
                            max_ours["received_events_per_s"].get<double>() /
                                std::max(max_raw["received_events_per_s"].get<double>(), 1.0)));
            say(fmt::format(
                "  `stream send` (reads the EVT 2.0 file, encodes) flat out: {:.2f} M "
                "ev/s received ({} of {} lost)\n",
                max_file["received_events_per_s"].get<double>() / 1e6,
                max_file["lost"].get<std::uint64_t>(), max_file["sent"].get<std::uint64_t>()));
            json paced = json::array();
            double best = 0;
            for (double target : {2e6, 5e6, 10e6, 20e6, 30e6, 40e6, 60e6}) {
                auto r = ours(memory(
                    target, std::min<std::uint64_t>(ev.size(), std::uint64_t(target * 1.5))));
                r["target_events_per_s"] = target;
                const bool clean = r["lost"].get<std::uint64_t>() == 0;
                say(fmt::format(
                    "  paced at {:>4.0f} M ev/s: offered {:.2f} M ev/s, received {:.2f} M "
                    "ev/s, lost {}{}\n",
                    target / 1e6, r["offered_events_per_s"].get<double>() / 1e6,
                    r["received_events_per_s"].get<double>() / 1e6, r["lost"].get<std::uint64_t>(),
                    clean ? "" : " (drops)"));
                if (clean) best = std::max(best, r["received_events_per_s"].get<double>());
                paced.push_back(r);
                if (!clean || r["offered_events_per_s"].get<double>() < 0.8 * target) break;
            }
            say(fmt::format("  highest rate received without a drop: {:.2f} M ev/s\n", best / 1e6));
            best_any = std::max(best_any, best);
            receive.push_back({{"datagram_bytes", size},
                               {"as_fast_as_possible", max_ours},
                               {"baseline_raw_recvmmsg", max_raw},
                               {"stream_send_flat_out", max_file},
                               {"paced", paced},
                               {"max_events_per_s_without_drops", best}});
        }
        say(fmt::format(" receive path, best drop-free rate: {:.2f} M ev/s (goal >= 20)\n",
                        best_any / 1e6));
        report["receive"] = receive;
    }

    // ---- 2. simulation real-time factor -----------------------------------------------------
    if (wanted("simulation")) {
        say(fmt::format("simulation: {} as a stream, dt {} us, windows of {} steps, one core\n",
                        opt.model, opt.dt_us, spec.time_steps));
        json sims = json::array();
        auto measure = [&](const std::string& name, std::vector<io::Event> events,
                           io::Geometry sensor) {
            auto so = server_options(spec, opt.dt_us);
            so.window.frames.sensor = sensor;
            so.window.frames.crop_width = so.window.frames.crop_height = 0;
            so.window.frames = io::resolve_frame_options(so.window.frames);
            // Stream: the runner over packets of 64 events.
            std::vector<sim::SampleResult> results;
            stream::WindowRunner runner(net, so.window, [&](stream::WindowResult&& w) {
                results.push_back(std::move(w.result));
            });
            const auto t = Clock::now();
            for (std::size_t at = 0; at < events.size(); at += 64)
                runner.add(
                    std::span(events).subspan(at, std::min<std::size_t>(64, events.size() - at)),
                    Clock::now());
            runner.flush();
            const double stream_s = std::chrono::duration<double>(Clock::now() - t).count();
            // Baseline: the same windows pre-binned, through Simulator::run_events.
            std::vector<std::vector<sim::EventList>> windows;
            {
                const io::PixelMap map(so.window.frames);
                const std::size_t plane = spec.in_height * spec.in_width;
                const std::int64_t t0 = events.front().t;
                std::vector<std::vector<std::uint16_t>> counts;
                for (const auto& e : events) {
                    if (e.x >= sensor.width || e.y >= sensor.height || !map.keeps(e.x, e.y))
                        continue;
                    const auto step = std::size_t((e.t - t0) / opt.dt_us);
                    if (counts.size() <= step) counts.resize(step + 1);
                    auto& c = counts[step];
                    if (c.empty()) c.assign(2 * plane, 0);
                    auto& v = c[e.p * plane + map.out_y(e.y) * spec.in_width + map.out_x(e.x)];
                    if (v < 65535) ++v;
                }
                const std::size_t T = spec.time_steps;
                counts.resize((counts.size() + T - 1) / T * T);
                for (std::size_t w = 0; w * T < counts.size(); ++w) {
                    bool any = false;
                    std::vector<sim::EventList> lists(T);
                    for (std::size_t s = 0; s < T; ++s)
                        for (std::uint32_t i = 0; i < counts[w * T + s].size(); ++i)
                            if (counts[w * T + s][i]) {
                                lists[s].push(
                                    std::uint32_t(i % plane) * 2 + i / std::uint32_t(plane),
                                    counts[w * T + s][i]);
                                any = true;
                            }
                    if (any) windows.push_back(std::move(lists));
                }
            }
            sim::Simulator simulator(net);
            const auto t2 = Clock::now();
            std::uint64_t sops = 0;
            for (const auto& w : windows) {
                const auto r = simulator.run_events(w);
                sops += r.total().sops;
            }
            const double offline_s = std::chrono::duration<double>(Clock::now() - t2).count();
            const double span = span_s(events);
            const double rate = double(events.size()) / std::max(span, 1e-9);
            json j = {{"recording", name},
                      {"sensor", {sensor.width, sensor.height}},
                      {"events", events.size()},
                      {"span_s", span},
                      {"events_per_s", rate},
                      {"windows", results.size()},
                      {"offline_windows", windows.size()},
                      {"stream_s", stream_s},
                      {"offline_s", offline_s},
                      {"realtime_factor", span / stream_s},
                      {"offline_realtime_factor", span / offline_s},
                      {"stream_vs_offline", offline_s / stream_s},
                      {"sops_per_s_of_events", double(sops) / std::max(span, 1e-9)}};
            say(
                fmt::format("  {:<44} {:>9.0f} ev/s  {:>5} windows  real-time factor {:>7.1f}x "
                            "(offline engine {:>7.1f}x, stream/offline speed {:.2f})\n",
                            name, rate, results.size(), span / stream_s, span / offline_s,
                            offline_s / stream_s));
            sims.push_back(j);
        };
        measure("nmnist_test100 (shipped, 100 recordings)",
                nmnist_stream(nmnist, window_us, 385'000), {34, 34});
        // The same recordings compressed in time to about 1 M events/s (a DVS128-class rate).
        {
            auto fast = nmnist_stream(nmnist, window_us, 4'000'000);
            const double factor = 1e6 / (double(fast.size()) / span_s(fast));
            for (auto& e : fast) e.t = std::int64_t(double(e.t) / factor);
            measure(fmt::format("nmnist_test100 compressed {:.0f}x (~1 M ev/s)", factor), fast,
                    {34, 34});
        }
        for (const char* name :
             {"aedat4_davis346_trimmed_evl.aedat4", "aedat4_dvxplorer_320x240_tonic.aedat4",
              "dat_ncars_atis_tonic.dat", "evt3_gen41_hd_expelliarmus.raw"}) {
            const auto path = fs::path(opt.data) / name;
            if (!fs::exists(path)) continue;
            auto reader = io::open_event_file(path);
            auto events = io::read_all(*reader);
            if (events.size() < 1000 || !reader->geometry().known()) continue;
            measure(fmt::format("{} ({}x{} -> 34x34)", name, reader->geometry().width,
                                reader->geometry().height),
                    std::move(events), reader->geometry());
        }
        report["simulation"] = sims;
    }

    // ---- 3. window latency ---------------------------------------------------------------------
    if (wanted("latency")) {
        json lat = json::array();
        struct Run {
            std::string name;
            std::int64_t spacing;  // windows from one recording's start to the next
            double compress;       // event time divided by this (1: the recordings' own rate)
            double speed;          // the sender's pace
            int idle_flush_ms;     // 0: off
            bool deadlines;
        };
        const std::vector<Run> runs{
            {"N-MNIST 1x (12 k ev/s), back to back", 1, 1, 1, 0, true},
            {"N-MNIST 1x, a silent window after each", 2, 1, 1, 0, true},
            {"the same without deadlines (idle flush 50 ms)", 2, 1, 1, 50, false},
            {"N-MNIST compressed 83x (~1 M ev/s), 1x", 1, 83, 1, 0, true},
            {"N-MNIST replayed 10x (idle flush 50 ms)", 1, 1, 10, 50, true},
            {"N-MNIST replayed 30x (idle flush 50 ms)", 1, 1, 30, 50, true},
        };
        for (const auto& run : runs) {
            const double rate = 12'600 * run.compress * run.speed;  // events per wall second
            // Whole recordings: the last window ends in its recording's silence like the others.
            auto events = nmnist_stream(nmnist, window_us * run.spacing,
                                        std::uint64_t(opt.latency_seconds * rate), true);
            if (run.compress != 1)
                for (auto& e : events) e.t = std::int64_t(double(e.t) / run.compress);
            const auto f = tmp.path / "latency.raw";
            io::write_event_file(f, events, "evt2", wo);
            auto so = server_options(spec, opt.dt_us);
            so.idle_flush = std::chrono::milliseconds(run.idle_flush_ms);
            so.deadlines = run.deadlines;
            if (opt.grace_us >= 0) so.window.grace_us = opt.grace_us;
            RunningServer s(net, so);
            datagram = 512;
            const auto sent = send_file(f, s.ports.udp, run.speed);
            // Long enough for the last window's deadline (a window + its grace) or idle flush.
            std::this_thread::sleep_for(std::chrono::microseconds(window_us) +
                                        std::chrono::milliseconds(300));
            auto sum = s.finish();
            const auto windows = s.windows();
            // Per closing (event, deadline, flush), and all together; windows closed when the
            // server stopped (none, normally) are left out. After the window's end: the latency
            // less the silence between the window's last event and its end (event time at the
            // sender's pace).
            struct Figures {
                std::vector<double> latency, after, server;
            };
            std::map<std::string, Figures> by;
            for (const auto& w : windows) {
                const std::string c = w["closed_by"];
                if (c == "flush" && !run.idle_flush_ms) continue;
                const double silence_ms = double(w["t_end_us"].get<std::int64_t>() -
                                                 w["t_last_event_us"].get<std::int64_t>()) *
                                          1e-3 / run.speed;
                for (auto* fig : {&by[c], &by["all"]}) {
                    fig->latency.push_back(w["latency_ms"].get<double>());
                    fig->after.push_back(w["latency_ms"].get<double>() - silence_ms);
                    fig->server.push_back(w["server_ms"].get<double>());
                }
            }
            auto pct = [](std::vector<double> v, double q) {
                if (v.empty()) return 0.0;
                std::sort(v.begin(), v.end());
                return v[std::size_t(q * double(v.size() - 1) + 0.5)];
            };
            auto stats = [&](const std::vector<double>& v) {
                return json{{"median", pct(v, 0.5)}, {"p99", pct(v, 0.99)}, {"max", pct(v, 1)}};
            };
            json closings = json::object();
            for (const auto& [c, fig] : by)
                closings[c] = {{"windows", fig.latency.size()},
                               {"latency_ms", stats(fig.latency)},
                               {"after_end_ms", stats(fig.after)},
                               {"server_ms", stats(fig.server)}};
            json j = {{"name", run.name},
                      {"speed", run.speed},
                      {"events_per_s", sent.rate()},
                      {"deadlines", run.deadlines},
                      {"idle_flush_ms", run.idle_flush_ms},
                      {"events", sent.events},
                      {"received", sum["received"]},
                      {"dropped_late", sum["dropped_late"]},
                      {"windows", windows.size()},
                      {"by_closing", closings},
                      {"latency_parts_ms", sum["latency_parts_ms"]},
                      {"deadline_after_end_us", sum["deadline_after_end_us"]},
                      {"realtime_factor", sum["realtime_factor"]}};
            say(fmt::format(
                "latency, {}: {:.0f} ev/s, {} windows, {} late events; real-time "
                "factor {:.1f}x\n",
                run.name, sent.rate(), windows.size(), sum["dropped_late"].get<std::uint64_t>(),
                sum["realtime_factor"].get<double>()));
            for (const auto& [c, fig] : by)
                say(fmt::format(
                    "  {:>8} {:>4} windows, median / p99 / max ms: from the last event {:.2f} / "
                    "{:.2f} / {:.2f}; after the window's end {:.2f} / {:.2f} / {:.2f}; server's "
                    "share {:.2f} / {:.2f} / {:.2f}\n",
                    c, fig.latency.size(), pct(fig.latency, 0.5), pct(fig.latency, 0.99),
                    pct(fig.latency, 1), pct(fig.after, 0.5), pct(fig.after, 0.99),
                    pct(fig.after, 1), pct(fig.server, 0.5), pct(fig.server, 0.99),
                    pct(fig.server, 1)));
            const auto& parts = sum["latency_parts_ms"];
            say(fmt::format(
                "  parts, median / p99 ms: wait {:.2f} / {:.2f}, hand-off {:.3f} / {:.3f}, "
                "closing {:.3f} / {:.3f}, JSON {:.3f} / {:.3f}, output {:.3f} / {:.3f}\n",
                parts["wait"]["median"].get<double>(), parts["wait"]["p99"].get<double>(),
                parts["handoff"]["median"].get<double>(), parts["handoff"]["p99"].get<double>(),
                parts["close"]["median"].get<double>(), parts["close"]["p99"].get<double>(),
                parts["json"]["median"].get<double>(), parts["json"]["p99"].get<double>(),
                parts["output"]["median"].get<double>(), parts["output"]["p99"].get<double>()));
            lat.push_back(j);
        }
        report["latency"] = lat;
    }
    if (!opt.json.empty()) write_text(opt.json, report.dump(2) + "\n");
}

const RegisterCommand reg("bench stream", [](CLI::App& app) {
    auto opt = std::make_shared<BenchStreamOptions>();
    auto* cmd = bench_group(app)->add_subcommand(
        "stream",
        "Live streams: events/s received on loopback (vs a bare recvmmsg loop), real-time factor "
        "of the shipped event model on real recordings (vs the offline engine), window latency");
    cmd->add_option("model", opt->model, "Event model (default examples/models/nmnist-ssa-bin.h5)");
    cmd->add_option("--data", opt->data, "Folder of the shared event recordings");
    cmd->add_option("--events", opt->events, "Events per receive run (default 20000000)")
        ->check(count_in(1000, 1u << 30));
    cmd->add_option("--dt", opt->dt_us, "Bin length, us (default 20000)")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    cmd->add_option("--latency-seconds", opt->latency_seconds,
                    "Event time replayed per latency run (default 6)")
        ->check(CLI::Range(0.5, 600.0));
    cmd->add_option("--grace-us", opt->grace_us,
                    "Latency runs: the servers' --grace-us (default: the server's default)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{10'000'000}));
    cmd->add_option("--parts", opt->parts,
                    "Which measurements: receive, simulation, latency (default all)")
        ->check(CLI::IsMember({"receive", "simulation", "latency"}));
    cmd->add_option("--json", opt->json, "Write the figures as JSON to FILE ('-' = stdout)");
    cmd->callback([opt] { bench(*opt); });
});

}  // namespace
}  // namespace evformer::tools
