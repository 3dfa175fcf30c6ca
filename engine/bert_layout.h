/* bert_layout.h: facts of a BERT checkpoint's layout (transformers'
   BertModel), with no behaviour: the weight names and shapes, how the
   separate query, key and value linears map onto the engine's fused
   [Q;K;V] linear, and the module names PEFT gives the adaptable linears.
   An exporter writing a BertModel or a sentence-transformers directory
   takes the names from here (bert_weight_name). */
#ifndef LACOS_BERT_LAYOUT_H
#define LACOS_BERT_LAYOUT_H
#include "engine.h"

/* The checkpoint's tensors: 5 embedding tensors, then 16 per layer, named
   without a "bert." prefix (BertModel's own names; BertFor* checkpoints
   prefix them, and the reader accepts both). rows × cols (cols 0: a vector). */
enum { BERT_TOP = 5, BERT_PER_LAYER = 16 };
int bert_weight_count(const lacos_bloom_config *c);
void bert_weight_name(const lacos_bloom_config *c, int i, char *name, size_t n, int64_t *rows, int64_t *cols);

/* What weight i is, for the loader and the exporter: BERT_W_* below, the
   layer (-1 at the top) and, for a linear's weight or bias, the engine's
   linear (bloom_layout.h's T_*) and the first row of its band in that
   linear (query, key and value fill thirds of the fused T_QKV). */
enum {
  BERT_W_WORD = 0, BERT_W_POSITION, BERT_W_TYPE, BERT_W_EMB_LN_W, BERT_W_EMB_LN_B,
  BERT_W_LIN_W, BERT_W_LIN_B, BERT_W_LN1_W, BERT_W_LN1_B, BERT_W_LN2_W, BERT_W_LN2_B
};
typedef struct bert_weight { int what, layer, target, row0; } bert_weight;
bert_weight bert_weight_of(const lacos_bloom_config *c, int i);
#endif
