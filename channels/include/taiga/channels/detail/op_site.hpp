#pragma once

#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/source_location.hpp>

namespace taiga::detail {

/// The user's call site of an operation that may park (a channel or select
/// operation, a lock, a wait, a queue's put/get/join, a future's wait/get),
/// for the deadlock report: a defaulted trailing parameter of each such
/// operation, converted to a call_site only when the wait parks (passed to
/// prepare_wait as `call_site(at)`). One pointer where std::source_location
/// is one (g++); elsewhere (clang 14, the TSan build) the location's fields,
/// interned only when a wait parks, so that an operation that does not park
/// never pays the lookup.
#if TAIGA_STD_SOURCE_LOCATION
using op_site = call_site;
#else
using op_site = taiga::source_location;
#endif

}  // namespace taiga::detail
