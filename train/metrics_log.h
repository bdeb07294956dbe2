// metrics.jsonl of a training run: one JSON object per line, {"step", "loss", "lr", "grad_norm",
// "tokens_per_s"} after each step and {"step", "val_loss"} after each evaluation, appended as the run
// goes; and the loss curves read back from it for loss.svg.
#pragma once
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "train/io/svg_plot.h"

namespace t6 {

class MetricsLog {
 public:
  // A fresh run starts an empty file. A resumed run keeps the lines up to and including `resumed_step`
  // and drops the rest, so the file reads as one uninterrupted run.
  static MetricsLog start(const std::string& path);
  static MetricsLog resume(const std::string& path, int64_t resumed_step);

  void append(const nlohmann::json& record);  // one line, flushed
  // The train and validation losses logged so far, by step.
  void read_series(LossSeries& train, LossSeries& val) const;

 private:
  explicit MetricsLog(std::string path);
  std::string path_;
  std::ofstream file_;
};

}  // namespace t6
