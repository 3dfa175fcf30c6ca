/* linear.c: y = x·Wᵀ + b, the only heavy op of the model.

   f32 weights go through BLAS (the readable reference). int8 weights follow
   LLM.int8 (bitsandbytes int8_vectorwise_quant + int8_scaled_mm): the
   activation rows are quantised with their own absmax, multiplied against
   the per-output-row int8 weight codes in an int8×int8→int32 GEMM (oneDNN),
   and dequantised with out = C·absmax_row·scale_col/(127·127). Rounding is
   half to even (rintf), as torch.round and __float2int_rn. With a threshold
   > 0, feature columns holding an |x| ≥ threshold are computed in f32
   against the dequantised weight columns and added back.

   Once a model's weights are final, linear_prepare (int8_pack.c) packs the
   codes for oneDNN's matmul primitive where the CPU has its int8 kernels
   (int8_matmul.c): the activation codes then go in as u8 (code + 128) and
   the 128·Σ_k W[n,k] that adds is taken off in the dequantisation, so the
   int32 products, and the outputs, are the same bits as the plain GEMM's.

   Scratch (quantised rows, int32 products, ...) comes from the caller, one
   region per call, carved here in a fixed order; linear_scratch says how
   large it must be, from the same part sizes the functions carve. */
#include "layers.h"
#include <float.h>
#include <math.h>
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>


void sgemm_nt(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, a, K, b, K, beta, c, N);
}
void sgemm_nn(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, alpha, a, K, b, N, beta, c, N);
}
void sgemm_tn(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta) {
  /* C (M,N) = A (K,M)ᵀ · B (K,N) */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, alpha, a, M, b, N, beta, c, N);
}

int gemm(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
         const void *b, int ldb, float beta, float *c, int ldc) {
  if (dtype != LACOS_F32)
    return fail(LACOS_EUNSUPPORTED, "GEMM on the CPU takes f32 operands, got %s", lacos_dtype_name(dtype));
  if (M == 0 || N == 0) return LACOS_OK;
  threads_count();
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              a, lda, b, ldb, beta, c, ldc);
  return LACOS_OK;
}

int gemm_batched(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
                 int64_t stride_a, const void *b, int ldb, int64_t stride_b, float beta, float *c, int ldc,
                 int64_t stride_c, int batch) {
  for (int i = 0; i < batch; i++)
    TRY(gemm(dtype, trans_a, trans_b, M, N, K, alpha, (const float *)a + i * stride_a, lda,
             (const float *)b + i * stride_b, ldb, beta, c + i * stride_c, ldc));
  return LACOS_OK;
}

/* ---- scratch: pieces of the caller's region, 64-byte aligned ---- */

static size_t piece(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

typedef struct carve { char *p; size_t used, bytes; } carve;

static carve carve_of(scratch ws) { return (carve){ ws.p, 0, ws.bytes }; }

/* The next piece of `bytes`, or a failure naming what did not fit (the
   caller sized the region with linear_scratch, so this is a caller bug). */
static int take(carve *k, void *out, size_t bytes, const char *what) {
  if (k->used + piece(bytes) > k->bytes)
    return fail(LACOS_ELIMIT, "int8 linear: %s do not fit the %zu bytes of scratch given (%zu used)", what, k->bytes,
                k->used);
  *(void **)out = k->p + k->used;
  k->used += piece(bytes);
  return LACOS_OK;
}

static scratch rest_of(const carve *k) { return (scratch){ k->p + k->used, k->bytes - k->used }; }

/* The plain GEMM's pieces for N rows of K_a-wide codes into K_c-wide sums:
   codes (N,K_a), row scales (N), int32 sums (N,K_c). */
static int take_product(carve *k, int8_t **a, float **rs, int32_t **c, int64_t N, int K_a, int K_c) {
  TRY(take(k, a, (size_t)N * (size_t)K_a, "int8 codes"));
  TRY(take(k, rs, sizeof(float) * (size_t)N, "row scales"));
  return take(k, c, sizeof(int32_t) * (size_t)N * (size_t)K_c, "int32 products");
}

/* Outlier columns go through the f32 product this many at a time. */
enum { OUTLIER_COLS = 256 };

void linear_quantize_weights(linear *l, const float *w, int row0, int nrows) {
  quantize_rows(l->q + (int64_t)row0 * l->in, l->scale + row0, w, nrows, l->in, 0, NULL, NULL, (scratch){0});
}

void linear_weight_row(float *dst, const linear *l, int r) {
  if (l->kind == LINEAR_F32) { memcpy(dst, l->w + (int64_t)r * l->in, sizeof(float) * (size_t)l->in); return; }
  float k = l->scale[r] / 127.0f;
  if (l->packed) { int8_packed_row(dst, l, r, k); return; }
  const int8_t *q = l->q + (int64_t)r * l->in;
  for (int c = 0; c < l->in; c++) dst[c] = q[c] * k;
}

static int8_t weight_code(const linear *l, int r, int c) {
  return l->packed ? int8_packed_code(l, r, c) : l->q[(int64_t)r * l->in + c];
}

// out (N,n) += bias (n) per row
static void add_bias(float *out, const float *b, int64_t N, int n) {
  #pragma omp parallel for schedule(static) if (N * n > 65536)
  for (int64_t i = 0; i < N; i++) {
    float *oi = out + i * n;
    #pragma omp simd
    for (int j = 0; j < n; j++) oi[j] += b[j];
  }
}

/* Does oneDNN multiply int8 with VNNI (vpdpbusd: u8·s8 products summed in
   int32)? Without it (AVX2, AVX-512 before Cascade Lake) its s8·s8 GEMM adds
   128 to A and sums pairs of u8·s8 products in int16 (vpmaddubsw), which
   saturates: 255·127·2 > 32767. Asked of oneDNN, so ONEDNN_MAX_CPU_ISA counts. */
static bool int8_has_vnni(void) {
  static int has = -1;
  if (has < 0) {
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    has = (isa & ((unsigned)dnnl_cpu_isa_avx512_core_vnni & ~(unsigned)dnnl_cpu_isa_avx512_core)) ||
          (isa & ((unsigned)dnnl_cpu_isa_avx2_vnni & ~(unsigned)dnnl_cpu_isa_avx2));
  }
  return has;
}

// c (M,N) = a (M,K) · op(b), op(b) = bᵀ (b (N,K)) for trans_b, b (K,N) otherwise
int gemm_s8(bool trans_b, int64_t M, int64_t N, int64_t K, const int8_t *a, int64_t lda,
            const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc, scratch ws) {
  if (M == 0 || N == 0) return LACOS_OK;
  char tb = trans_b ? 'T' : 'N';
  int32_t co = 0;
  threads_count();
  dnnl_status_t st;
  if (int8_has_vnni()) {
    st = dnnl_gemm_s8s8s32('N', tb, 'F', M, N, K, 1.0f, a, lda, 0, b, ldb, 0, 0.0f, c, ldc, &co);
  } else {
    /* Exact without VNNI: a = h1 + h2 with h1 = floor(a/2) in [-64, 63] and
       h2 = a - h1 in [-63, 64]; both halves shifted by 64 are u8 in
       [0, 128], so a pair of products stays within int16 (128·127·2 =
       32512), and oneDNN removes the shift (zero point 64) exactly. The two
       halves are stacked as 2M rows of one u8·s8 GEMM and summed after. */
    carve k = carve_of(ws);
    uint8_t *u = NULL;
    int32_t *c2 = NULL;
    TRY(take(&k, &u, (size_t)(2 * M) * (size_t)K, "split int8 operands"));
    TRY(take(&k, &c2, sizeof(int32_t) * (size_t)(2 * M) * (size_t)N, "split int32 products"));
    #pragma omp parallel for schedule(static) if (M * K > 32768)
    for (int64_t i = 0; i < M; i++) {
      const int8_t *ai = a + i * lda;
      uint8_t *u1 = u + i * K, *u2 = u + (M + i) * K;
      for (int64_t k = 0; k < K; k++) {
        int v = ai[k], h1 = v >> 1;          /* arithmetic shift: floor */
        u1[k] = (uint8_t)(h1 + 64);
        u2[k] = (uint8_t)(v - h1 + 64);
      }
    }
    st = dnnl_gemm_u8s8s32('N', tb, 'F', 2 * M, N, K, 1.0f, u, K, 64, b, ldb, 0, 0.0f, c2, N, &co);
    if (st == dnnl_success) {
      #pragma omp parallel for schedule(static) if (M * N > 32768)
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) c[i * ldc + j] = c2[i * N + j] + c2[(M + i) * N + j];
    }
  }
  if (st != dnnl_success) return fail(LACOS_EUNSUPPORTED, "oneDNN int8 GEMM failed (status %d) for %lldx%lldx%lld",
                                      (int)st, (long long)M, (long long)N, (long long)K);
  return LACOS_OK;
}

size_t gemm_s8_scratch(int64_t M, int64_t N, int64_t K) {
  if (int8_has_vnni()) return 0;
  return piece((size_t)(2 * M) * (size_t)K) + piece(sizeof(int32_t) * (size_t)(2 * M) * (size_t)N);
}

/* The pieces each entry carves, in order (bytes): the forward's outlier
   columns reuse the region the product used, after it. A linear packed by
   linear_prepare runs its products in int8_rows.c (its own pieces, per
   thread), others in gemm_s8 (pieces for all rows); the larger of the two
   serves a linear either way. */
static size_t larger(size_t a, size_t b) { return a > b ? a : b; }
static size_t forward_parts(int64_t N, int in, int out, bool outliers) {
  size_t n = (size_t)N, cols = outliers ? (size_t)(in < OUTLIER_COLS ? in : OUTLIER_COLS) : 0;
  size_t extra = outliers ? piece(4 * (n + (size_t)out) * cols) : 0;
  size_t plain = piece(n * (size_t)in) + piece(4 * n) + piece(4 * n * (size_t)out) +
                 larger(gemm_s8_scratch(N, out, in), extra);
  return piece(4 * (size_t)in) + larger(plain, larger(int8_rows_scratch(N, in, out, false), extra));
}
static size_t backward_parts(int64_t N, int in, int out, bool fast) {
  size_t n = (size_t)N;
  if (!fast) return piece(4 * 256 * (size_t)in);
  size_t plain = piece(n * (size_t)out) + piece(4 * n) + piece(4 * n * (size_t)in) + gemm_s8_scratch(N, in, out);
  return larger(plain, int8_rows_scratch(N, in, out, true));
}

size_t linear_scratch(int64_t N, int in, int out, int kind, bool outliers, bool backward, bool fast_int8) {
  if (kind != LINEAR_INT8 || N == 0) return 0;
  size_t f = forward_parts(N, in, out, outliers), b = backward ? backward_parts(N, in, out, fast_int8) : 0;
  return f > b ? f : b;
}

/* The epilogue ep (NULL: none) over whole tensors, after a product into y. */
static int epilogue(float *out, float *y, const linear_epilogue *ep, int64_t N, int C) {
  if (!ep) return LACOS_OK;
  int64_t n = N * C;
  if (ep->gelu >= 0) TRY(gelu_forward(out, y, n, ep->gelu));
  if (ep->residual) TRY(add_inplace(out, ep->residual, n));
  return ep->ln ? layernorm_forward(ep->ln, ep->ln_mean, ep->ln_rstd, out, ep->ln_w, ep->ln_b, N, C, ep->ln_eps)
                : LACOS_OK;
}

/* y (N,out) = inp (N,in)·Wᵀ + b (y: the epilogue's pre when it keeps one,
   else out), then the epilogue. */
static int forward(float *out, const float *inp, linear *l, int64_t N, float threshold, const linear_epilogue *ep,
                   scratch ws) {
  int K_in = l->in, K_out = l->out;
  float *y = ep && ep->gelu >= 0 && ep->pre ? ep->pre : out;
  l->outliers = 0;
  if (N == 0) return LACOS_OK;
  if (l->kind == LINEAR_F32) {
    threads_count();
    sgemm_nt(y, inp, l->w, (int)N, K_out, K_in, 1.0f, 0.0f);
    if (l->bias) add_bias(y, l->bias, N, K_out);
    return epilogue(out, y, ep, N, K_out);
  }
  carve k = carve_of(ws);
  int *cols = NULL;
  TRY(take(&k, &cols, sizeof(int) * (size_t)K_in, "outlier columns"));
  int nc = threshold > 0 ? outlier_columns(cols, inp, N, K_in, threshold) : 0;
  const float *sc = l->scale, *b = nc == 0 ? l->bias : NULL;   /* the bias after the outlier columns, if any */
  if (l->packed) {
    /* the epilogue goes with the rows, unless outlier columns come between */
    if (nc == 0) return int8_rows_forward(out, inp, l, N, threshold, cols, nc, b, ep, rest_of(&k));
    TRY(int8_rows_forward(y, inp, l, N, threshold, cols, nc, b, NULL, rest_of(&k)));
  } else {
    int8_t *a = NULL;
    float *rs = NULL;
    int32_t *c = NULL;
    TRY(take_product(&k, &a, &rs, &c, N, K_in, K_out));
    quantize_rows_shifted((uint8_t *)a, rs, inp, NULL, N, K_in, threshold, NULL, NULL, 0);
    if (nc > 0 && N > 1)   /* LLM.int8: the outlier columns of every row go to the f32 product */
      for (int64_t i = 0; i < N; i++)
        for (int j = 0; j < nc; j++) a[i * K_in + cols[j]] = 0;
    TRY(gemm_s8(true, N, K_out, K_in, a, K_in, l->q, K_in, c, K_out, rest_of(&k)));
    #pragma omp parallel for schedule(static) if (N * K_out > 32768)
    for (int64_t i = 0; i < N; i++) dequantize_row(y + i * K_out, c + i * K_out, NULL, rs[i] * INT8_DEQ, sc, b, K_out);
  }
  l->outliers = nc;
  if (nc > 0) {
    /* The outlier columns in f32: out += x[:, cols] · Wdeq[:, cols]ᵀ, up to
       OUTLIER_COLS columns per product. */
    int step = nc < OUTLIER_COLS ? nc : OUTLIER_COLS;
    float *xa = NULL, *wa;
    TRY(take(&k, &xa, sizeof(float) * ((size_t)N + (size_t)K_out) * (size_t)step, "outlier columns"));
    wa = xa + (size_t)N * step;
    for (int j0 = 0; j0 < nc; j0 += step) {
      int m = nc - j0 < step ? nc - j0 : step;
      const int *cj = cols + j0;
      for (int64_t i = 0; i < N; i++)
        for (int j = 0; j < m; j++) xa[i * m + j] = inp[i * K_in + cj[j]];
      for (int o = 0; o < K_out; o++) {
        float kq = sc[o] / 127.0f;
        for (int j = 0; j < m; j++) wa[(int64_t)o * m + j] = weight_code(l, o, cj[j]) * kq;
      }
      threads_count();
      sgemm_nt(y, xa, wa, (int)N, K_out, m, 1.0f, 1.0f);
    }
    if (l->bias) add_bias(y, l->bias, N, K_out);
  }
  return epilogue(out, y, ep, N, K_out);
}

// out (N,out), inp (N,in)
int linear_forward(float *out, const float *inp, linear *l, int64_t N, float threshold, scratch ws) {
  return forward(out, inp, l, N, threshold, NULL, ws);
}

int linear_forward_fused(float *out, const float *inp, linear *l, int64_t N, float threshold,
                         const linear_epilogue *ep, scratch ws) {
  if (ep && ep->pre && ep->pre == out)
    return fail(LACOS_EINVAL, "linear_forward_fused: the epilogue's pre is the output buffer (pass pre NULL)");
  return forward(out, inp, l, N, threshold, ep, ws);
}

// dinp (N,in) += dout (N,out) · W (out,in)
int linear_backward_input(float *dinp, const float *dout, const linear *l, int64_t N, bool fast_int8, scratch ws) {
  int K_in = l->in, K_out = l->out;
  if (N == 0) return LACOS_OK;
  threads_count();
  if (l->kind == LINEAR_F32) { sgemm_nn(dinp, dout, l->w, (int)N, K_in, K_out, 1.0f, 1.0f); return LACOS_OK; }
  carve k = carve_of(ws);
  if (fast_int8) {
    /* Fold the weight row scales into the gradient columns (dout·scale,
       inside the quantisation), quantise the gradient rows, and take an
       int8 product against the codes. */
    if (l->packed) return int8_rows_backward(dinp, dout, l, N, ws);
    int8_t *a = NULL;
    float *rs = NULL;
    int32_t *c = NULL;
    TRY(take_product(&k, &a, &rs, &c, N, K_out, K_in));
    quantize_rows_shifted((uint8_t *)a, rs, dout, l->scale, N, K_out, 0, NULL, NULL, 0);
    TRY(gemm_s8(false, N, K_in, K_out, a, K_out, l->q, K_in, c, K_in, rest_of(&k)));
    #pragma omp parallel for schedule(static) if (N * K_in > 32768)
    for (int64_t i = 0; i < N; i++) dequantize_row_add(dinp + i * K_in, c + i * K_in, NULL, rs[i] * INT8_DEQ, K_in);
    return LACOS_OK;
  }
  /* Exact: dequantise blocks of weight rows and accumulate f32 products. */
  enum { ROWS = 256 };
  float *wt = NULL;
  TRY(take(&k, &wt, sizeof(float) * (size_t)ROWS * K_in, "dequantised weights"));
  for (int r0 = 0; r0 < K_out; r0 += ROWS) {
    int nr = K_out - r0 < ROWS ? K_out - r0 : ROWS;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < nr; r++) linear_weight_row(wt + (int64_t)r * K_in, l, r0 + r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, K_in, nr, 1.0f, dout + r0, K_out, wt, K_in, 1.0f, dinp, K_in);
  }
  return LACOS_OK;
}
