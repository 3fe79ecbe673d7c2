// The process's own memory as Linux reports it in /proc/self/status (VmRSS, VmHWM): what serve's
// memory budget and eval's peak-memory measurement read.
#pragma once

#include <cstdint>
#include <string_view>

namespace switchyard {

// A "Vm...:  N kB" line of /proc/self/status in bytes; 0 where there is none (not Linux).
std::uint64_t process_status_bytes(std::string_view field);

// Hands memory the allocator keeps after a free back to the system (glibc), so that RSS follows
// what is really held after a model is unloaded.
void release_free_memory();

}  // namespace switchyard
