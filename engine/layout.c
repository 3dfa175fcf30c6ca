/* layout.c: layout.h's calls, answered from each family's leaf file. */
#include "layout.h"

int layout_weight_count(const lacos_bloom_config *c) {
  return c->family == LACOS_FAMILY_BERT ? bert_weight_count(c) : bloom_weight_count(c);
}

void layout_weight_name(const lacos_bloom_config *c, int i, char *name, size_t n, int64_t *rows, int64_t *cols) {
  if (c->family == LACOS_FAMILY_BERT) bert_weight_name(c, i, name, n, rows, cols);
  else bloom_weight_name(c, i, name, n, rows, cols);
}

static const char *const bert_modules[LORA_KINDS] = {
  NULL, "attention.output.dense", "intermediate.dense", "output.dense",
  "attention.self.query", "attention.self.key", "attention.self.value",
};

int lora_kind_linear(const lacos_bloom_config *c, int k, int *col0, int *cols) {
  int C = c->hidden_size, I = c->intermediate_size ? c->intermediate_size : 4 * C;
  if (k < 0 || k >= LORA_KINDS) return -1;
  if (c->family != LACOS_FAMILY_BERT) {
    if (k >= NTARGETS) return -1;
    *col0 = 0;
    *cols = C * bloom_lin_out_mult[k];
    return k;
  }
  if (k == T_QKV) return -1;
  if (k >= NTARGETS) { *col0 = (k - NTARGETS) * C; *cols = C; return T_QKV; }
  *col0 = 0;
  *cols = k == T_FC1 ? I : C;
  return k;
}

const char *lora_kind_module(const lacos_bloom_config *c, int k) {
  if (k < 0 || k >= LORA_KINDS) return NULL;
  if (c->family == LACOS_FAMILY_BERT) return bert_modules[k];
  return k < NTARGETS ? bloom_target_names[k] : NULL;
}

void layout_block_name(const lacos_bloom_config *c, int layer, char *name, size_t n) {
  snprintf(name, n, c->family == LACOS_FAMILY_BERT ? "encoder.layer.%d" : "h.%d", layer);
}

int lora_kinds_of(const lacos_bloom_config *c) {
  return c->family == LACOS_FAMILY_BERT ? 0x7e : 0x0f;
}

const char *family_name(const lacos_bloom_config *c) { return c->family == LACOS_FAMILY_BERT ? "BERT" : "BLOOM"; }
