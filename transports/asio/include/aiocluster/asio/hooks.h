// Application hooks of an Asio Cluster and their queue's counters: the same
// semantics as every driver's (aiocluster/common/hooks.h). Hooks run on the
// Cluster's executor, in the order the events happened; an exception thrown
// by a hook is caught and counted, never propagated into the event loop.
#pragma once

#include "aiocluster/common/hooks.h"

namespace aiocluster::asio_driver {

using driver::HookStats;
using driver::KeyChangeHook;
using driver::LiveSetHook;
using driver::NodeHook;

}  // namespace aiocluster::asio_driver
