// Loss curves as a small self-contained SVG image (no plotting library): step on x, loss on y, the
// train and validation series as two polylines with a legend, grid lines at round-number ticks.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace t6 {

using LossSeries = std::vector<std::pair<int64_t, double>>;  // (step, loss) pairs

// The SVG text. Points with a non-finite loss (or one beyond ±1e300) are skipped; each series is sorted by step and, when
// longer than 2000 points, reduced to the lowest and highest point of each of 1000 equal runs, so
// spikes stay visible. Empty series and single points are drawn sensibly (a dot for one point, "no
// data" when there is nothing at all).
std::string loss_svg(const LossSeries& train, const LossSeries& val, const std::string& title);

// Writes loss_svg(...) to `path` atomically (see train/atomic_file.h).
void write_loss_svg(const std::string& path, const LossSeries& train, const LossSeries& val,
                    const std::string& title);

// Round-number tick positions for an axis showing [lo, hi]: multiples of 1, 2 or 5 times a power of
// ten, at most max_ticks + 2 of them, the first <= lo and the last >= hi, spaced at least min_step
// apart. Throws t6::Error unless lo < hi with a finite difference.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks = 8, double min_step = 0);

}  // namespace t6
