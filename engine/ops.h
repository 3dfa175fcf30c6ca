/* ops.h: the argument types of the backend operations (backend.h), shared
   by the CPU layers (engine/cpu/), the CUDA kernels (kernels/) and the
   model machinery that calls them. Pointers inside these structs point into
   the memory of the backend an operation runs on. */
#ifndef LACOS_OPS_H
#define LACOS_OPS_H
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "math/optim_math.h"

/* y = x·Wᵀ + b with f32 weights or LLM.int8 codes. */
enum { LINEAR_F32 = 0, LINEAR_INT8 = 1 };
typedef struct linear {
  int in, out, kind;
  float *w;          /* f32 weights (out, in) */
  int8_t *q;         /* int8 codes (out, in) row-major, absmax per output row; once the backend's
                        linear_prepare has packed them (packed != NULL), in its layout: read rows
                        with linear_weight_row */
  float *scale;      /* row absmax (out): W ≈ q·scale/127 */
  float *bias;       /* (out) or NULL */
  int outliers;      /* outlier feature columns in the last forward (threshold > 0) */
  struct int8_packed *packed;   /* what linear_prepare keeps beside the packed codes, or NULL */
  size_t packed_bytes;          /* its size (counted by the allocator) */
} linear;

/* What follows a linear's product in a block, on each of its rows: with y
   = x·Wᵀ + b, out = GELU(y) (gelu: a GELU kind of math/gelu.h, -1 none;
   pre, unless NULL, keeps y), then out += residual (N,out) unless NULL,
   then, unless ln is NULL, the LayerNorm of out's row into ln (N,out)
   with ln_w, ln_b, ln_eps (mean and rstd (N) kept unless NULL), as
   layernorm_forward. out may be the residual; it is never pre. ln may be
   out (in place) or the linear's input: a row of the input is read before
   its row of ln is written. Done with the row still in cache, the
   LayerNorm costs no pass over memory and no parallel region of its own. */
typedef struct linear_epilogue {
  int gelu;
  float *pre;
  const float *residual;
  float *ln, *ln_mean, *ln_rstd;
  const float *ln_w, *ln_b;
  float ln_eps;
} linear_epilogue;

/* Caller-owned scratch for an operation, in the backend's memory: layers
   never allocate. Its size comes from the backend's *_scratch queries. */
typedef struct scratch { void *p; size_t bytes; } scratch;

/* One adapted linear: y += scaling · dropout(x)·Aᵀ·Bᵀ (PEFT's LoRA). */
typedef struct lora_slot {
  float *A, *B;      /* (r, in), (out, r); B rows in engine order ([Q;K;V] for qkv) */
  float *dA, *dB;    /* gradients, same layout */
  float *W;          /* export copy of the base weight (out, in), engine row order, or NULL (host only) */
  int in, out;
  /* The adapted outputs are columns col0..col0+out of rows ld apart (ld 0:
     out, the whole linear): BERT's query, key and value are three adapters
     on thirds of one fused [Q;K;V] linear. */
  int col0, ld;
} lora_slot;

/* What LoRA's layer math needs of an adapter's configuration. */
typedef struct lora_hyper {
  int r;
  double scaling, dropout;
  uint64_t seed;
} lora_hyper;

/* The LoRA dropout of one call: call 0 is none; otherwise row b of a
   (B,T) batch draws its mask with math/rng.h's dropout_counter from its key
   and first-token position (B entries each, in the backend's memory). */
typedef struct lora_dropout {
  uint64_t call;
  int T;
  const uint64_t *row_key;
  const int32_t *row_start;
} lora_dropout;

/* One optimizer work item: a 256-element block of an 8-bit tensor or up to
   4,096 elements of an f32-state tensor, with pointers to its first
   parameter and gradient element. */
typedef struct optim_item {
  float *p;
  const float *g;
  int64_t state;     /* first element in the code buffers (8-bit) or the f32 moments */
  int64_t block;     /* absmax index (8-bit) */
  int32_t len;
  int32_t eight_bit;
} optim_item;
#endif
