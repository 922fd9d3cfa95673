// taiga runtime: tasklets, fibers, timers and blocking offload.
#pragma once

#include <taiga/runtime/blocking.hpp>
#include <taiga/runtime/config.hpp>
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/fiber.hpp>
#include <taiga/runtime/generator.hpp>
#include <taiga/runtime/park.hpp>
#include <taiga/runtime/poller.hpp>
#include <taiga/runtime/runtime.hpp>
#include <taiga/runtime/tasklet.hpp>
#include <taiga/runtime/tasklet_local.hpp>
#include <taiga/runtime/this_tasklet.hpp>
#include <taiga/runtime/timeout.hpp>
#include <taiga/runtime/timer.hpp>
#include <taiga/runtime/trace.hpp>
