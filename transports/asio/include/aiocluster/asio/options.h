// How the Asio driver carries a Node's packets: the options every driver
// shares (transport, TLS files, timeouts, caps; aiocluster/common/options.h),
// under this driver's name. Plain values with no Asio types, checked once
// when a Cluster is built.
#pragma once

#include "aiocluster/common/options.h"

namespace aiocluster::asio_driver {

using driver::Options;
using driver::TlsOptions;
using driver::Transport;

}  // namespace aiocluster::asio_driver
