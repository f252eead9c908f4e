// The random cluster and fault schedule of the property tests: the public
// simulation kit's (aiocluster/sim/faults.h).
#pragma once

#include <aiocluster/sim/faults.h>

#include "support.h"

namespace simtest {

using Scenario = aiocluster::sim::FaultSchedule;
using ScenarioOptions = aiocluster::sim::FaultOptions;

}  // namespace simtest
