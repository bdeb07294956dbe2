// Loss curves as a small self-contained SVG image (no plotting library): step (or tokens) on x, loss
// on y, each series a polyline of its own colour named in a legend, grid lines at round-number ticks.
// loss.svg of a run shows its train and validation series; an experiment's curves.svg one validation
// series per run.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace t6 {

using LossSeries = std::vector<std::pair<int64_t, double>>;  // (step, loss) pairs, or (tokens, loss)

struct NamedSeries {
  std::string name;  // in the legend, and the polyline's class
  LossSeries points;
};
struct PlotLabels {
  std::string title, x_label = "step", y_label = "loss";
};

// The SVG text of several series, coloured in order (ten colours, then they repeat), with the same
// treatment of each series as loss_svg below.
std::string curves_svg(const std::vector<NamedSeries>& series, const PlotLabels& labels);
void write_curves_svg(const std::string& path, const std::vector<NamedSeries>& series, const PlotLabels& labels);

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
