#include "evformer/sim/energy.hpp"

#include <cmath>
#include <string>

#include "evformer/error.hpp"

namespace evformer::sim {

void EnergyModel::validate() const {
    auto check = [](double v, const char* field) {
        if (!std::isfinite(v) || v < 0)
            throw ConfigError(std::string(field) + " = " + std::to_string(v) +
                              ": an energy per operation must be a finite number >= 0");
    };
    check(joules_per_sop, "energy per SOP");
    check(joules_per_mac, "energy per MAC");
}

}  // namespace evformer::sim
