/* layout.h: the layout facts of every family behind one set of calls, for
   the machinery that serves all of them (loading, LoRA, PEFT files,
   export): a checkpoint's tensor names, and the adaptable linears — LoRA
   kinds — of a block. A kind is a bit of lacos_lora_target (kind k = bit
   1 << k) and adapts a band of one of the block's four engine linears
   (bloom_layout.h's T_*): the whole linear, or for BERT's query, key and
   value a third of the fused [Q;K;V] one. */
#ifndef LACOS_LAYOUT_H
#define LACOS_LAYOUT_H
#include "engine.h"
#include "bloom_layout.h"
#include "bert_layout.h"

enum { LORA_KINDS = 7 };

int layout_weight_count(const lacos_bloom_config *c);
void layout_weight_name(const lacos_bloom_config *c, int i, char *name, size_t n, int64_t *rows, int64_t *cols);
/* The engine linear kind k adapts (its band: rows col0..col0+cols of the
   linear's output), or -1 when the family has no such kind. */
int lora_kind_linear(const lacos_bloom_config *c, int k, int *col0, int *cols);
/* Kind k's module under a block, as PEFT names it ("self_attention.dense",
   "attention.self.query"), and the block's own name ("h.3",
   "encoder.layer.3"). */
const char *lora_kind_module(const lacos_bloom_config *c, int k);
void layout_block_name(const lacos_bloom_config *c, int layer, char *name, size_t n);
/* The kinds a family has, as target bits. */
int lora_kinds_of(const lacos_bloom_config *c);
/* The family's name and its base-model class for PEFT's adapter_config.json. */
const char *family_name(const lacos_bloom_config *c);
#endif
