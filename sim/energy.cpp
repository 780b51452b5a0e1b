#include "evformer/sim/energy.hpp"

#include <fmt/format.h>

#include <cmath>
#include <string>

#include "evformer/error.hpp"

namespace evformer::sim {

void EnergyModel::validate() const {
    auto check = [](double v, const char* field) {
        if (!std::isfinite(v) || v < 0)
            throw ConfigError(fmt::format(
                "{} = {:g} J: an energy per operation must be a finite number of joules >= 0",
                field, v));
    };
    check(joules_per_sop, "energy per SOP");
    check(joules_per_mac, "energy per MAC");
}

}  // namespace evformer::sim
