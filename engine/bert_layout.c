/* bert_layout.c: the data of bert_layout.h. */
#include "bert_layout.h"
#include "bloom_layout.h"

int bert_weight_count(const lacos_bloom_config *c) { return BERT_TOP + BERT_PER_LAYER * c->n_layer; }

static const char *const top_names[BERT_TOP] = {
  "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
  "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
};
static const char *const layer_names[BERT_PER_LAYER] = {
  "attention.self.query.weight", "attention.self.query.bias",
  "attention.self.key.weight", "attention.self.key.bias",
  "attention.self.value.weight", "attention.self.value.bias",
  "attention.output.dense.weight", "attention.output.dense.bias",
  "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
  "intermediate.dense.weight", "intermediate.dense.bias",
  "output.dense.weight", "output.dense.bias",
  "output.LayerNorm.weight", "output.LayerNorm.bias",
};

static int ffn(const lacos_bloom_config *c) { return c->intermediate_size ? c->intermediate_size : 4 * c->hidden_size; }

bert_weight bert_weight_of(const lacos_bloom_config *c, int i) {
  if (i < BERT_TOP) return (bert_weight){ i, -1, -1, 0 };
  int l = (i - BERT_TOP) / BERT_PER_LAYER, k = (i - BERT_TOP) % BERT_PER_LAYER, C = c->hidden_size;
  static const int what[BERT_PER_LAYER] = {
    BERT_W_LIN_W, BERT_W_LIN_B, BERT_W_LIN_W, BERT_W_LIN_B, BERT_W_LIN_W, BERT_W_LIN_B, BERT_W_LIN_W, BERT_W_LIN_B,
    BERT_W_LN1_W, BERT_W_LN1_B, BERT_W_LIN_W, BERT_W_LIN_B, BERT_W_LIN_W, BERT_W_LIN_B, BERT_W_LN2_W, BERT_W_LN2_B};
  static const int target[BERT_PER_LAYER] = {T_QKV, T_QKV, T_QKV, T_QKV, T_QKV, T_QKV, T_DENSE, T_DENSE,
                                             -1, -1, T_FC1, T_FC1, T_FC2, T_FC2, -1, -1};
  return (bert_weight){ what[k], l, target[k], k < 6 ? (k / 2) * C : 0 };
}

void bert_weight_name(const lacos_bloom_config *c, int i, char *name, size_t n, int64_t *rows, int64_t *cols) {
  int64_t C = c->hidden_size, I = ffn(c);
  if (i < BERT_TOP) {
    snprintf(name, n, "%s", top_names[i]);
    static const int is_table[BERT_TOP] = {1, 1, 1, 0, 0};
    *rows = i == 0 ? c->vocab_size : i == 1 ? c->max_length : i == 2 ? c->type_vocab_size : C;
    *cols = is_table[i] ? C : 0;
    return;
  }
  int l = (i - BERT_TOP) / BERT_PER_LAYER, k = (i - BERT_TOP) % BERT_PER_LAYER;
  snprintf(name, n, "encoder.layer.%d.%s", l, layer_names[k]);
  bool weight = k % 2 == 0 && k != 8 && k != 14;
  *rows = k == 10 || k == 11 ? I : C;
  *cols = !weight ? 0 : k == 12 ? I : C;
}
