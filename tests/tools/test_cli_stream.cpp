// `evformer stream serve` and `evformer stream send` end to end, over loopback only, each test
// bounded in time: a replayed real recording (every event received, each window as `evformer run`
// computes it on the same events binned the same way, SOP totals that add up), the TCP framing
// from several senders and as a client, malformed input of every kind, and overload.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "evformer/io/aedat4.hpp"
#include "evformer/io/events.hpp"
#include "evformer/io/events_dataset.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/weights.hpp"
#include "evformer/stream/wire.hpp"
#include "support.hpp"
#include "tools/stream_child.hpp"

namespace fs = std::filesystem;
namespace io = evformer::io;
namespace m = evformer::models;
namespace st = evformer::stream;
using evformer::test::Child;
using evformer::test::run_evformer;
using evformer::test::ScratchDir;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const fs::path examples = fs::path(EVFORMER_SOURCE_DIR) / "examples";
const std::string shipped_model = (examples / "models/nmnist-ssa-bin.h5").string();

bool is_type(const std::string& line, const std::string& type) {
    return line.find("\"type\":\"" + type + "\"") != std::string::npos;
}

// The first N shipped N-MNIST recordings.
std::vector<std::vector<io::Event>> shipped_recordings(std::size_t n) {
    const auto ds = io::open_event_dataset(examples / "data/nmnist_test100", {});
    std::vector<std::vector<io::Event>> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(ds.load(ds.test[i]));
    return out;
}

// A bin length at which a window of T bins holds the longest recording (+1 ms).
std::int64_t window_dt(const std::vector<std::vector<io::Event>>& recs, std::size_t T) {
    std::int64_t longest = 0;
    for (const auto& r : recs) longest = std::max(longest, r.back().t - r.front().t);
    return longest / std::int64_t(T) + 1000;
}

// One stream of the recordings: recording k starts where window k · spacing starts (from 0.5 s).
std::vector<io::Event> stream_of(const std::vector<std::vector<io::Event>>& recs, std::size_t T,
                                 std::int64_t dt, std::size_t spacing) {
    std::vector<io::Event> stream;
    for (std::size_t k = 0; k < recs.size(); ++k) {
        const std::int64_t shift = 500'000 + std::int64_t(spacing * k * T) * dt - recs[k].front().t;
        for (auto e : recs[k]) {
            e.t += shift;
            stream.push_back(e);
        }
    }
    return stream;
}

void write_h5(const fs::path& path, const std::vector<io::Event>& events,
              io::Geometry g = {34, 34}) {
    io::WriterOptions o;
    o.geometry = g;
    io::write_event_file(path, events, "hdf5", o);
}

// Starts a server and returns its "listening" line.
json start_server(Child& server) {
    const auto line =
        server.wait_line([](const std::string& l) { return is_type(l, "listening"); }, 20s);
    REQUIRE(line.has_value());
    return json::parse(*line);
}

json stop_server(Child& server) {
    server.signal(SIGINT);
    const auto line =
        server.wait_line([](const std::string& l) { return is_type(l, "summary"); }, 60s);
    REQUIRE(line.has_value());
    CHECK(server.wait(30s) == 0);
    return json::parse(*line);
}

std::vector<json> lines_of(const Child& c, const std::string& type) {
    std::vector<json> out;
    for (const auto& l : c.lines())
        if (is_type(l, type)) out.push_back(json::parse(l));
    return out;
}

int udp_socket_to(int port, sockaddr_in& addr) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    std::memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return fd;
}

int tcp_connect(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    return fd;
}

void send_all(int fd, const std::vector<std::uint8_t>& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const auto n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
        REQUIRE(n > 0);
        done += std::size_t(n);
    }
}

// Reads everything a subscriber receives until the server closes the connection (bounded).
std::string read_until_closed(int fd, std::chrono::milliseconds timeout) {
    std::string all;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[65536];
    timeval tv{0, 100000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (std::chrono::steady_clock::now() < deadline) {
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0) break;
        if (n > 0) all.append(buf, std::size_t(n));
    }
    return all;
}

std::uint64_t u(const json& j, const char* key) {
    return j.at(key).get<std::uint64_t>();
}

// Each window line equals `evformer run` on recording k alone (the same events binned the same
// way): its events, prediction and per-layer SOPs. Returns the windows' SOP total.
std::uint64_t check_windows_equal_run(const ScratchDir& dir,
                                      const std::vector<std::vector<io::Event>>& recs,
                                      const std::vector<json>& windows, std::int64_t dt) {
    std::uint64_t sops = 0;
    for (std::size_t k = 0; k < recs.size() && k < windows.size(); ++k) {
        CAPTURE(k);
        const auto& w = windows[k];
        CHECK(u(w, "events_in") == recs[k].size());
        std::uint64_t layer_sops = 0;
        for (const auto& l : w["layers"]) layer_sops += l["sops"].get<std::uint64_t>();
        CHECK(layer_sops == u(w, "sops"));
        sops += u(w, "sops");
        // The same events as a one-recording dataset, binned by duration, through `evformer run`:
        // labelled with the stream's prediction, so run's accuracy is 100 % exactly when the
        // predictions agree; and the per-layer SOPs are equal.
        std::string name = "window-";
        name += std::to_string(k);
        const auto folder = dir / name;
        fs::create_directories(folder);
        write_h5(folder / "0.h5", recs[k]);
        std::ofstream(folder / "labels.txt") << "0 " << w["prediction"].get<std::size_t>() << "\n";
        auto run = run_evformer("run " + shipped_model + " --data " + folder.string() +
                                " --split-by duration --dt " + std::to_string(dt) + " --json -");
        REQUIRE(run.exit_code == 0);
        const auto r = json::parse(run.out);
        CHECK(r["correct"] == 1);
        REQUIRE(r["layers"].size() == w["layers"].size());
        for (std::size_t l = 0; l < w["layers"].size(); ++l) {
            CHECK(r["layers"][l]["name"] == w["layers"][l]["name"]);
            CHECK(r["layers"][l]["sops"].get<double>() ==
                  double(w["layers"][l]["sops"].get<std::uint64_t>()));
        }
    }
    return sops;
}

}  // namespace

TEST_CASE("stream serve and send describe themselves; bad options are one line, exit 2") {
    auto h = run_evformer("stream serve --help");
    CHECK(h.exit_code == 0);
    CHECK(h.out.find("--udp-format") != std::string::npos);
    CHECK(h.out.find("--continuous") != std::string::npos);
    auto s = run_evformer("stream send --help");
    CHECK(s.exit_code == 0);
    CHECK(s.out.find("--serve-tcp") != std::string::npos);
    auto bad = run_evformer("stream serve " + shipped_model + " --udp-format aedat");
    CHECK(bad.exit_code == 2);
    CHECK(evformer::test::count_lines(bad.err) == 1);
    auto no_dest = run_evformer("stream send " + (examples / "data/nmnist_test100/0.bs2").string());
    CHECK(no_dest.exit_code == 2);
    CHECK(no_dest.err.find("--to") != std::string::npos);
    auto bad_to = run_evformer("stream send x.bin --to localhost");
    CHECK(bad_to.exit_code == 2);
    for (const char* args : {" --sensor 34", " --bind not-an-address", " --connect no-port",
                             " --connect host:99999", " --no-udp", " --window 0"}) {
        CAPTURE(args);
        auto r = run_evformer("stream serve " + shipped_model + args);
        CHECK(r.exit_code == 2);
        CHECK(evformer::test::count_lines(r.err) == 1);
    }
    const auto rec = (examples / "data/nmnist_test100/60001.bs2").string();
    for (const char* args :
         {" --to 127.0.0.1:3333 --speed -1",
          " --to 127.0.0.1:3333 --no-timestamps --udp-format t64_x16_y16_on8",
          " --to 127.0.0.1:3333 --serve-tcp 0", " --to 127.0.0.1:3333 --compression brotli",
          " --to 127.0.0.1:3333 --transport tcp"}) {  // .bs2: no sensor size
        CAPTURE(args);
        auto r = run_evformer("stream send " + rec + args);
        CHECK(r.exit_code == 2);
        CHECK(evformer::test::count_lines(r.err) == 1);
    }
    auto missing = run_evformer("stream send /nonexistent.h5 --to 127.0.0.1:3333");
    CHECK(missing.exit_code == 1);
    CHECK(missing.err.find("/nonexistent.h5") != std::string::npos);
    // A UDP port already taken: one line naming the address, exit 1.
    Child first({"stream", "serve", shipped_model, "--udp-port", "0", "--stats-interval", "0"});
    const auto port = std::to_string(start_server(first)["udp_port"].get<int>());
    auto taken = run_evformer("stream serve " + shipped_model + " --udp-port " + port);
    CHECK(taken.exit_code == 1);
    CHECK(taken.err.find("127.0.0.1:" + port) != std::string::npos);
    stop_server(first);
    auto no_dt = run_evformer("run " + shipped_model + " --split-by duration");
    CHECK(no_dt.exit_code == 2);
    CHECK(no_dt.err.find("--dt") != std::string::npos);
    auto dt_alone = run_evformer("run " + shipped_model + " --dt 5000");
    CHECK(dt_alone.exit_code == 2);
    auto image = run_evformer("stream serve " + (examples / "models/fmnist-ssa-bin.h5").string());
    CHECK(image.exit_code == 2);
    CHECK(image.err.find("event model") != std::string::npos);
}

TEST_CASE(
    "a replayed recording: every event arrives, each window is `evformer run` on the same "
    "events binned the same way, and the SOP totals add up") {
    ScratchDir dir;
    const std::size_t K = 5, T = 16;
    const auto recs = shipped_recordings(K);
    const std::int64_t dt = window_dt(recs, T);
    // One stream where recording k starts exactly where window k starts.
    const auto stream = stream_of(recs, T, dt, 1);
    write_h5(dir / "stream.h5", stream);

    Child server({"stream", "serve", shipped_model, "--udp-port", "0", "--publish", "0", "--dt",
                  std::to_string(dt), "--stats-interval", "0.2", "--idle-flush-ms", "300"});
    const auto listening = start_server(server);
    const int port = listening["udp_port"];
    CHECK(listening["window_steps"] == T);
    const int subscriber = tcp_connect(listening["publish_port"]);
    std::this_thread::sleep_for(100ms);  // the subscriber is accepted before the first window
    auto sent = run_evformer("stream send " + (dir / "stream.h5").string() +
                             " --to 127.0.0.1:" + std::to_string(port) + " --speed 10 --json -");
    REQUIRE(sent.exit_code == 0);
    const auto report = json::parse(sent.out);
    CHECK(u(report, "events") == stream.size());
    for (std::size_t k = 0; k < K; ++k)
        REQUIRE(server.wait_line([](const std::string& l) { return is_type(l, "window"); }, 20s));
    const auto summary = stop_server(server);
    const std::string published = read_until_closed(subscriber, 5s);
    ::close(subscriber);

    // Every event arrived and was simulated.
    CHECK(u(summary, "received") == stream.size());
    CHECK(u(summary, "simulated_events") == stream.size());
    CHECK(u(summary, "dropped_kernel_datagrams") == 0);
    CHECK(u(summary, "dropped_queue_events") == 0);
    CHECK(u(summary, "dropped_late") == 0);
    CHECK(u(summary, "malformed_datagrams") == 0);
    CHECK(u(summary, "windows") == K);
    CHECK_FALSE(lines_of(server, "stats").empty());
    const auto windows = lines_of(server, "window");
    REQUIRE(windows.size() == K);
    for (std::size_t k = 0; k < K; ++k) CHECK(u(windows[k], "window") == k);
    const std::uint64_t sops = check_windows_equal_run(dir, recs, windows, dt);
    CHECK(sops == u(summary, "sops_total"));
    // The subscriber got the same window lines and the summary.
    std::size_t published_windows = 0;
    for (std::size_t at = 0; (at = published.find("\"type\":\"window\"", at)) != std::string::npos;
         ++at)
        ++published_windows;
    CHECK(published_windows == K);
    CHECK(published.find("\"type\":\"summary\"") != std::string::npos);
}

TEST_CASE(
    "a replay at its pace with a silent window after each recording: every window closes by its "
    "deadline, nothing is late, and each equals `evformer run`") {
    ScratchDir dir;
    const std::size_t K = 3, T = 16;
    const auto recs = shipped_recordings(K);
    const std::int64_t dt = window_dt(recs, T);
    // Recording k starts where window 2k starts: no later event closes a window, its deadline
    // does (the idle flush is off).
    const auto stream = stream_of(recs, T, dt, 2);
    write_h5(dir / "stream.h5", stream);
    // A grace that absorbs a loaded machine's scheduling hiccups (the sender and the server share
    // two cores with the test suite); the timing of the default grace is the next test's.
    Child server({"stream", "serve", shipped_model, "--udp-port", "0", "--dt", std::to_string(dt),
                  "--stats-interval", "0", "--idle-flush-ms", "0", "--grace-us", "20000"});
    const auto listening = start_server(server);
    CHECK(listening["idle_flush_ms"] == 0);
    CHECK(listening["grace_us"] == 20000);
    auto sent = run_evformer("stream send " + (dir / "stream.h5").string() + " --to 127.0.0.1:" +
                             std::to_string(listening["udp_port"].get<int>()) + " --speed 1");
    REQUIRE(sent.exit_code == 0);
    for (std::size_t k = 0; k < K; ++k)
        REQUIRE(server.wait_line([](const std::string& l) { return is_type(l, "window"); }, 20s));
    const auto summary = stop_server(server);
    CHECK(u(summary, "received") == stream.size());
    CHECK(u(summary, "simulated_events") == stream.size());
    CHECK(u(summary, "dropped_late") == 0);
    CHECK(u(summary, "windows") == K);
    CHECK(u(summary, "deadline_windows") == K);
    CHECK(u(summary["windows_closed_by"], "deadline") == K);
    const auto windows = lines_of(server, "window");
    REQUIRE(windows.size() == K);
    for (std::size_t k = 0; k < K; ++k) {
        CHECK(u(windows[k], "window") == 2 * k);
        CHECK(windows[k]["closed_by"] == "deadline");
    }
    const std::uint64_t sops = check_windows_equal_run(dir, recs, windows, dt);
    CHECK(sops == u(summary, "sops_total"));
}

TEST_CASE(
    "a window closes by its deadline with no later event and no idle flush; events that come "
    "after it are counted late") {
    using Clock = std::chrono::steady_clock;
    // dt 5 ms, 16 steps: windows of 80 ms; the default grace (3 ms).
    const std::vector<std::string> args{
        "stream",           "serve", shipped_model,     "--udp-port", "0", "--dt", "5000",
        "--stats-interval", "0",     "--idle-flush-ms", "0"};
    auto spif = [](std::vector<std::uint8_t>& b, std::uint32_t x, std::uint32_t y,
                   std::optional<std::uint32_t> t) {
        std::uint32_t w = (x & 0x7FFF) << 16 | (y & 0x7FFF);
        if (!t) w |= 0x80000000u;  // no timestamp: stamped on arrival
        std::uint8_t bytes[4];
        std::memcpy(bytes, &w, 4);
        b.insert(b.end(), bytes, bytes + 4);
        if (t) {
            std::memcpy(bytes, &*t, 4);
            b.insert(b.end(), bytes, bytes + 4);
        }
    };
    auto window_line = [](Child& server) {
        const auto line =
            server.wait_line([](const std::string& l) { return is_type(l, "window"); }, 10s);
        REQUIRE(line.has_value());
        return json::parse(*line);
    };
    SUBCASE("events stamped on arrival: the deadline is exact") {
        Child server(args);
        const auto listening = start_server(server);
        CHECK(listening["grace_us"] == 3000);
        sockaddr_in addr{};
        const int fd = udp_socket_to(listening["udp_port"], addr);
        std::vector<std::uint8_t> one;
        for (std::uint32_t i = 0; i < 20; ++i) spif(one, i, i, std::nullopt);
        const auto sent_at = Clock::now();
        ::sendto(fd, one.data(), one.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        const auto w = window_line(server);
        const double elapsed_ms =
            std::chrono::duration<double, std::milli>(Clock::now() - sent_at).count();
        INFO(w.dump());
        CHECK(w["closed_by"] == "deadline");
        CHECK(u(w, "events_in") == 20);
        // Not before the window's end + the grace (80 + 3 ms after the events' arrival), and soon
        // after (the tolerance covers a loaded machine).
        CHECK(w["latency_ms"].get<double>() >= 83.0 - 0.01);
        CHECK(w["latency_ms"].get<double>() < 83.0 + 100.0);
        CHECK(elapsed_ms >= 83.0 - 0.01);
        CHECK(elapsed_ms < 83.0 + 200.0);
        CHECK(w["server_ms"].get<double>() < 100.0);
        ::close(fd);
        const auto s = stop_server(server);
        CHECK(u(s, "windows") == 1);
        CHECK(u(s, "deadline_windows") == 1);
        CHECK(u(s, "dropped_late") == 0);
    }
    SUBCASE("events with timestamps at their pace; later events of a closed window are late") {
        Child server(args);
        const auto listening = start_server(server);
        sockaddr_in addr{};
        const int fd = udp_socket_to(listening["udp_port"], addr);
        auto datagram = [&](std::uint32_t t0, std::uint32_t n) {
            std::vector<std::uint8_t> b;
            for (std::uint32_t i = 0; i < n; ++i) spif(b, i, i, t0 + 100 * i);
            ::sendto(fd, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        };
        // Window 0 is [1000, 81000) µs of event time; its events come 20 ms apart, then nothing.
        const auto first_at = Clock::now();
        datagram(1000, 10);
        std::this_thread::sleep_until(first_at + 20ms);
        datagram(21'000, 10);
        const auto w = window_line(server);
        const double elapsed_ms =
            std::chrono::duration<double, std::milli>(Clock::now() - first_at).count();
        INFO(w.dump());
        CHECK(w["closed_by"] == "deadline");
        CHECK(u(w, "window") == 0);
        CHECK(u(w, "events_in") == 20);
        CHECK(elapsed_ms >= 80.0);
        CHECK(elapsed_ms < 83.0 + 200.0);
        // Late: events of the closed window; then an event of window 2 opens it, and its deadline
        // closes it too.
        datagram(50'000, 5);
        datagram(200'000, 1);
        const auto w2 = window_line(server);
        CHECK(w2["closed_by"] == "deadline");
        CHECK(u(w2, "window") == 2);
        CHECK(u(w2, "events_in") == 1);
        ::close(fd);
        const auto s = stop_server(server);
        CHECK(u(s, "received") == 26);
        CHECK(u(s, "dropped_late") == 5);
        CHECK(u(s, "simulated_events") == 21);
        CHECK(u(s, "windows") == 2);
        CHECK(u(s, "deadline_windows") == 2);
    }
}

TEST_CASE("the dv-processing TCP framing: several senders at once, and the server as a client") {
    ScratchDir dir;
    const auto recs = shipped_recordings(2);
    std::vector<io::Event> events = recs[0];
    const std::int64_t shift = recs[0].back().t + 1000 - recs[1].front().t;
    for (auto e : recs[1]) {
        e.t += shift;
        events.push_back(e);
    }
    write_h5(dir / "r.h5", events);
    SUBCASE("two senders to --tcp-port") {
        Child server({"stream", "serve", shipped_model, "--no-udp", "--tcp-port", "0",
                      "--stats-interval", "0"});
        const int port = start_server(server)["tcp_port"];
        const std::string cmd = "stream send " + (dir / "r.h5").string() +
                                " --transport tcp --speed 0 --to 127.0.0.1:" + std::to_string(port);
        auto a = std::async(std::launch::async, [&] { return run_evformer(cmd); });
        auto b = run_evformer(cmd + " --compression zstd --packet-events 100");
        CHECK(a.get().exit_code == 0);
        CHECK(b.exit_code == 0);
        std::this_thread::sleep_for(500ms);
        const auto s = stop_server(server);
        CHECK(u(s, "received_tcp") == 2 * events.size());
        // Both streams share one time base: what the other stream already moved past is late.
        CHECK(u(s, "simulated_events") + u(s, "dropped_late") == 2 * events.size());
        CHECK(u(s, "simulated_events") >= events.size());
        CHECK(u(s, "malformed_streams") == 0);
        CHECK(u(s, "truncated_streams") == 0);
    }
    SUBCASE("--connect to a sender serving the framing") {
        Child sender(
            {"stream", "send", (dir / "r.h5").string(), "--serve-tcp", "0", "--speed", "20"});
        const auto line = sender.wait_err("serving", 20s);
        REQUIRE(line.has_value());
        const std::string port = line->substr(line->rfind(' ') + 1);
        Child server({"stream", "serve", shipped_model, "--no-udp", "--connect",
                      "127.0.0.1:" + port, "--stats-interval", "0"});
        start_server(server);
        CHECK(sender.wait(60s) == 0);
        std::this_thread::sleep_for(300ms);
        const auto s = stop_server(server);
        CHECK(u(s, "received_tcp") == events.size());
        CHECK(u(s, "simulated_events") == events.size());
        CHECK(u(s, "windows") >= 2);
    }
}

TEST_CASE("faery's UDP layouts and SPIF words without timestamps, end to end") {
    ScratchDir dir;
    const auto recs = shipped_recordings(1);
    write_h5(dir / "r.h5", recs[0]);
    for (const char* format : {"t64_x16_y16_on8", "t32_x16_y15_on1", "spif"}) {
        CAPTURE(format);
        Child server({"stream", "serve", shipped_model, "--udp-port", "0", "--udp-format", format,
                      "--stats-interval", "0"});
        const int port = start_server(server)["udp_port"];
        const std::string extra = std::string(format) == "spif" ? " --no-timestamps" : "";
        auto sent = run_evformer("stream send " + (dir / "r.h5").string() +
                                 " --to 127.0.0.1:" + std::to_string(port) + " --udp-format " +
                                 format + extra + " --speed 20");
        REQUIRE(sent.exit_code == 0);
        std::this_thread::sleep_for(300ms);
        const auto s = stop_server(server);
        CHECK(u(s, "received") == recs[0].size());
        CHECK(u(s, "malformed_datagrams") == 0);
        CHECK(u(s, "stamped_on_arrival") == (extra.empty() ? 0 : recs[0].size()));
        // Stamped on arrival, the events of a datagram share one time: none is late.
        CHECK(u(s, "simulated_events") == recs[0].size());
    }
}

TEST_CASE("malformed input is counted and skipped; the server keeps serving the others") {
    ScratchDir dir;
    // A small, fast model so that many windows are published.
    m::ModelSpec spec;
    spec.in_channels = 2;
    spec.in_height = spec.in_width = 34;
    spec.dim = 16;
    spec.heads = 2;
    spec.time_steps = 4;
    spec.pool_after = {false, true, true, true};
    m::save_weights(m::random_weights(spec, 21), (dir / "small.h5").string());
    Child server({"stream", "serve", (dir / "small.h5").string(), "--udp-port", "0", "--tcp-port",
                  "0", "--publish", "0", "--dt", "250", "--stats-interval", "0.1",
                  "--publish-buffer", "4096"});
    const auto listening = start_server(server);
    const int udp = listening["udp_port"], tcp = listening["tcp_port"];
    const int reader = tcp_connect(listening["publish_port"]);  // reads all along
    auto published_future =
        std::async(std::launch::async, [reader] { return read_until_closed(reader, 90s); });
    const int idle = tcp_connect(listening["publish_port"]);  // never reads
    int small = 2048;
    ::setsockopt(idle, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);

    sockaddr_in addr{};
    const int fd = udp_socket_to(udp, addr);
    auto datagram = [&](const std::vector<std::uint8_t>& bytes) {
        ::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&addr),
                 sizeof addr);
        std::this_thread::sleep_for(2ms);
    };
    auto spif = [](std::vector<std::uint8_t>& b, std::uint32_t x, std::uint32_t y,
                   std::uint32_t t) {
        const std::uint32_t words[2] = {(x & 0x7FFF) << 16 | (y & 0x7FFF), t};
        std::uint8_t bytes[8];
        std::memcpy(bytes, words, 8);
        b.insert(b.end(), bytes, bytes + 8);
    };
    // Good events, then garbage: a datagram of 7 bytes, one whose timestamp is missing, events
    // outside the 34x34 sensor, and time going backwards.
    std::vector<std::uint8_t> good;
    for (std::uint32_t i = 0; i < 20; ++i) spif(good, i, i, 10'000 + 100 * i);
    datagram(good);
    datagram(std::vector<std::uint8_t>(7, 0x41));
    std::vector<std::uint8_t> cut;
    spif(cut, 1, 1, 20'000);
    cut.resize(4);
    datagram(cut);
    std::vector<std::uint8_t> outside;
    spif(outside, 34, 0, 20'000);
    spif(outside, 0, 1000, 20'000);
    datagram(outside);
    std::vector<std::uint8_t> back;
    spif(back, 2, 2, 30'000);
    spif(back, 3, 3, 5'000);  // before the stream's first event: late
    datagram(back);

    // TCP: a wrong packet size, an undecodable body, a peer that disconnects mid-packet.
    const auto opening = st::dv_stream_opening(io::Aedat4Compression::lz4, {34, 34}, "test");
    {
        const int c = tcp_connect(tcp);
        auto bytes = opening;
        io::append_aedat4_packet_header(bytes, 0, 0);
        bytes[bytes.size() - 1] = 0xFF;  // size −…: wrong
        send_all(c, bytes);
        std::this_thread::sleep_for(100ms);
        ::close(c);
    }
    {
        const int c = tcp_connect(tcp);
        auto bytes = opening;
        io::append_aedat4_packet_header(bytes, 0, 16);
        bytes.insert(bytes.end(), 16, 0x33);  // not an LZ4 frame
        io::Aedat4PacketEncoder enc(io::Aedat4Compression::lz4);
        const std::vector<io::Event> ev{{40'000, 5, 5, 1}};
        const auto body = enc.encode(ev);
        io::append_aedat4_packet_header(bytes, 0, body.size());
        bytes.insert(bytes.end(), body.begin(), body.end() - 2);  // cut short
        send_all(c, bytes);
        std::this_thread::sleep_for(100ms);
        ::close(c);
    }
    // Plenty of windows for the subscribers: a recording at 1 ms bins, 4 steps per window.
    auto recs = shipped_recordings(20);
    std::vector<io::Event> many;
    std::int64_t t = 100'000;
    for (auto& r : recs)
        for (auto e : r) {
            e.t = t + (e.t - r.front().t);
            many.push_back(e);
        }
    std::sort(many.begin(), many.end(), [](const auto& a, const auto& b) { return a.t < b.t; });
    write_h5(dir / "many.h5", many);
    auto sent = run_evformer("stream send " + (dir / "many.h5").string() +
                             " --to 127.0.0.1:" + std::to_string(udp) + " --speed 2");
    CHECK(sent.exit_code == 0);
    std::this_thread::sleep_for(500ms);
    // Still serving: a last good datagram is received after all that.
    std::vector<std::uint8_t> last;
    spif(last, 7, 7, 10'000'000);
    datagram(last);
    const std::uint64_t expected = 20 + 2 + 2 + many.size() + 1;
    CHECK(server.wait_line(
        [&](const std::string& l) {
            return is_type(l, "stats") && u(json::parse(l), "received_udp") == expected;
        },
        20s));
    const auto s = stop_server(server);
    INFO(s.dump());
    const std::string published = published_future.get();
    ::close(reader);
    ::close(idle);
    ::close(fd);
    CHECK(u(s, "malformed_datagrams") == 2);
    CHECK(u(s, "dropped_outside") == 2);
    CHECK(u(s, "dropped_late") >= 1);
    CHECK(u(s, "malformed_streams") == 1);
    CHECK(u(s, "undecodable_packets") == 1);
    CHECK(u(s, "truncated_streams") == 1);
    CHECK(u(s, "publish_dropped_lines") > 0);
    CHECK(u(s, "dropped_kernel_datagrams") == 0);
    CHECK(u(s, "received_udp") == expected);
    CHECK(u(s, "received") == u(s, "simulated_events") + u(s, "dropped_late") +
                                  u(s, "dropped_outside") + u(s, "dropped_queue_events"));
    // The reading subscriber was served to the end.
    CHECK(published.find("\"type\":\"summary\"") != std::string::npos);
    bool noted_mid = false, noted_size = false;
    for (const auto& l : server.err_lines()) {
        noted_mid |= l.find("in the middle of a packet") != std::string::npos;
        noted_size |= l.find("size -") != std::string::npos;
    }
    CHECK(noted_mid);
    CHECK(noted_size);
}

TEST_CASE(
    "overload: a sender as fast as possible against a slow simulation; memory stays "
    "bounded, drops are counted, the server keeps answering") {
    ScratchDir dir;
    // A deliberately heavy model: wide and deep, so one window takes far longer than it lasts.
    m::ModelSpec spec;
    spec.in_channels = 2;
    spec.in_height = spec.in_width = 34;
    spec.dim = 256;
    spec.heads = 8;
    spec.blocks = 4;
    spec.time_steps = 16;
    spec.pool_after = {false, false, true, true};
    m::save_weights(m::random_weights(spec, 22), (dir / "heavy.h5").string());
    auto recs = shipped_recordings(40);
    std::vector<io::Event> events;
    for (auto& r : recs) {
        const std::int64_t base = events.empty() ? 0 : events.back().t + 1000;
        for (auto e : r) {
            e.t = base + (e.t - r.front().t);
            events.push_back(e);
        }
    }
    write_h5(dir / "fast.h5", events);
    Child server({"stream", "serve", (dir / "heavy.h5").string(), "--udp-port", "0", "--dt",
                  "20000", "--queue-events", "5000", "--stats-interval", "0.2"});
    const int port = start_server(server)["udp_port"];
    auto sent = run_evformer("stream send " + (dir / "fast.h5").string() +
                             " --to 127.0.0.1:" + std::to_string(port) + " --speed 0 --json -");
    REQUIRE(sent.exit_code == 0);
    // The server keeps answering while it is behind: statistics keep coming.
    const auto before = lines_of(server, "stats").size();
    for (int i = 0; i < 3; ++i)
        REQUIRE(server.wait_line([](const std::string& l) { return is_type(l, "stats"); }, 10s));
    CHECK(lines_of(server, "stats").size() >= before + 3);
    const auto start = std::chrono::steady_clock::now();
    const auto s = stop_server(server);
    CHECK(std::chrono::steady_clock::now() - start < 60s);
    const auto report = json::parse(sent.out);
    CHECK(u(report, "events") == events.size());
    CHECK(u(s, "dropped_queue_events") > 0);
    CHECK(u(s, "dropped_queue_packets") > 0);
    CHECK(u(s, "queue_peak_events") <= 5000);
    CHECK(u(s, "queue_capacity_events") == 5000);
    // Nothing is lost silently: what the kernel let through was either simulated or counted.
    CHECK(u(s, "received") == u(s, "simulated_events") + u(s, "dropped_queue_events") +
                                  u(s, "dropped_late") + u(s, "dropped_outside"));
    CHECK(s["peak_rss_mb"].get<double>() < 1024);
}
