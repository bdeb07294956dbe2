#include "train/io/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>

#include "core/error.h"
#include "train/io/atomic_file.h"

namespace t6 {

namespace {

constexpr size_t kMaxPointsPerSeries = 2000;
constexpr double kLargestPlottedLoss = 1e300;  // beyond this the axis range itself would overflow

// Image geometry in SVG user units: the plot area is [kLeft, kRight] x [kTop, kBottom].
constexpr double kWidth = 800, kHeight = 500;
constexpr double kLeft = 70, kRight = 780, kTop = 40, kBottom = 450;

// One colour per series (the "tab10" palette: train and val take its first two), repeating after ten.
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string format(const char* pattern, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, value);
  return buffer;
}

std::string xml_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters other than tab and newline are not allowed in XML 1.0 at all.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out += c;
    }
  }
  return out;
}

// Plottable points sorted by step, at most kMaxPointsPerSeries of them. A long series is cut into
// runs and each run keeps its lowest and its highest point, so a loss spike survives the reduction.
std::vector<std::pair<double, double>> prepared(const LossSeries& series) {
  std::vector<std::pair<int64_t, double>> points;
  for (const auto& [step, loss] : series)
    if (std::isfinite(loss) && std::fabs(loss) <= kLargestPlottedLoss) points.emplace_back(step, loss);
  std::stable_sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  std::vector<std::pair<double, double>> kept;
  auto keep = [&](size_t i) { kept.emplace_back(static_cast<double>(points[i].first), points[i].second); };
  if (points.size() <= kMaxPointsPerSeries) {
    for (size_t i = 0; i < points.size(); ++i) keep(i);
    return kept;
  }
  const size_t runs = kMaxPointsPerSeries / 2;
  for (size_t run = 0; run < runs; ++run) {
    size_t begin = run * points.size() / runs, end = (run + 1) * points.size() / runs;
    size_t lowest = begin, highest = begin;
    for (size_t i = begin; i < end; ++i) {
      if (points[i].second < points[lowest].second) lowest = i;
      if (points[i].second > points[highest].second) highest = i;
    }
    keep(std::min(lowest, highest));
    if (lowest != highest) keep(std::max(lowest, highest));
  }
  return kept;
}

// Label text for a tick value: just enough decimals to tell ticks `step` apart; ticks of thousands or
// millions apart (token counts) as "250K", "1.5M".
std::string tick_label(double value, double step) {
  if (std::fabs(value) >= 1e12 || step < 1e-6) return format("%g", value);
  if (step >= 1000) {
    const bool millions = step >= 1e5;
    return value == 0 ? "0" : format(millions ? "%gM" : "%gK", value / (millions ? 1e6 : 1e3));
  }
  int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

// [lo, hi] covering `values`, widened when all values are equal so the axis has a length.
std::pair<double, double> data_range(const std::vector<double>& values, double empty_lo, double empty_hi,
                                     double widen_by) {
  if (values.empty()) return {empty_lo, empty_hi};
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  if (*lo < *hi) return {*lo, *hi};
  double pad = *lo != 0 ? std::max(std::fabs(*lo) * 0.1, widen_by) : widen_by;
  return {*lo - pad, *hi + pad};
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int max_ticks, double min_step) {
  T6_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo < hi && std::isfinite(hi - lo),
           "nice_ticks: needs a finite range lo < hi, got [", lo, ", ", hi, "]");
  T6_CHECK(max_ticks >= 1, "nice_ticks: max_ticks must be at least 1, got ", max_ticks);
  const double raw = std::max((hi - lo) / max_ticks, min_step);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * magnitude;
  for (double multiple : {1.0, 2.0, 5.0}) {
    if (multiple * magnitude >= raw) {
      step = multiple * magnitude;
      break;
    }
  }
  // Ticks are k·step for whole k, so 0 is exactly 0 and labels come out round. The count bound only
  // guards against rounding surprises: (last - first) <= max_ticks + 1 already.
  const double first = std::floor(lo / step), last = std::ceil(hi / step);
  std::vector<double> ticks;
  for (double k = first; k <= last && ticks.size() < static_cast<size_t>(max_ticks) + 2; ++k)
    ticks.push_back(k * step);
  return ticks;
}

std::string curves_svg(const std::vector<NamedSeries>& series, const PlotLabels& labels) {
  std::vector<std::vector<std::pair<double, double>>> plotted;
  for (const NamedSeries& s : series) plotted.push_back(prepared(s.points));
  std::vector<double> xs, ys;
  for (const auto& points : plotted) {
    for (const auto& [x, y] : points) {
      xs.push_back(x);
      ys.push_back(y);
    }
  }
  const auto [x_lo, x_hi] = data_range(xs, 0, 1, 1);
  const auto [y_lo, y_hi] = data_range(ys, 0, 1, 1e-3);
  const std::vector<double> x_ticks = nice_ticks(x_lo, x_hi, 8, 1);  // steps are whole numbers
  const std::vector<double> y_ticks = nice_ticks(y_lo, y_hi, 8);
  // The axes span whole tick intervals, so the outermost grid lines frame the plot.
  const double x_min = x_ticks.front(), x_max = x_ticks.back();
  const double y_min = y_ticks.front(), y_max = y_ticks.back();
  auto px = [&](double x) { return kLeft + (x - x_min) / (x_max - x_min) * (kRight - kLeft); };
  auto py = [&](double y) { return kBottom - (y - y_min) / (y_max - y_min) * (kBottom - kTop); };
  auto number = [](double v) { return format("%.1f", v); };

  std::string svg;
  const std::string width = format("%g", kWidth), height = format("%g", kHeight);
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + width + "\" height=\"" + height + "\" viewBox=\"0 0 " +
         width + " " + height + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + number((kLeft + kRight) / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">" +
         xml_escaped(labels.title) + "</text>\n";

  for (double x : x_ticks) {
    svg += "<line x1=\"" + number(px(x)) + "\" y1=\"" + number(kTop) + "\" x2=\"" + number(px(x)) + "\" y2=\"" +
           number(kBottom) + "\" stroke=\"#e0e0e0\"/>\n";
    svg += "<text x=\"" + number(px(x)) + "\" y=\"" + number(kBottom + 18) + "\" text-anchor=\"middle\">" +
           tick_label(x, x_ticks.size() > 1 ? x_ticks[1] - x_ticks[0] : 1) + "</text>\n";
  }
  for (double y : y_ticks) {
    svg += "<line x1=\"" + number(kLeft) + "\" y1=\"" + number(py(y)) + "\" x2=\"" + number(kRight) + "\" y2=\"" +
           number(py(y)) + "\" stroke=\"#e0e0e0\"/>\n";
    svg += "<text x=\"" + number(kLeft - 8) + "\" y=\"" + number(py(y) + 4) + "\" text-anchor=\"end\">" +
           tick_label(y, y_ticks.size() > 1 ? y_ticks[1] - y_ticks[0] : 1) + "</text>\n";
  }
  svg += "<rect x=\"" + number(kLeft) + "\" y=\"" + number(kTop) + "\" width=\"" + number(kRight - kLeft) +
         "\" height=\"" + number(kBottom - kTop) + "\" fill=\"none\" stroke=\"black\"/>\n";
  svg += "<text x=\"" + number((kLeft + kRight) / 2) + "\" y=\"" + number(kHeight - 12) +
         "\" text-anchor=\"middle\">" + xml_escaped(labels.x_label) + "</text>\n";
  svg += "<text x=\"18\" y=\"" + number((kTop + kBottom) / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 18 " +
         number((kTop + kBottom) / 2) + ")\">" + xml_escaped(labels.y_label) + "</text>\n";

  auto draw = [&](const std::vector<std::pair<double, double>>& points, const std::string& name, const char* color) {
    if (points.empty()) return;
    svg += "<polyline class=\"" + xml_escaped(name) + "\" fill=\"none\" stroke=\"" + color +
           "\" stroke-width=\"1.5\" stroke-linejoin=\"round\" points=\"";
    for (size_t i = 0; i < points.size(); ++i) {
      if (i) svg += ' ';
      svg += number(px(points[i].first)) + ',' + number(py(points[i].second));
    }
    svg += "\"/>\n";
    if (points.size() == 1)  // a one-point polyline draws nothing; mark the point itself
      svg += "<circle cx=\"" + number(px(points[0].first)) + "\" cy=\"" + number(py(points[0].second)) +
             "\" r=\"3\" fill=\"" + color + "\"/>\n";
  };
  auto color_of = [](size_t i) { return kColors[i % std::size(kColors)]; };
  for (size_t i = 0; i < series.size(); ++i) draw(plotted[i], series[i].name, color_of(i));
  if (xs.empty())
    svg += "<text x=\"" + number((kLeft + kRight) / 2) + "\" y=\"" + number((kTop + kBottom) / 2) +
           "\" text-anchor=\"middle\" fill=\"#808080\">no data</text>\n";

  // The legend sits in the top right corner, where falling loss curves rarely are; it is as wide as
  // its longest name (about 7 units a character at this font size).
  size_t longest = 0;
  for (const NamedSeries& s : series) longest = std::max(longest, s.name.size() + (s.points.empty() ? 10 : 0));
  const double legend_width = std::max(140.0, 52.0 + 7.0 * static_cast<double>(longest));
  const double legend_left = kRight - 10 - legend_width;
  svg += "<g class=\"legend\">\n";
  svg += "<rect x=\"" + number(legend_left) + "\" y=\"" + number(kTop + 10) + "\" width=\"" + number(legend_width) +
         "\" height=\"" + number(8.0 + 20.0 * static_cast<double>(series.size())) + "\" fill=\"white\" stroke=\"#808080\"/>\n";
  double legend_y = kTop + 28;
  for (size_t i = 0; i < series.size(); ++i) {
    svg += "<line x1=\"" + number(legend_left + 10) + "\" y1=\"" + number(legend_y - 4) + "\" x2=\"" +
           number(legend_left + 34) + "\" y2=\"" + number(legend_y - 4) + "\" stroke=\"" + color_of(i) +
           "\" stroke-width=\"2\"/>\n";
    svg += "<text x=\"" + number(legend_left + 42) + "\" y=\"" + number(legend_y) + "\">" + xml_escaped(series[i].name) +
           (plotted[i].empty() ? " (no data)" : "") + "</text>\n";
    legend_y += 20;
  }
  svg += "</g>\n</svg>\n";
  return svg;
}

std::string loss_svg(const LossSeries& train, const LossSeries& val, const std::string& title) {
  return curves_svg({{"train", train}, {"val", val}}, {title, "step", "loss"});
}

void write_curves_svg(const std::string& path, const std::vector<NamedSeries>& series, const PlotLabels& labels) {
  write_file_atomically(path, curves_svg(series, labels));
}

void write_loss_svg(const std::string& path, const LossSeries& train, const LossSeries& val,
                    const std::string& title) {
  write_file_atomically(path, loss_svg(train, val, title));
}

}  // namespace t6
