/* layers.h: the CPU reference layers, llm.c style, and the CPU backend
   table's entries (backend_cpu.c points at these very functions, so their
   signatures are backend.h's). Each layer is a pair <name>_forward /
   <name>_backward over raw f32 buffers; arguments go outputs, inputs,
   weights, sizes; backward functions ACCUMULATE into their gradient outputs
   (+=), so a training step zeroes gradients once. A NULL gradient pointer
   means "not needed" (frozen weights). Layers never allocate: scratch comes
   from the caller, sized by the *_scratch functions. Shapes in comments use
   B batch, T tokens, C channels, NH heads, HD head size, N = B·T rows. */
#ifndef LACOS_LAYERS_H
#define LACOS_LAYERS_H
#include "../engine.h"
#include "../ops.h"
#include "../math/pooling_weights.h"
#include "../math/gelu.h"
#include "../parallel.h"

/* Threads that per-thread scratch of `per_thread` bytes in ws can serve (at
   most OpenMP's team size), 0 when ws cannot serve one. */
static inline int scratch_threads(scratch ws, size_t per_thread) {
  size_t n = per_thread ? ws.bytes / per_thread : 0;
  int max = omp_get_max_threads();
  return n < (size_t)max ? (int)n : max;
}

/* ---- layernorm.c ---- */
int layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                      const float *weight, const float *bias, int64_t N, int C, float eps);
/* One row on the calling thread (out may be inp); mean, rstd: that row's, or NULL. */
void layernorm_row(float *out, float *mean, float *rstd, const float *inp, const float *weight, const float *bias,
                   int C, float eps);
int layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                       const float *weight, const float *mean, const float *rstd, int64_t N, int C);

/* ---- gelu.c ---- */
/* kind: GELU_TANH or GELU_ERF (math/gelu.h) */
int gelu_forward(float *out, const float *inp, int64_t n, int kind);
/* The same on the calling thread alone (out may be inp). */
void gelu_row(float *out, const float *inp, int64_t n, int kind);
int gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n, int kind);

/* ---- attention.c ---- */
/* Per-head ALiBi slopes as transformers' build_alibi_tensor computes them. */
void alibi_slopes(float *slopes, int NH);
/* out (B,T,C), probs (B,NH,T,T) or NULL, qkv (B,T,3C) in [Q|K|V] block order,
   mask (B,T) 1 = token, 0 = padding. Causal (BLOOM) or not (BERT) and
   padding masks, ALiBi over key positions counted from the first real token
   (none when slopes is NULL), softmax in f32. */
int attention_forward(float *out, float *probs, const float *qkv, const int32_t *mask,
                      const float *slopes, bool causal, int B, int T, int C, int NH, scratch ws);
int attention_backward(float *dqkv, const float *dout, const float *probs, const float *qkv,
                       const int32_t *mask, bool causal, int B, int T, int C, int NH, scratch ws);
size_t attention_scratch(int B, int T, int C, int NH, bool probs, bool backward);

/* ---- pooling.c (modes POOL_* of math/pooling_weights.h) ---- */
int pooling_forward(float *out, const float *inp, const int32_t *mask, int B, int T, int C, int mode, int skip);
int pooling_backward(float *dinp, const float *dout, const float *inp, const int32_t *mask, int B, int T, int C,
                     int mode, int skip);

/* ---- residual.c ---- */
int residual_forward(float *out, const float *a, const float *b, int64_t n);
int add_inplace(float *acc, const float *x, int64_t n);
/* The same on the calling thread alone. */
void add_row(float *acc, const float *x, int64_t n);

/* ---- linear.c: y = x·Wᵀ + b with f32 or int8 weights ---- */
/* Row-wise absmax quantisation with LLM.int8 outlier semantics (bitsandbytes
   int8_vectorwise_quant): values with |x| >= threshold (> 0) are left out of
   the row absmax and, for more than one row, their whole column is zeroed;
   the outlier column indices are returned in cols/ncols. No scratch. */
int quantize_rows(int8_t *q, float *absmax, const float *x, int64_t N, int C, float threshold,
                  int *cols, int *ncols, scratch ws);
/* Rows row0..row0+nrows-1 of W (f32) → int8 codes and per-row absmax in l. */
void linear_quantize_weights(linear *l, const float *w_rows_f32, int row0, int nrows);
int linear_forward(float *out, const float *inp, linear *l, int64_t N, float threshold, scratch ws);
/* The same with an epilogue (ops.h): packed int8 linears apply it to each
   row as it is dequantised, others after. Same bits either way. */
int linear_forward_fused(float *out, const float *inp, linear *l, int64_t N, float threshold,
                         const linear_epilogue *ep, scratch ws);
/* dinp (N,in) += dout (N,out) · W. int8 weights: exact f32 product with the
   dequantised weights, or (fast_int8) an int8 product with per-row
   quantised gradients. */
int linear_backward_input(float *dinp, const float *dout, const linear *l, int64_t N, bool fast_int8, scratch ws);
size_t linear_scratch(int64_t N, int in, int out, int kind, bool outliers, bool backward, bool fast_int8);
/* Dequantised row r of W into dst (in), packed codes or not. */
void linear_weight_row(float *dst, const linear *l, int r);
/* The CPU table's linear_prepare (int8_pack.c): once the weights are final,
   int8 codes are packed in place into the layout of oneDNN's int8 matmul
   where this CPU's kernels use it (VNNI/AMX), with the offsets of their u8
   products. Nothing for f32 weights, on other CPUs or shapes (the plain
   GEMM stays). linear_release frees what it added. */
int linear_prepare(linear *l);
void linear_release(linear *l);

/* ---- int8_quantize.c: the rows of the int8 products ---- */
/* A row's dequantisation factor is its absmax times this, 1/127². */
#define INT8_DEQ (1.0f / 16129.0f)
/* One row: v = x (· colscale when given), absmax over the |v| below the
   threshold (all for 0), codes of v·127/absmax + shift (0: s8, 128: u8);
   values at or above the threshold get code 0. Returns the absmax, NaN
   when the row holds a NaN or an inf. */
float quantize_row(uint8_t *q, const float *x, const float *colscale, int C, float threshold, int shift);
/* Every row so (in parallel), the outlier columns found first when cols is given. */
void quantize_rows_shifted(uint8_t *q, float *absmax, const float *x, const float *colscale, int64_t N, int C,
                           float threshold, int *cols, int *ncols, int shift);
/* cols (capacity C) = the columns of x (N,C) where some |x| >= threshold; returns their count. */
int outlier_columns(int *cols, const float *x, int64_t N, int C, float threshold);
/* o (n) = (c − off)·ri·sc (+ b): an output row from its int32 products; off, b may be NULL. */
void dequantize_row(float *o, const int32_t *c, const int32_t *off, float ri, const float *sc, const float *b, int n);
/* di (n) += (c − off)·ri: an input-gradient row; off may be NULL. */
void dequantize_row_add(float *di, const int32_t *c, const int32_t *off, float ri, int n);

/* ---- int8_rows.c: linear.c's packed int8 products, one parallel region per call ---- */
/* out (N,out) = dequantised products (+ bias when not NULL) of inp's rows,
   quantised with threshold and the nc outlier columns cols zeroed, then
   the epilogue ep (NULL: none). */
int int8_rows_forward(float *out, const float *inp, const linear *l, int64_t N, float threshold, const int *cols,
                      int nc, const float *bias, const linear_epilogue *ep, scratch ws);
/* dinp (N,in) += the int8 product of dout's rows (times the weight scales) with W. */
int int8_rows_backward(float *dinp, const float *dout, const linear *l, int64_t N, scratch ws);
size_t int8_rows_scratch(int64_t N, int in, int out, bool backward);

/* ---- int8_matmul.c, int8_pack.c: packed int8 products through oneDNN's matmul primitive ---- */
/* Would linear_prepare pack an in→out int8 linear on this CPU? */
bool int8_packing_available(int in, int out);
/* What the +128 of u8 codes adds to the products: 128·Σ_k W[n,k] per output
   (backward false), 128·Σ_n W[n,k] per input (true). */
const int32_t *int8_packed_offsets(const linear *l, bool backward);
/* Row r of W from the packed codes: dst (in) = codes · scale; one code. */
void int8_packed_row(float *dst, const linear *l, int r, float scale);
int8_t int8_packed_code(const linear *l, int r, int c);
/* c (M,out) = a (M,in)·Wᵀ and c (M,cols) = a (M,out)·W[:, n0:n0+cols], a
   the u8 codes (s8 + 128): sums without the offsets taken off, on the
   calling thread alone (int8_rows.c calls them from its threads at once);
   ws sized by int8_matmul_scratch. The backward reads W's columns from wt,
   the tiles int8_matmul_transpose_cols rebuilt (out·cols bytes). */
int int8_matmul_forward(int32_t *c, const uint8_t *a, int64_t M, const linear *l, scratch ws);
int int8_matmul_backward(int32_t *c, const uint8_t *a, int64_t M, const linear *l, const int8_t *wt, int cols,
                         scratch ws);
void int8_matmul_transpose_cols(int8_t *wt, const linear *l, int n0, int cols);
/* Bytes of oneDNN scratchpad for M rows: the forward of an in→out linear,
   or the backward into in columns (a block of them) of an in→out one; 0
   where not packed. */
size_t int8_matmul_scratch(int64_t M, int in, int out, bool backward);
int gemm_s8(bool trans_b, int64_t M, int64_t N, int64_t K, const int8_t *a, int64_t lda, const int8_t *b,
            int64_t ldb, int32_t *c, int64_t ldc, scratch ws);
size_t gemm_s8_scratch(int64_t M, int64_t N, int64_t K);
/* BLAS f32 products (f32 operands only on the CPU). */
int gemm(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
         const void *b, int ldb, float beta, float *c, int ldc);
int gemm_batched(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
                 int64_t stride_a, const void *b, int ldb, int64_t stride_b, float beta, float *c, int ldc,
                 int64_t stride_c, int batch);
/* Row-major C = alpha·A·op(B) + beta·C on host buffers. */
void sgemm_nt(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta);
void sgemm_nn(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta);
void sgemm_tn(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta);

/* ---- embedding.c ---- */
/* out (N,C) = rows ids of a (V,C) table of dtype f32/f16/bf16, or int8 with per-row scales. */
int embedding_forward(float *out, const int32_t *ids, int64_t N, const void *table, int dtype,
                      const float *row_scale, int V, int C);

/* ---- lora.c: LoRA's layer math (twin of kernels/lora.cu) ---- */
int lora_forward(const lora_hyper *hp, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                 const lora_dropout *drop, float *xd);
int lora_backward(const lora_hyper *hp, const lora_slot *sl, float *dx, const float *dy, const float *x,
                  const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd);

/* ---- optim.c: the optimizer step (twin of kernels/optim.cu) ---- */
int optim_step(const optim_item *items, int64_t nitems, const optim_consts *k, int kind, uint8_t *codes1,
               uint8_t *codes2, float *absmax1, float *absmax2, float *mom_m, float *mom_v, scratch ws,
               double *nonfinite);
int optim_sumsq(double *partials, const optim_item *items, int64_t nitems, scratch ws);
size_t optim_scratch(int64_t nitems);
int scale_f32(float *x, int64_t n, float k);
/* The nearest code of the dynamic map (math/optim_math.h's search, through
   an equal lookup table) and blockwise (de)quantisation with it. */
unsigned optim_nearest_code(int is_signed, float x);
void quantize_blockwise(uint8_t *codes, float *absmax, const float *x, int64_t n, int is_signed, int block);
void dequantize_blockwise(float *x, const uint8_t *codes, const float *absmax, int64_t n, int is_signed, int block);
#endif
