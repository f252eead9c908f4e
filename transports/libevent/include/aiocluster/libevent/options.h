// How the libevent driver carries a Node's packets: the options every driver
// shares (transport, TLS files, timeouts, caps), under this driver's name.
#pragma once

#include "aiocluster/common/options.h"

namespace aiocluster::libevent_driver {

using driver::Options;
using driver::TlsOptions;
using driver::Transport;

}  // namespace aiocluster::libevent_driver
