#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "train/io/svg_plot.h"

using namespace t6;

namespace {

size_t count_of(const std::string& text, const std::string& phrase) {
  size_t count = 0;
  for (size_t at = text.find(phrase); at != std::string::npos; at = text.find(phrase, at + 1)) ++count;
  return count;
}

// The (x, y) pairs of the polyline with the given class.
std::vector<std::pair<double, double>> polyline_points(const std::string& svg, const std::string& name) {
  std::vector<std::pair<double, double>> points;
  size_t start = svg.find("<polyline class=\"" + name + "\"");
  if (start == std::string::npos) return points;
  size_t begin = svg.find("points=\"", start) + 8, end = svg.find('"', begin);
  std::istringstream in(svg.substr(begin, end - begin));
  double x, y;
  char comma;
  while (in >> x >> comma >> y) points.emplace_back(x, y);
  return points;
}

// The text of every <text> element with the given text-anchor and no other attributes after it, in
// order: the x tick labels are anchored "middle", the y tick labels "end".
std::vector<std::string> tick_labels(const std::string& svg, const std::string& anchor) {
  std::vector<std::string> labels;
  const std::string marker = "text-anchor=\"" + anchor + "\">";
  for (size_t at = svg.find(marker); at != std::string::npos; at = svg.find(marker, at + 1)) {
    size_t begin = at + marker.size();
    labels.push_back(svg.substr(begin, svg.find('<', begin) - begin));
  }
  return labels;
}

// Structural well-formedness: one root element, and every opened element closed in order.
bool well_formed(const std::string& svg) {
  if (svg.rfind("<svg ", 0) != 0) return false;
  std::vector<std::string> open;
  for (size_t at = svg.find('<'); at != std::string::npos; at = svg.find('<', at + 1)) {
    size_t close = svg.find('>', at);
    if (close == std::string::npos) return false;
    std::string tag = svg.substr(at + 1, close - at - 1);
    if (tag.empty()) return false;
    if (tag[0] == '/') {
      if (open.empty() || open.back() != tag.substr(1)) return false;
      open.pop_back();
    } else if (tag.back() != '/') {
      open.push_back(tag.substr(0, tag.find(' ')));
    }
  }
  return open.empty();
}

}  // namespace

TEST_CASE("nice_ticks picks round steps of 1, 2 or 5 times a power of ten that cover the range") {
  CHECK(nice_ticks(0, 10, 5) == std::vector<double>{0, 2, 4, 6, 8, 10});
  CHECK(nice_ticks(3, 97, 8) == std::vector<double>{0, 20, 40, 60, 80, 100});
  std::vector<double> fine = nice_ticks(2.31, 2.78, 5);
  std::vector<double> expected = {2.3, 2.4, 2.5, 2.6, 2.7, 2.8};
  REQUIRE(fine.size() == expected.size());
  for (size_t i = 0; i < fine.size(); ++i) CHECK(fine[i] == doctest::Approx(expected[i]).epsilon(1e-12));
  CHECK(nice_ticks(-7, 7, 4) == std::vector<double>{-10, -5, 0, 5, 10});
  CHECK(nice_ticks(0, 3, 8, 1) == std::vector<double>{0, 1, 2, 3});  // never finer than min_step
  std::vector<double> big = nice_ticks(0, 123456, 8);
  CHECK(big.front() == 0);
  CHECK(big[1] == 20000);
  CHECK(big.back() == 140000);
  CHECK_THROWS_AS(nice_ticks(1, 1), Error);
  CHECK_THROWS_AS(nice_ticks(0, std::numeric_limits<double>::infinity()), Error);
}

TEST_CASE("loss_svg draws both series, a legend and round tick labels") {
  LossSeries train, val;
  for (int64_t step = 0; step <= 1000; step += 10) train.emplace_back(step, 10.0 - 7.0 * step / 1000.0);
  for (int64_t step = 0; step <= 1000; step += 250) val.emplace_back(step, 10.5 - 7.0 * step / 1000.0);
  std::string svg = loss_svg(train, val, "T6 small <test> & \"quotes\"");

  CHECK(well_formed(svg));
  CHECK(count_of(svg, "<polyline ") == 2);
  CHECK(polyline_points(svg, "train").size() == train.size());
  CHECK(polyline_points(svg, "val").size() == val.size());
  CHECK(count_of(svg, "<g class=\"legend\">") == 1);
  CHECK(count_of(svg, ">train</text>") == 1);
  CHECK(count_of(svg, ">val</text>") == 1);
  CHECK(count_of(svg, "T6 small &lt;test&gt; &amp; &quot;quotes&quot;") == 1);
  CHECK(tick_labels(svg, "middle") == std::vector<std::string>{"0", "200", "400", "600", "800", "1000", "step"});
  CHECK(tick_labels(svg, "end") == std::vector<std::string>{"3", "4", "5", "6", "7", "8", "9", "10", "11"});

  // Steps grow to the right and losses fall downwards on screen: the first point is top left.
  auto points = polyline_points(svg, "train");
  CHECK(points.front().first == doctest::Approx(70.0));
  CHECK(points.back().first == doctest::Approx(780.0));
  CHECK(points.front().second < points.back().second);
}

TEST_CASE("loss_svg skips NaN and infinite losses and never prints them") {
  double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  LossSeries train = {{0, 5.0}, {1, nan}, {2, 4.0}, {3, inf}, {4, -inf}, {5, 3.0}};
  std::string svg = loss_svg(train, {{5, nan}}, "run");
  CHECK(well_formed(svg));
  CHECK(polyline_points(svg, "train").size() == 3);
  CHECK(polyline_points(svg, "val").empty());
  CHECK(count_of(svg, ">val (no data)</text>") == 1);
  CHECK(count_of(svg, "nan") == 0);
  CHECK(count_of(svg, "inf") == 0);
}

TEST_CASE("loss_svg handles empty series and a single point") {
  std::string empty = loss_svg({}, {}, "nothing yet");
  CHECK(well_formed(empty));
  CHECK(count_of(empty, "<polyline ") == 0);
  CHECK(count_of(empty, ">no data</text>") == 1);
  CHECK(count_of(empty, "(no data)") == 2);

  std::string single = loss_svg({{100, 2.5}}, {}, "one step");
  CHECK(well_formed(single));
  CHECK(polyline_points(single, "train").size() == 1);
  CHECK(count_of(single, "<circle ") == 1);  // a lone point is drawn as a dot
  CHECK(count_of(single, "nan") == 0);
  // The axes widen around the lone point by 10% of its value.
  CHECK(tick_labels(single, "middle") == std::vector<std::string>{"90", "95", "100", "105", "110", "step"});
  CHECK(tick_labels(single, "end") == std::vector<std::string>{"2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8"});
}

TEST_CASE("loss_svg sorts points by step") {
  std::string svg = loss_svg({{20, 1.0}, {0, 3.0}, {10, 2.0}}, {}, "unsorted");
  auto points = polyline_points(svg, "train");
  REQUIRE(points.size() == 3);
  CHECK(points[0].first < points[1].first);
  CHECK(points[1].first < points[2].first);
}

TEST_CASE("loss_svg reduces a long series to at most 2000 points and keeps its spikes") {
  LossSeries train;
  for (int64_t step = 0; step < 1'000'000; ++step) train.emplace_back(step, 3.0 + 0.001 * (step % 7));
  train[777'777].second = 50.0;  // one spike in a million points
  std::string svg = loss_svg(train, {}, "long run");
  auto points = polyline_points(svg, "train");
  CHECK(points.size() <= 2000);
  CHECK(points.size() >= 1000);
  // The spike is the highest point, i.e. the one nearest the top of the plot.
  double top = std::min_element(points.begin(), points.end(), [](auto& a, auto& b) { return a.second < b.second; })
                   ->second;
  CHECK(top == doctest::Approx(40.0).epsilon(0.01));
  CHECK(well_formed(svg));
}

TEST_CASE("write_loss_svg writes the same text to a file") {
  std::string path = (std::filesystem::temp_directory_path() / ("t6_svg_" + std::to_string(::getpid()) + ".svg"))
                         .string();
  LossSeries train = {{0, 4.0}, {10, 3.0}}, val = {{10, 3.5}};
  write_loss_svg(path, train, val, "file");
  std::ifstream in(path);
  std::ostringstream content;
  content << in.rdbuf();
  CHECK(content.str() == loss_svg(train, val, "file"));
  std::filesystem::remove(path);
}
