#include "train/metrics_log.h"

#include "core/error.h"
#include "train/io/atomic_file.h"

namespace t6 {

namespace {
// The step of a metrics line, or -1 for a line that is not a record of this file's shape.
int64_t step_of(const nlohmann::json& j) {
  return j.is_object() && j.contains("step") && j["step"].is_number_integer() ? j["step"].get<int64_t>() : -1;
}
}  // namespace

MetricsLog::MetricsLog(std::string path) : path_(std::move(path)), file_(path_, std::ios::app) {
  T6_CHECK(file_.good(), path_, ": cannot open for appending");
}

MetricsLog MetricsLog::start(const std::string& path) {
  write_file_atomically(path, "");
  return MetricsLog(path);
}

MetricsLog MetricsLog::resume(const std::string& path, int64_t resumed_step) {
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    const int64_t step = step_of(nlohmann::json::parse(line, nullptr, false));
    if (step >= 0 && step <= resumed_step) kept += line + "\n";
  }
  write_file_atomically(path, kept);
  return MetricsLog(path);
}

void MetricsLog::append(const nlohmann::json& record) { file_ << record.dump() << "\n" << std::flush; }

void MetricsLog::read_series(LossSeries& train, LossSeries& val) const {
  std::ifstream in(path_);
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    const int64_t step = step_of(j);
    if (step < 0) continue;
    if (j.contains("loss") && j["loss"].is_number()) train.emplace_back(step, j["loss"].get<double>());
    if (j.contains("val_loss") && j["val_loss"].is_number()) val.emplace_back(step, j["val_loss"].get<double>());
  }
}

}  // namespace t6
