// Readings of /proc for one process: CPU time (utime + stime, clock-tick resolution) and
// resident set size. Plain functions; a missing process reads as negative values.
#pragma once

#include <sys/types.h>

namespace bench {

// utime + stime of `pid` in seconds (all threads), or -1.
double cpu_seconds(pid_t pid);
// VmRSS of `pid` in KiB, or -1.
long rss_kib(pid_t pid);
// Busy CPU seconds of the whole machine (all CPUs, /proc/stat: total minus idle and
// iowait); the part not used by our processes is someone else's load.
double machine_busy_seconds();
// CPU seconds (user + system) used by this process so far.
double self_cpu_seconds();

}  // namespace bench
