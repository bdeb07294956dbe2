// The learning-rate schedule of the spec, as nanoGPT's get_lr: linear warm-up from 0, then cosine (or
// linear) decay to min_lr at decay_steps, constant min_lr after; "constant" keeps lr after the warm-up.
//
// Step convention: `it` is the number of updates already taken (nanoGPT's iter_num), so the trainer's
// step s (counted from 1, as metrics.jsonl logs it) runs at learning_rate(o, s − 1). With a warm-up the
// first update therefore runs at lr·0/warmup = 0, update warmup + 1 is the first at the full lr, and
// update decay_steps + 1 the first at min_lr.
#pragma once
#include <cmath>
#include <cstdint>

#include "train/train_config.h"

namespace t6 {

inline double learning_rate(const OptimConfig& o, int64_t it) {
  if (it < o.warmup_steps) return o.lr * static_cast<double>(it) / static_cast<double>(o.warmup_steps);
  if (o.schedule == Schedule::Constant) return o.lr;
  if (it > o.decay_steps) return o.min_lr;
  const double span = static_cast<double>(o.decay_steps - o.warmup_steps);
  const double progress = span > 0 ? static_cast<double>(it - o.warmup_steps) / span : 1.0;  // 0 → 1
  const double coefficient = o.schedule == Schedule::Cosine ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;
  return o.min_lr + coefficient * (o.lr - o.min_lr);
}

}  // namespace t6
