// Percentiles of latency samples (nearest-rank on a sorted copy).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace bench {

struct Percentiles {
  double p50_us = NAN, p90_us = NAN, p99_us = NAN, p999_us = NAN, max_us = NAN;
  std::size_t samples = 0;
};

inline Percentiles percentiles(std::vector<std::int64_t> samples) {
  Percentiles p;
  p.samples = samples.size();
  if (samples.empty()) return p;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(samples.size())));
    rank = std::clamp<std::size_t>(rank, 1, samples.size());
    return static_cast<double>(samples[rank - 1]) / 1000.0;
  };
  p.p50_us = at(0.50);
  p.p90_us = at(0.90);
  p.p99_us = at(0.99);
  p.p999_us = at(0.999);
  p.max_us = static_cast<double>(samples.back()) / 1000.0;
  return p;
}

}  // namespace bench
