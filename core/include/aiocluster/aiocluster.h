// Everything the core offers, in one include.
#pragma once

#include "aiocluster/cluster_state.h"
#include "aiocluster/codec.h"
#include "aiocluster/config.h"
#include "aiocluster/events.h"
#include "aiocluster/exchange.h"
#include "aiocluster/framing.h"
#include "aiocluster/messages.h"
#include "aiocluster/node.h"
#include "aiocluster/node_state.h"
#include "aiocluster/random.h"
#include "aiocluster/sealing.h"
#include "aiocluster/stats.h"
#include "aiocluster/types.h"
