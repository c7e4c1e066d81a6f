// The standard process_* metrics (as the Prometheus client libraries define them), read
// from /proc at scrape time and rendered in the text format.
#pragma once

#include <string>

namespace podrelay::metrics {

void append_process_metrics(std::string& out);

}  // namespace podrelay::metrics
