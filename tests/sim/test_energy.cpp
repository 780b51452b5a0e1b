#include <doctest/doctest.h>

#include "evformer/error.hpp"
#include "evformer/sim/energy.hpp"

using evformer::sim::EnergyModel;

TEST_CASE("energy is 77 fJ per SOP and 4.6 pJ per MAC by default, in millijoules") {
    EnergyModel e;
    CHECK(e.millijoules(1e9, 0) == doctest::Approx(0.077));
    CHECK(e.millijoules(0, 1e6) == doctest::Approx(4.6e-3));
    CHECK(e.millijoules(2e9, 1e6) == doctest::Approx(0.154 + 4.6e-3));
}

TEST_CASE("energy prices must be finite and non-negative") {
    EnergyModel e;
    e.joules_per_sop = -1;
    CHECK_THROWS_AS(e.validate(), evformer::ConfigError);
    e = {};
    e.joules_per_mac = 1.0 / 0.0;
    CHECK_THROWS_AS(e.validate(), evformer::ConfigError);
}
