// The stream clock: when event time passes on the wall clock, estimated from arrivals alone.
#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>

#include "evformer/stream/clock.hpp"

namespace st = evformer::stream;

TEST_CASE("events stamped on arrival: the deadline is exact, the bin's end + the grace") {
    st::StreamClock clock(1500);
    CHECK_FALSE(clock.known());
    CHECK(clock.deadline_us(0) == st::StreamClock::kNever);
    const std::int64_t started = 7'000'000;  // wall µs when the server started
    for (std::int64_t t = 0; t < 3'000'000; t += 997) clock.observe(started + t, t, t);
    CHECK(clock.known());
    CHECK(clock.offset_us() == started);
    CHECK(clock.hold_us() == 0);
    CHECK(clock.deadline_us(5'000'000) == started + 5'000'000 + 1500);
    CHECK(clock.pace() == doctest::Approx(1.0));
}

TEST_CASE("a sender that holds events back: the deadline waits as long as it was seen to hold") {
    st::StreamClock clock(1000);
    const std::int64_t offset = 123'456;
    // Datagrams of 10 ms of events each, sent when full: the oldest event is 10 ms old.
    for (std::int64_t t = 0; t < 1'000'000; t += 10'000)
        clock.observe(offset + t + 9'999, t, t + 9'999);
    CHECK(clock.offset_us() == offset);
    CHECK(clock.hold_us() == 9'999);
    CHECK(clock.deadline_us(2'000'000) == offset + 2'000'000 + 9'999);
    // One datagram 30 ms later than usual: its oldest event is 40 ms old; remembered for a while,
    // then forgotten.
    clock.observe(offset + 1'000'000 + 40'000, 1'000'000, 1'009'999);
    CHECK(clock.hold_us() == 40'000);
    for (std::int64_t t = 1'010'000; t < 4'000'000; t += 10'000)
        clock.observe(offset + t + 9'999, t, t + 9'999);
    CHECK(clock.hold_us() == 9'999);
}

TEST_CASE("replays faster than real time: deadlines are late, never early") {
    const double speed = 10;
    st::StreamClock clock(1000);
    const std::int64_t start = 50'000'000;
    auto wall = [&](std::int64_t t) { return start + std::int64_t(double(t) / speed); };
    for (std::int64_t t = 0; t <= 5'000'000; t += 1000) {
        clock.observe(wall(t) + 20, t, t);
        // The next bins' ends come no later than their deadlines.
        for (std::int64_t end : {t + 1, t + 20'000, t + 320'000})
            CHECK(clock.deadline_us(end) >= wall(end));
    }
}

TEST_CASE("replays slower than real time: after 100 ms, deadlines stretch to the pace") {
    const double speed = 0.5;
    st::StreamClock clock(1000);
    const std::int64_t start = 50'000'000;
    auto wall = [&](std::int64_t t) { return start + std::int64_t(double(t) / speed); };
    std::int64_t t = 0;
    for (; wall(t) - start < 110'000; t += 1000) clock.observe(wall(t), t, t);
    CHECK(clock.pace() == doctest::Approx(speed).epsilon(0.01));
    for (; t < 3'000'000; t += 1000) {
        clock.observe(wall(t), t, t);
        for (std::int64_t end : {t + 1, t + 20'000, t + 320'000})
            CHECK(clock.deadline_us(end) >= wall(end));
    }
}

TEST_CASE("garbage times do not overflow the deadline") {
    st::StreamClock clock(1000);
    clock.observe(1'000'000, std::int64_t{1} << 62, std::int64_t{1} << 62);
    clock.observe(1'000'100, -(std::int64_t{1} << 62), 0);
    CHECK(clock.deadline_us(std::int64_t{1} << 62) == st::StreamClock::kNever);
    CHECK(clock.deadline_us(0) > 0);
}
