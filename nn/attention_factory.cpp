#include "nn/attention_factory.h"

#include "core/error.h"
#include "nn/gqa_attention.h"
#include "nn/tpa_attention.h"

namespace t6 {

std::unique_ptr<Attention> make_attention(const ModelConfig& c, const ParameterInit& init) {
  // Every kind listed and no default: the compiler flags a kind added without a module.
  switch (c.attention) {
    case AttentionKind::TPA:
    case AttentionKind::TPAKVOnly:
      return std::make_unique<TPAAttention>(c, init);  // the query factorized or not: c.factorized_query()
    case AttentionKind::MHA:
    case AttentionKind::GQA:
    case AttentionKind::MQA:
      return std::make_unique<GQAAttention>(c, init);  // differ only in c.kv_heads()
  }
  throw Error(cat("make_attention: attention kind ", static_cast<int>(c.attention), " is not one of the spec's"));
}

}  // namespace t6
