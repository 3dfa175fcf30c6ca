/* bloom_layout.h: facts of BLOOM's checkpoint layout (transformers'
   BloomModel), with no behaviour: the four linears of a block and their
   names, the checkpoint's weight names and shapes, and the per-head
   interleave of query_key_value's rows. */
#ifndef LACOS_BLOOM_LAYOUT_H
#define LACOS_BLOOM_LAYOUT_H
#include "engine.h"

/* The four linears of a block, in the order PEFT names them. */
enum { T_QKV = 0, T_DENSE = 1, T_FC1 = 2, T_FC2 = 3, NTARGETS = 4 };
extern const char *const bloom_target_names[NTARGETS];   /* "self_attention.query_key_value", ... */
extern const char *const bloom_target_short[NTARGETS];   /* "query_key_value", ... (PEFT's target_modules) */
/* Shape of linear t: out = C·out_mult, in = C·in_mult. */
extern const int bloom_lin_out_mult[NTARGETS], bloom_lin_in_mult[NTARGETS];
/* A target by its short or long name; -1 when none. */
int bloom_target_from_name(const char *s);

/* The checkpoint's tensors: 5 at the top, 12 per block. Name i (without
   the "transformer." prefix) and its shape, cols 0 for a vector. */
int bloom_weight_count(const lacos_bloom_config *c);
void bloom_weight_name(const lacos_bloom_config *c, int i, char *name, size_t n, int64_t *rows, int64_t *cols);

/* Row r of the engine's query_key_value ([Q;K;V] blocks: row = part·C +
   head·HD + d) is this row of the checkpoint's per-head interleave (row =
   head·3·HD + part·HD + d). The engine reorders once at load and back on
   export, so no kernel knows about the interleave. */
int qkv_checkpoint_row(int r, int C, int NH);
#endif
