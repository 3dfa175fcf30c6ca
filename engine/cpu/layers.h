/* layers.h: the CPU reference layers, llm.c style. Each layer is a pair
   <name>_forward / <name>_backward over raw f32 buffers; arguments go
   outputs, inputs, weights, sizes; backward functions ACCUMULATE into their
   gradient outputs (+=), so a training step zeroes gradients once. A NULL
   gradient pointer means "not needed" (frozen weights). Shapes in comments
   use B batch, T tokens, C channels, NH heads, HD head size, N = B·T rows. */
#ifndef LACOS_LAYERS_H
#define LACOS_LAYERS_H
#include "../engine.h"

/* ---- layernorm.c ---- */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int64_t N, int C, float eps);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int64_t N, int C);

/* ---- gelu.c ---- */
void gelu_forward(float *out, const float *inp, int64_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n);

/* ---- attention.c ---- */
/* Per-head ALiBi slopes as transformers' build_alibi_tensor computes them. */
void alibi_slopes(float *slopes, int NH);
/* out (B,T,C), probs (B,NH,T,T) or NULL, qkv (B,T,3C) in [Q|K|V] block order,
   mask (B,T) 1 = token, 0 = padding. Causal + padding masks, ALiBi over key
   positions counted from the first real token, softmax in f32. */
void attention_forward(float *out, float *probs, const float *qkv, const int32_t *mask,
                       const float *slopes, int B, int T, int C, int NH);
void attention_backward(float *dqkv, const float *dout, const float *probs, const float *qkv,
                        const int32_t *mask, int B, int T, int C, int NH);

/* ---- pooling.c ---- */
enum { POOL_MEAN = 0, POOL_WEIGHTEDMEAN = 1, POOL_LASTTOKEN = 2 };
void pooling_forward(float *out, const float *inp, const int32_t *mask, int B, int T, int C, int mode);
void pooling_backward(float *dinp, const float *dout, const int32_t *mask, int B, int T, int C, int mode);

/* ---- residual.c ---- */
void residual_forward(float *out, const float *a, const float *b, int64_t n);
void add_inplace(float *acc, const float *x, int64_t n);

/* ---- linear.c: y = x·Wᵀ + b with f32 or int8 weights ---- */
enum { LINEAR_F32 = 0, LINEAR_INT8 = 1 };
typedef struct int8_packed int8_packed;   /* int8_matmul.c */
typedef struct linear {
  int in, out, kind;
  float *w;          /* f32 weights (out, in) */
  int8_t *q;         /* int8 codes (out, in) row-major, absmax per output row; packed in place by
                        linear_prepare when packed != NULL (read rows with linear_weight_row) */
  float *scale;      /* row absmax (out): W ≈ q·scale/127 */
  float *bias;       /* (out) or NULL */
  int outliers;      /* outlier feature columns in the last forward (threshold > 0) */
  int8_packed *packed; /* the codes' packed layout and offsets (int8_matmul.c), or NULL */
} linear;

/* Scratch for int8 products, grown on demand and reused. */
typedef struct int8_scratch {
  int8_t *a; size_t a_bytes;      /* quantised activations */
  float *rs; size_t rs_bytes;     /* row scales */
  int32_t *c; size_t c_bytes;     /* int32 products */
  float *tmp; size_t tmp_bytes;   /* f32 scratch (outliers, dequantised weight tiles) */
  int *cols; size_t cols_bytes;   /* outlier column indices */
  int8_t *qt; size_t qt_bytes;    /* transposed weight codes for input gradients (CUDA: kernels/linear.cu;
                                     CPU: packed linears, int8_matmul.c) */
  uint8_t *u; size_t u_bytes;     /* CPUs without VNNI: split activations (linear.c, gemm_s8) */
  int32_t *c2; size_t c2_bytes;   /* CPUs without VNNI: products of the two halves */
  void *sp; size_t sp_bytes;      /* oneDNN's scratchpad for packed products (int8_matmul.c) */
} int8_scratch;
void int8_scratch_free(int8_scratch *s);
/* Grows one buffer of an int8_scratch to at least want bytes (a quarter more). */
int int8_scratch_grow(void **p, size_t *have, size_t want, const char *what);
/* The bytes linear_forward and linear_backward_input grow s to for N rows of
   an in→out int8 linear (no outlier columns), summed over s's buffers. */
double int8_scratch_need(int64_t N, int in, int out, bool fast_backward);

/* Row-wise absmax quantisation with LLM.int8 outlier semantics (bitsandbytes
   int8_vectorwise_quant): values with |x| >= threshold (> 0) are left out of
   the row absmax and, for more than one row, their whole column is zeroed;
   the outlier column indices are returned in cols/ncols. */
void quantize_rows(int8_t *q, float *absmax, const float *x, int64_t N, int C, float threshold,
                   int *cols, int *ncols);
/* Rows row0..row0+nrows-1 of W (f32) → int8 codes and per-row absmax in l (before linear_prepare). */
void linear_quantize_weights(linear *l, const float *w_rows_f32, int row0, int nrows);
/* Once the weights are final (model loaded or generated): int8 codes are
   packed in place into the layout of oneDNN's int8 matmul where this CPU's
   kernels use it (VNNI/AMX), with the offsets of their u8 products. Does
   nothing for f32 weights, on other CPUs or shapes (the plain GEMM stays).
   linear_release frees what it added. */
int linear_prepare(linear *l);
void linear_release(linear *l);
/* Bytes linear_prepare added for l (counted by the engine's allocator). */
double linear_prepared_bytes(const linear *l);

int linear_forward(float *out, const float *inp, linear *l, int64_t N, float threshold, int8_scratch *s);
/* dinp (N,in) += dout (N,out) · W. int8 weights: exact f32 product with the
   dequantised weights, or (fast_int8) an int8 product with per-row
   quantised gradients. */
int linear_backward_input(float *dinp, const float *dout, const linear *l, int64_t N, bool fast_int8,
                          int8_scratch *s);
/* Dequantised row r of W into dst (in). */
void linear_weight_row(float *dst, const linear *l, int r);

/* ---- int8_matmul.c: packed int8 products through oneDNN's matmul primitive ---- */
/* Would linear_prepare pack an in→out int8 linear on this CPU? */
bool int8_packing_available(int in, int out);
int int8_pack(linear *l);
void int8_pack_free(linear *l);
double int8_packed_bytes(const linear *l);
/* What the +128 of u8 codes adds to the products: 128·Σ_k W[n,k] per output
   (backward false), 128·Σ_n W[n,k] per input (true). */
const int32_t *int8_packed_offsets(const linear *l, bool backward);
/* Row r of W from the packed codes: dst (in) = codes · scale; one code. */
void int8_packed_row(float *dst, const linear *l, int r, float scale);
int8_t int8_packed_code(const linear *l, int r, int c);
/* c (M,out) = a (M,in)·Wᵀ and c (M,in) = a (M,out)·W, a the u8 codes (s8 + 128): uncompensated sums. */
int int8_matmul_forward(int32_t *c, const uint8_t *a, int64_t M, const linear *l, int8_scratch *s);
int int8_matmul_backward(int32_t *c, const uint8_t *a, int64_t M, const linear *l, int8_scratch *s);
double int8_matmul_scratchpad(int64_t M, int in, int out);

/* Plain f32 GEMM helpers (row-major): C = alpha·A·op(B) + beta·C. */
void sgemm_nt(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta);
void sgemm_nn(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta);
void sgemm_tn(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta);

/* ---- embedding.c ---- */
/* out (N,C) = rows ids of a (V,C) table of dtype f32/f16/bf16, or int8 with per-row scales. */
int embedding_forward(float *out, const int32_t *ids, int64_t N, const void *table, int dtype,
                      const float *row_scale, int V, int C);
#endif
