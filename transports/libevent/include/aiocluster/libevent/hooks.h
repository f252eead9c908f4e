// Application hooks of a libevent Cluster and their queue's counters: the
// same semantics as every driver's (aiocluster/common/hooks.h). Hooks are
// plain C++ callables run from the event_base, never inside the call that
// raised the event.
#pragma once

#include "aiocluster/common/hooks.h"

namespace aiocluster::libevent_driver {

using driver::HookStats;
using driver::KeyChangeHook;
using driver::LiveSetHook;
using driver::NodeHook;

}  // namespace aiocluster::libevent_driver
