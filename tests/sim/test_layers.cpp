#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "evformer/error.hpp"
#include "evformer/sim/layers.hpp"

namespace sim = evformer::sim;

namespace {

// A conv with weights w[co][ci][ky][kx] = distinct small numbers, stored transposed.
sim::Conv3x3 numbered_conv(std::size_t ci, std::size_t co, std::size_t h, std::size_t w) {
    sim::Conv3x3 c{ci, co, h, w, std::vector<float>(ci * 9 * co), std::vector<float>(co, 0.f)};
    for (std::size_t o = 0; o < co; ++o)
        for (std::size_t i = 0; i < ci; ++i)
            for (std::size_t k = 0; k < 9; ++k)
                c.weight_t[(i * 9 + k) * co + o] = float(1 + o * 100 + i * 10 + k);
    return c;
}

// Dense reference: out[y][x][o] = Σ w[o][i][ky][kx] · in[y+ky−1][x+kx−1][i].
std::vector<float> dense_conv(const sim::Conv3x3& c, const std::vector<float>& in) {
    std::vector<float> out(c.outputs(), 0.f);
    for (std::size_t y = 0; y < c.height; ++y)
        for (std::size_t x = 0; x < c.width; ++x)
            for (std::size_t o = 0; o < c.out_channels; ++o)
                for (std::size_t ky = 0; ky < 3; ++ky)
                    for (std::size_t kx = 0; kx < 3; ++kx) {
                        const long iy = long(y + ky) - 1, ix = long(x + kx) - 1;
                        if (iy < 0 || ix < 0 || iy >= long(c.height) || ix >= long(c.width))
                            continue;
                        for (std::size_t i = 0; i < c.in_channels; ++i)
                            out[(y * c.width + x) * c.out_channels + o] +=
                                c.weight_t[(i * 9 + ky * 3 + kx) * c.out_channels + o] *
                                in[(std::size_t(iy) * c.width + std::size_t(ix)) * c.in_channels +
                                   i];
                    }
    return out;
}

}  // namespace

TEST_CASE("a linear layer costs spikes × out features SOPs and adds the weight rows") {
    sim::TokenLinear lin{3, 4, 5, std::vector<float>(20), std::vector<float>(5, 0.5f)};
    for (std::size_t i = 0; i < 20; ++i) lin.weight_t[i] = float(i);
    sim::EventList ev;
    ev.push(0 * 4 + 1);  // token 0, input feature 1
    ev.push(2 * 4 + 3);  // token 2, input feature 3
    ev.push(2 * 4 + 0);  // token 2, input feature 0
    std::vector<float> acc(lin.outputs());
    lin.init(acc.data());
    CHECK(lin.propagate(ev, acc.data()) == 3 * 5);
    CHECK(acc[0 * 5 + 2] == 0.5f + 7.f);         // row of feature 1, column 2
    CHECK(acc[1 * 5 + 2] == 0.5f);               // token 1 received nothing
    CHECK(acc[2 * 5 + 4] == 0.5f + 19.f + 4.f);  // rows of features 3 and 0, column 4
}

TEST_CASE("a graded event of count m costs m SOPs per synapse and adds m times the row") {
    sim::TokenLinear lin{1, 2, 3, {1, 2, 3, 4, 5, 6}, {0, 0, 0}};
    sim::EventList ev;
    ev.push(1, 3);
    std::vector<float> acc(3);
    lin.init(acc.data());
    CHECK(lin.propagate(ev, acc.data()) == 3 * 3);
    CHECK(acc == std::vector<float>{12, 15, 18});
}

TEST_CASE("conv events at corners, edges and centre reach exactly the output positions inside") {
    // 4×5 map, 1 → 2 channels: a corner reaches 2×2 positions, an edge 2×3 or 3×2, inside 3×3.
    auto conv = numbered_conv(1, 2, 4, 5);
    auto sops_of = [&](std::size_t y, std::size_t x, std::uint16_t m = 1) {
        sim::EventList ev;
        ev.push(std::uint32_t(y * 5 + x), m);
        std::vector<float> acc(conv.outputs(), 0.f);
        return conv.propagate(ev, acc.data());
    };
    CHECK(sops_of(0, 0) == 4 * 2);
    CHECK(sops_of(3, 4) == 4 * 2);
    CHECK(sops_of(0, 4) == 4 * 2);
    CHECK(sops_of(0, 2) == 6 * 2);  // top edge
    CHECK(sops_of(2, 0) == 6 * 2);  // left edge
    CHECK(sops_of(3, 1) == 6 * 2);  // bottom edge
    CHECK(sops_of(1, 2) == 9 * 2);  // centre
    CHECK(sops_of(1, 2, 3) == 3 * 9 * 2);
}

TEST_CASE("event-driven conv equals the dense convolution of the same spikes") {
    auto conv = numbered_conv(3, 4, 5, 6);
    std::mt19937 rng(1);
    std::vector<float> dense_in(conv.inputs(), 0.f);
    sim::EventList ev;
    std::uint64_t expected_sops = 0, expected_macs = 0;
    for (std::uint32_t n = 0; n < conv.inputs(); ++n)
        if (rng() % 3 == 0) {
            const auto m = std::uint16_t(1 + rng() % 2);
            ev.push(n, m);
            dense_in[n] = m;
            const std::size_t pos = n / 3;
            expected_sops += m * conv.fan_out(pos / 6, pos % 6);
            expected_macs += conv.fan_out(pos / 6, pos % 6);
        }
    std::vector<float> acc(conv.outputs(), 0.f);
    CHECK(conv.propagate(ev, acc.data()) == expected_sops);
    CHECK(acc == dense_conv(conv, dense_in));
    // The real-valued path gives the same currents and counts one MAC per synapse reached
    // (whatever the value).
    std::vector<float> acc2(conv.outputs(), 0.f);
    CHECK(conv.propagate_dense(dense_in.data(), acc2.data()) == expected_macs);
    CHECK(acc2 == acc);
}

TEST_CASE("LIF follows v ← v + (x − v)/τ, fires at v ≥ v_th and resets to 0") {
    sim::LifParams p;  // τ = 2, v_th = 1
    std::vector<float> v(3, 0.f);
    const std::vector<float> x{2.0f, 1.0f, 4.0f};
    sim::EventList out;
    CHECK(sim::lif_step(p, v.data(), x.data(), 3, out) == 2);  // 1.0 and 2.0 fire; 0.5 not
    CHECK(out.neuron == std::vector<std::uint32_t>{0, 2});
    CHECK(v == std::vector<float>{0.f, 0.5f, 0.f});
    out.clear();
    CHECK(sim::lif_step(p, v.data(), x.data(), 3, out) == 2);  // neuron 1: 0.5 → 0.75
    CHECK(out.neuron == std::vector<std::uint32_t>{0, 2});
    CHECK(v[1] == 0.75f);
}

TEST_CASE("max-pool over spikes fires an output when any input of its 3×3/s2/p1 window fired") {
    sim::SpikeMaxPool pool(2, 5, 5);  // → 3×3
    CHECK(pool.out_height() == 3);
    std::vector<std::uint8_t> seen(pool.outputs(), 0);
    sim::EventList in, out;
    in.push((2 * 5 + 2) * 2 + 1);  // (2, 2) channel 1: windows of outputs rows/cols {1}
    in.push((1 * 5 + 1) * 2 + 0);  // (1, 1) channel 0: outputs {0, 1} × {0, 1}
    in.push((0 * 5 + 0) * 2 + 0);  // (0, 0) channel 0: output (0, 0), already fired
    pool.apply(in, out, seen);
    CHECK(out.size() == 1 + 4);
    CHECK(out.total() == 5);
    for (auto s : seen) CHECK(s == 0);
}

TEST_CASE("the residual stream sums events into graded events") {
    sim::ResidualStream s(6);
    sim::EventList a, b, out;
    a.push(1);
    a.push(4);
    b.push(4);
    b.push(5, 2);
    s.add(a);
    s.add(b);
    s.to_events(out);
    CHECK(out.neuron == std::vector<std::uint32_t>{1, 4, 5});
    CHECK(out.count == std::vector<std::uint16_t>{1, 2, 2});
    s.clear();
    s.to_events(out);
    CHECK(out.empty());
}

TEST_CASE("mis-sized layers are configuration errors") {
    sim::TokenLinear lin{2, 3, 4, std::vector<float>(11), std::vector<float>(4)};
    CHECK_THROWS_AS(lin.validate("fc"), evformer::ConfigError);
    sim::Conv3x3 conv{1, 2, 3, 3, std::vector<float>(18), std::vector<float>(1)};
    CHECK_THROWS_AS(conv.validate("conv"), evformer::ConfigError);
}
