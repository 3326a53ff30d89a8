// Fault injection for the crash-consistency tests (tests/python/test_fault_inject.py, scripts/fault_inject.py):
// every step of an atomic write (util/atomic_file.h) is a numbered "fault point", counted from 1 over the life of
// the process:
//   open    the temporary file was created (empty)
//   write   its bytes are written and fsync'ed, the rename has not happened
//   rename  the target was replaced, the directory not yet fsync'ed
// With MNQ_FAULT_AT=<n> the process kills itself with SIGKILL at point n (no destructor, no flush: as `kill -9`
// or a power cut at that instant). With MNQ_FAULT_TRACE=<file> each point appends "<n> <kind> <path>" to that
// file (O_APPEND, unbuffered), so an uninterrupted run lists every point a harness can kill at. Without the
// variables a fault point costs one relaxed atomic increment.
#pragma once

#include <cstdint>
#include <string>

namespace mnq {
namespace util {

void fault_point(const char* kind, const std::string& path);
// Points passed so far in this process (for tests).
int64_t fault_points_passed();

}  // namespace util
}  // namespace mnq
