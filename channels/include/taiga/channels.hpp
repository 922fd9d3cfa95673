// taiga channels: typed channels with Stackless semantics, select, the
// synchronization toolkit, and actors with supervisors.
#pragma once

#include <taiga/channels/actor.hpp>
#include <taiga/channels/channel.hpp>
#include <taiga/channels/executor.hpp>
#include <taiga/channels/future.hpp>
#include <taiga/channels/queue.hpp>
#include <taiga/channels/select.hpp>
#include <taiga/channels/status.hpp>
#include <taiga/channels/supervisor.hpp>
#include <taiga/channels/sync.hpp>
#include <taiga/channels/ticker.hpp>
#include <taiga/runtime.hpp>
