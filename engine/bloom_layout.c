/* bloom_layout.c: the data of bloom_layout.h. */
#include "bloom_layout.h"

const char *const bloom_target_names[NTARGETS] = {
  "self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h",
};
const char *const bloom_target_short[NTARGETS] = {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"};
const int bloom_lin_out_mult[NTARGETS] = {3, 1, 4, 1}, bloom_lin_in_mult[NTARGETS] = {1, 1, 1, 4};

int bloom_target_from_name(const char *s) {
  for (int t = 0; t < NTARGETS; t++)
    if (!strcmp(s, bloom_target_short[t]) || !strcmp(s, bloom_target_names[t])) return t;
  return -1;
}

int bloom_weight_count(const lacos_bloom_config *c) { return 5 + 12 * c->n_layer; }

void bloom_weight_name(const lacos_bloom_config *c, int i, char *name, size_t n, int64_t *rows, int64_t *cols) {
  int64_t C = c->hidden_size;
  static const char *const top[5] = {"word_embeddings.weight", "word_embeddings_layernorm.weight",
                                     "word_embeddings_layernorm.bias", "ln_f.weight", "ln_f.bias"};
  if (i < 5) {
    snprintf(name, n, "%s", top[i]);
    *rows = i == 0 ? c->vocab_size : C;
    *cols = i == 0 ? C : 0;
    return;
  }
  int l = (i - 5) / 12, k = (i - 5) % 12;
  static const char *const part[12] = {
    "input_layernorm.weight", "input_layernorm.bias",
    "self_attention.query_key_value.weight", "self_attention.query_key_value.bias",
    "self_attention.dense.weight", "self_attention.dense.bias",
    "post_attention_layernorm.weight", "post_attention_layernorm.bias",
    "mlp.dense_h_to_4h.weight", "mlp.dense_h_to_4h.bias",
    "mlp.dense_4h_to_h.weight", "mlp.dense_4h_to_h.bias"};
  static const int out_mult[12] = {1, 1, 3, 3, 1, 1, 1, 1, 4, 4, 1, 1};
  static const int in_mult[12] = {0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 0};
  snprintf(name, n, "h.%d.%s", l, part[k]);
  *rows = C * out_mult[k];
  *cols = C * in_mult[k];
}

int qkv_checkpoint_row(int r, int C, int NH) {
  int HD = C / NH, part = r / C, head = (r % C) / HD, d = r % HD;
  return head * 3 * HD + part * HD + d;
}
