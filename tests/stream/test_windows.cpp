#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "evformer/error.hpp"
#include "evformer/io/events.hpp"
#include "evformer/io/samples.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/builder_run.hpp"
#include "evformer/models/trainer.hpp"
#include "evformer/models/weights.hpp"
#include "evformer/stream/queue.hpp"
#include "evformer/stream/windows.hpp"

namespace io = evformer::io;
namespace m = evformer::models;
namespace sim = evformer::sim;
namespace st = evformer::stream;
using Clock = std::chrono::steady_clock;

namespace {

const std::filesystem::path shipped = std::filesystem::path(EVFORMER_SOURCE_DIR) / "examples";

st::WindowOptions options_for(const m::ModelSpec& spec, std::int64_t dt, io::Geometry sensor) {
    st::WindowOptions o;
    o.dt_us = dt;
    o.frames.sensor = sensor;
    o.frames.crop_x = spec.input_crop[0];
    o.frames.crop_y = spec.input_crop[1];
    o.frames.crop_width = spec.input_crop[2];
    o.frames.crop_height = spec.input_crop[3];
    o.frames.out_width = static_cast<std::uint32_t>(spec.in_width);
    o.frames.out_height = static_cast<std::uint32_t>(spec.in_height);
    o.frames = io::resolve_frame_options(o.frames);
    return o;
}

m::ModelSpec small_event_spec() {
    m::ModelSpec spec;
    spec.in_channels = 2;
    spec.in_height = spec.in_width = 8;
    spec.dim = 16;
    spec.heads = 2;
    spec.time_steps = 4;
    spec.pool_after = {false, false, true, true};
    return spec;
}

// The first `count` shipped test recordings as the run path reads them (for `spec`), and a bin
// length at which a window of T bins holds the longest of them (+1 ms).
struct ShippedRecordings {
    std::vector<std::vector<io::Event>> recordings;
    std::int64_t dt = 0;
};
ShippedRecordings shipped_recordings(const m::ModelSpec& spec, const std::string& folder,
                                     std::size_t count) {
    ShippedRecordings r;
    const auto first = m::sample_options(spec, folder, "test", "number", count);
    const auto ds = io::open_event_dataset(folder, first.dataset);
    std::int64_t longest = 0;
    for (std::size_t i = 0; i < count; ++i) {
        r.recordings.push_back(ds.load(ds.test[i]));
        longest = std::max(longest, r.recordings.back().back().t - r.recordings.back().front().t);
    }
    r.dt = longest / std::int64_t(spec.time_steps) + 1000;
    return r;
}

}  // namespace

TEST_CASE(
    "each window of a live stream equals `evformer run` on the same events binned by "
    "duration") {
    const auto weights = m::load_weights((shipped / "models/nmnist-ssa-bin.h5").string());
    const auto net = m::build_network(weights);
    const std::size_t T = weights.spec.time_steps, K = 6;
    const auto folder = (shipped / "data/nmnist_test100").string();
    // The recordings as the run path reads them; a window holds any of them.
    const auto [recordings, dt] = shipped_recordings(weights.spec, folder, K);
    const auto samples =
        io::open_samples(m::sample_options(weights.spec, folder, "test", "duration", K, dt));
    // One stream: recording k starts exactly where window k starts.
    std::vector<st::WindowResult> windows;
    st::WindowRunner runner(net, options_for(weights.spec, dt, {34, 34}),
                            [&](st::WindowResult&& w) { windows.push_back(std::move(w)); });
    const std::int64_t t0 = 1'000'000;
    for (std::size_t k = 0; k < K; ++k) {
        auto events = recordings[k];
        const std::int64_t shift = t0 + std::int64_t(k * T) * dt - events.front().t;
        for (auto& e : events) e.t += shift;
        for (std::size_t at = 0; at < events.size(); at += 100)  // packets of 100 events
            runner.add(
                std::span(events).subspan(at, std::min<std::size_t>(100, events.size() - at)),
                Clock::now());
    }
    runner.flush();
    REQUIRE(windows.size() == K);
    sim::Simulator simulator(net);
    std::uint64_t events_in = 0;
    for (std::size_t k = 0; k < K; ++k) {
        CAPTURE(k);
        const auto offline = simulator.run_events(m::engine_events(samples->events(k)));
        CHECK(windows[k].index == k);
        CHECK(windows[k].t_start_us == t0 + std::int64_t(k * T) * dt);
        CHECK(windows[k].events_in == recordings[k].size());
        CHECK(windows[k].events_in == samples->events(k).events());
        CHECK(windows[k].result.counts == offline.counts);
        CHECK(windows[k].result.logits == offline.logits);
        CHECK(windows[k].result.prediction == offline.prediction);
        events_in += windows[k].events_in;
    }
    CHECK(runner.counters().events_simulated == events_in);
    CHECK(runner.counters().windows == K);
    CHECK(runner.counters().steps == K * T);
    CHECK(runner.counters().dropped_late == 0);
}

TEST_CASE(
    "events outside the sensor, outside the crop and older than the current bin are "
    "counted and dropped") {
    auto spec = small_event_spec();
    spec.input_crop = {4, 4, 16, 16};  // 16x16 crop of a 24x24 sensor, down-sampled to 8x8
    const auto net = m::build_network(m::random_weights(spec, 3));
    std::vector<st::WindowResult> windows;
    st::WindowRunner runner(net, options_for(spec, 1000, {24, 24}),
                            [&](st::WindowResult&& w) { windows.push_back(std::move(w)); });
    const std::vector<io::Event> events{
        {5000, 10, 10, 1},  // origin, bin 0
        {5100, 24, 3, 1},   // x outside the 24x24 sensor
        {5200, 3, 30, 0},   // y outside
        {5300, 2, 10, 0},   // inside the sensor, left of the crop
        {5400, 10, 20, 1},  // below the crop (y 20 ≥ 4 + 16)
        {6500, 11, 11, 0},  // bin 1
        {5900, 12, 12, 0},  // bin 0 after bin 1 began: late
        {4000, 12, 12, 1},  // before the stream's origin: late
        {7000, 19, 19, 1},  // bin 2 (crop corner)
    };
    runner.add(events, Clock::now());
    CHECK(runner.counters().dropped_outside == 2);
    CHECK(runner.counters().outside_crop == 2);
    CHECK(runner.counters().dropped_late == 2);
    CHECK(runner.counters().events_simulated == 3);
    CHECK(runner.window_open());
    runner.flush();
    REQUIRE(windows.size() == 1);
    CHECK(windows[0].events_in == 3);
    CHECK(windows[0].result.time_steps == spec.time_steps);
    // The first conv saw exactly those three events, one per step 0, 1, 2.
    for (std::size_t t = 0; t < 4; ++t)
        CHECK(windows[0].result.at(0, t).input_events == (t < 3 ? 1u : 0u));
    // After the flush, events of the closed window's time are late; a later window opens.
    const std::vector<io::Event> after{{8000, 10, 10, 1}, {14000, 10, 10, 1}};
    runner.add(after, Clock::now());
    CHECK(runner.counters().dropped_late == 3);
    runner.flush();
    REQUIRE(windows.size() == 2);
    CHECK(windows[1].index == 2);  // bins 8..11 of dt 1000 µs from t0 = 5000; window 1 empty
    CHECK(runner.counters().empty_windows == 1);
}

TEST_CASE("reset windows start from rest; continuous windows keep the membranes") {
    const auto spec = small_event_spec();
    const auto net = m::build_network(m::random_weights(spec, 4));
    std::mt19937 rng(5);
    std::vector<io::Event> events;
    for (std::int64_t t = 0; t < 12 * 1000; t += 7)
        events.push_back(
            {t, std::uint16_t(rng() % 8), std::uint16_t(rng() % 8), std::uint8_t(rng() % 2)});
    // Per-step lists as the runner builds them: aggregated counts in channel-major order.
    std::vector<sim::EventList> steps(12);
    {
        std::vector<std::vector<std::uint16_t>> counts(12, std::vector<std::uint16_t>(128, 0));
        for (const auto& e : events) ++counts[std::size_t(e.t / 1000)][e.p * 64 + e.y * 8 + e.x];
        for (std::size_t s = 0; s < 12; ++s)
            for (std::uint32_t i = 0; i < 128; ++i)
                if (counts[s][i]) steps[s].push((i % 64) * 2 + i / 64, counts[s][i]);
    }
    for (bool continuous : {false, true}) {
        CAPTURE(continuous);
        auto o = options_for(spec, 1000, {8, 8});
        o.continuous = continuous;
        std::vector<st::WindowResult> windows;
        st::WindowRunner runner(net, o,
                                [&](st::WindowResult&& w) { windows.push_back(std::move(w)); });
        runner.add(events, Clock::now());
        runner.flush();
        REQUIRE(windows.size() == 3);
        sim::Simulator simulator(net);
        for (std::size_t w = 0; w < 3; ++w) {
            simulator.begin(continuous && w > 0);
            for (std::size_t s = 0; s < 4; ++s) simulator.step_events(steps[w * 4 + s]);
            const auto expected = simulator.finish();
            CHECK(windows[w].result.counts == expected.counts);
            CHECK(windows[w].result.logits == expected.logits);
        }
    }
}

TEST_CASE("a window of any length; options that do not fit the model are refused") {
    const auto spec = small_event_spec();
    const auto net = m::build_network(m::random_weights(spec, 6));
    auto o = options_for(spec, 500, {8, 8});
    o.window_steps = 7;
    std::vector<st::WindowResult> windows;
    st::WindowRunner runner(net, o, [&](st::WindowResult&& w) { windows.push_back(std::move(w)); });
    const std::vector<io::Event> one{{100, 1, 1, 1}};
    runner.add(one, Clock::now());
    runner.flush();
    REQUIRE(windows.size() == 1);
    CHECK(windows[0].result.time_steps == 7);
    CHECK(windows[0].t_end_us - windows[0].t_start_us == 3500);
    auto wrong = options_for(spec, 500, {16, 16});
    wrong.frames.out_width = wrong.frames.out_height = 16;
    CHECK_THROWS_AS(st::WindowRunner(net, wrong, [](st::WindowResult&&) {}), evformer::ConfigError);
    auto zero = options_for(spec, 500, {8, 8});
    zero.dt_us = 0;
    CHECK_THROWS_AS(st::WindowRunner(net, zero, [](st::WindowResult&&) {}), evformer::ConfigError);
}

TEST_CASE("the packet queue holds a bounded number of events and drops whole packets") {
    st::PacketQueue q(10);
    auto packet = [&](std::size_t n) {
        auto p = q.fresh();
        p.events.assign(n, io::Event{});
        return p;
    };
    CHECK(q.push(packet(6)));
    CHECK(q.push(packet(4)));
    CHECK_FALSE(q.push(packet(1)));  // full: dropped whole
    CHECK_FALSE(q.push(packet(11)));
    CHECK(q.counts().dropped_packets == 2);
    CHECK(q.counts().dropped_events == 12);
    CHECK(q.counts().depth_events == 10);
    CHECK(q.counts().peak_events == 10);
    st::Packet out;
    REQUIRE(q.pop(out, std::chrono::milliseconds(10)));
    CHECK(out.events.size() == 6);
    CHECK(q.push(packet(5)));
    q.close();
    CHECK_FALSE(q.push(packet(1)));
    REQUIRE(q.pop(out, std::chrono::milliseconds(10)));
    CHECK(out.events.size() == 4);
    REQUIRE(q.pop(out, std::chrono::milliseconds(10)));
    CHECK(out.events.size() == 5);
    CHECK_FALSE(q.pop(out, std::chrono::milliseconds(10)));
    CHECK(q.counts().pushed_events == 15);
    CHECK(q.counts().pushed_events + q.counts().dropped_events == 28);
}

TEST_CASE(
    "deadlines: bins and windows close once the wall clock passes their end + the grace; "
    "later events of them are late") {
    const auto spec = small_event_spec();  // T = 4
    const auto net = m::build_network(m::random_weights(spec, 7));
    auto o = options_for(spec, 1000, {8, 8});
    o.grace_us = 300;
    std::vector<st::WindowResult> windows;
    st::WindowRunner runner(net, o, [&](st::WindowResult&& w) { windows.push_back(std::move(w)); });
    CHECK(runner.next_deadline() == Clock::time_point::max());
    // Event time t arrives at wall base + t (µs).
    const Clock::time_point base =
        std::chrono::time_point_cast<std::chrono::microseconds>(Clock::now());
    auto at = [&](std::int64_t us) { return base + std::chrono::microseconds(us); };
    const std::vector<io::Event> first{{10'000, 1, 1, 1}, {10'200, 2, 2, 0}};
    runner.add(first, at(10'200));
    REQUIRE(runner.window_open());
    // Bin 0 is [10000, 11000): its deadline is 11000 + 300 on the stream's clock.
    CHECK(runner.next_deadline() == at(11'300));
    CHECK(runner.advance(at(11'299)) == 0);
    CHECK(runner.counters().steps == 0);
    CHECK(runner.advance(at(11'300)) == 0);  // bin 0 closed, the window goes on
    CHECK(runner.counters().steps == 1);
    CHECK(runner.counters().deadline_steps == 1);
    CHECK(runner.next_deadline() == at(12'300));
    // An event of bin 0 now is late; one of bin 1 is taken. The late one arrived 600 µs after its
    // time: from now on the deadlines wait that long (more than the grace).
    const std::vector<io::Event> second{{10'900, 3, 3, 1}, {11'500, 4, 4, 1}};
    runner.add(second, at(11'500));
    CHECK(runner.counters().dropped_late == 1);
    CHECK(runner.counters().events_simulated == 3);
    CHECK(runner.clock().hold_us() == 600);
    CHECK(runner.counters().deadline_after_end_us == 600);
    // Nothing more arrives: the window [10000, 14000) closes at 14600 with no later event.
    CHECK(runner.advance(at(14'599)) == 0);
    CHECK(windows.empty());
    CHECK(runner.counters().steps == 3);  // bins 1 and 2 closed on the way
    CHECK(runner.advance(at(14'600)) == 1);
    REQUIRE(windows.size() == 1);
    CHECK(windows[0].closed_by == st::WindowClose::deadline);
    CHECK(windows[0].ready == at(14'600));
    CHECK(windows[0].events_in == 3);
    CHECK(windows[0].result.time_steps == 4);
    CHECK(runner.counters().deadline_windows == 1);
    CHECK_FALSE(runner.window_open());
    CHECK(runner.next_deadline() == Clock::time_point::max());
    // Late for the closed window; the next window opens with a later event.
    const std::vector<io::Event> third{{13'999, 5, 5, 1}, {18'100, 6, 6, 0}};
    runner.add(third, at(18'100));
    CHECK(runner.counters().dropped_late == 2);
    CHECK(runner.window_open());
    runner.flush();
    REQUIRE(windows.size() == 2);
    CHECK(windows[1].closed_by == st::WindowClose::flush);
    CHECK(windows[1].index == 2);  // [18000, 22000): window 1 had no event
}

TEST_CASE(
    "deadlines at the stream's pace change nothing: each window still equals `evformer run`, "
    "no event is late") {
    const auto weights = m::load_weights((shipped / "models/nmnist-ssa-bin.h5").string());
    const auto net = m::build_network(weights);
    const std::size_t T = weights.spec.time_steps, K = 4;
    const auto folder = (shipped / "data/nmnist_test100").string();
    const auto [recordings, dt] = shipped_recordings(weights.spec, folder, K);
    const auto samples =
        io::open_samples(m::sample_options(weights.spec, folder, "test", "duration", K, dt));
    std::vector<st::WindowResult> windows;
    auto o = options_for(weights.spec, dt, {34, 34});
    o.grace_us = 1000;
    st::WindowRunner runner(net, o, [&](st::WindowResult&& w) { windows.push_back(std::move(w)); });
    // Recording k starts where window 2k starts (a silent window between): every window closes
    // by its deadline. A paced sender: every millisecond of event time is one packet, arriving
    // 1.5 ms after that millisecond ends; the runner is advanced to each arrival before the
    // packet is added, and through the silences.
    const std::int64_t t0 = 1'000'000;
    const Clock::time_point base =
        std::chrono::time_point_cast<std::chrono::microseconds>(Clock::now());
    auto wall = [&](std::int64_t t) { return base + std::chrono::microseconds(t - t0 + 1500); };
    for (std::size_t k = 0; k < K; ++k) {
        auto events = recordings[k];
        const std::int64_t shift = t0 + std::int64_t(2 * k * T) * dt - events.front().t;
        for (auto& e : events) e.t += shift;
        for (std::size_t at = 0; at < events.size();) {
            const std::int64_t slot_end = events[at].t / 1000 * 1000 + 1000;
            std::size_t end = at;
            while (end < events.size() && events[end].t < slot_end) ++end;
            runner.advance(wall(slot_end));
            runner.add(std::span(events).subspan(at, end - at), wall(slot_end));
            at = end;
        }
        // Silence until the next recording: the wall clock moves on.
        const std::int64_t next = t0 + std::int64_t(2 * (k + 1) * T) * dt;
        for (std::int64_t t = events.back().t; t < next; t += dt / 4) runner.advance(wall(t));
    }
    REQUIRE(windows.size() == K);
    CHECK(runner.counters().dropped_late == 0);
    CHECK(runner.counters().deadline_windows == K);
    sim::Simulator simulator(net);
    for (std::size_t k = 0; k < K; ++k) {
        CAPTURE(k);
        const auto offline = simulator.run_events(m::engine_events(samples->events(k)));
        CHECK(windows[k].closed_by == st::WindowClose::deadline);
        CHECK(windows[k].index == 2 * k);
        CHECK(windows[k].events_in == recordings[k].size());
        CHECK(windows[k].result.counts == offline.counts);
        CHECK(windows[k].result.logits == offline.logits);
    }
}
