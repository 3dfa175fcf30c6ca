/* linear.c: y = x·Wᵀ + b, the only heavy op of the model.

   f32 weights go through BLAS (the readable reference). int8 weights follow
   LLM.int8 (bitsandbytes int8_vectorwise_quant + int8_scaled_mm): the
   activation rows are quantised with their own absmax, multiplied against
   the per-output-row int8 weight codes in an int8×int8→int32 GEMM (oneDNN),
   and dequantised with out = C·absmax_row·scale_col/(127·127). Rounding is
   half to even (rintf), as torch.round and __float2int_rn. With a threshold
   > 0, feature columns holding an |x| ≥ threshold are computed in f32
   against the dequantised weight columns and added back.

   Once a model's weights are final, linear_prepare packs the codes for
   oneDNN's matmul primitive where the CPU has its int8 kernels
   (int8_matmul.c): the activation codes then go in as u8 (code + 128) and
   the 128·Σ_k W[n,k] that adds is taken off in the dequantisation, so the
   int32 products, and the outputs, are the same bits as the plain GEMM's. */
#include "layers.h"
#include <float.h>
#include <math.h>
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

static const float DEQ = 1.0f / 16129.0f;   /* 1/(127·127) */

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

int int8_scratch_grow(void **p, size_t *have, size_t want, const char *what) {
  if (*have >= want) return LACOS_OK;
  mem_free(*p, *have, LACOS_CPU);
  *p = NULL;
  *have = 0;
  size_t n = want + want / 4;
  *p = mem_alloc(n, LACOS_CPU, what);
  if (!*p) return lacos_last_status();
  *have = n;
  return LACOS_OK;
}

void int8_scratch_free(int8_scratch *s) {
  mem_free(s->a, s->a_bytes, LACOS_CPU);
  mem_free(s->rs, s->rs_bytes, LACOS_CPU);
  mem_free(s->c, s->c_bytes, LACOS_CPU);
  mem_free(s->tmp, s->tmp_bytes, LACOS_CPU);
  mem_free(s->cols, s->cols_bytes, LACOS_CPU);
  mem_free(s->u, s->u_bytes, LACOS_CPU);
  mem_free(s->c2, s->c2_bytes, LACOS_CPU);
  mem_free(s->qt, s->qt_bytes, LACOS_CPU);
  mem_free(s->sp, s->sp_bytes, LACOS_CPU);
  memset(s, 0, sizeof *s);
}

/* code = rint(v·k) clamped to ±127, stored as code + shift (0: s8; 128:
   the u8 codes of the packed products). The clamp is written as
   comparisons, not fminf/fmaxf (libm calls through the PLT, which kept the
   loop scalar), and each variant is its own plain loop: a conditional
   inside (the column scale, the threshold) turns the vector code into
   masked operations several times slower. A NaN compares false and takes a
   finite code; the return value says whether there was one. */
static int row_codes(uint8_t *q, const float *x, float k, int C, int shift) {
  int bad = 0;
  #pragma omp simd reduction(|:bad)
  for (int c = 0; c < C; c++) {
    float r = rintf(x[c] * k);
    bad |= r != r;
    r = r < 127.0f ? r : 127.0f;
    r = r > -127.0f ? r : -127.0f;
    q[c] = (uint8_t)((int)r + shift);
  }
  return bad;
}

// the same for v = x · colscale
static int row_codes_scaled(uint8_t *q, const float *x, const float *colscale, float k, int C, int shift) {
  int bad = 0;
  #pragma omp simd reduction(|:bad)
  for (int c = 0; c < C; c++) {
    float r = rintf(x[c] * colscale[c] * k);
    bad |= r != r;
    r = r < 127.0f ? r : 127.0f;
    r = r > -127.0f ? r : -127.0f;
    q[c] = (uint8_t)((int)r + shift);
  }
  return bad;
}

/* One row: v = x (· colscale when given), absmax over the |v| below the
   threshold (all of them for threshold 0), codes of v·127/absmax; values at
   or above the threshold get code 0. Returns the absmax, NaN when the row
   holds a NaN or an inf. */
static float quantize_row(uint8_t *q, const float *x, const float *colscale, int C, float threshold, int shift) {
  float m = 0;
  if (threshold > 0) {
    for (int c = 0; c < C; c++) { float a = fabsf(x[c]); if (a < threshold && a > m) m = a; }
  } else if (colscale) {
    #pragma omp simd reduction(max:m)
    for (int c = 0; c < C; c++) { float a = fabsf(x[c] * colscale[c]); m = a > m ? a : m; }
  } else {
    #pragma omp simd reduction(max:m)
    for (int c = 0; c < C; c++) { float a = fabsf(x[c]); m = a > m ? a : m; }
  }
  float k = m > 0 ? 127.0f / m : 0.0f;
  if (!(k <= FLT_MAX)) k = 0.0f;   /* m below ~4e-37: the row is zero at int8 precision (127/m overflows) */
  /* A NaN, or an inf (m = inf makes k 0 and inf·0 NaN), has no int8 code:
     converting it would be undefined behaviour (found by fuzz_bloom on a
     checkpoint whose embedding table holds NaN). Its code becomes a
     clamped number and the row's absmax NaN, so the row's outputs are NaN
     as on the f32 path instead of silently finite. */
  int bad = colscale ? row_codes_scaled(q, x, colscale, k, C, shift) : row_codes(q, x, k, C, shift);
  if (threshold > 0)
    for (int c = 0; c < C; c++)
      if (fabsf(x[c]) >= threshold) q[c] = (uint8_t)shift;
  return bad ? NAN : m;
}

/* quantize_rows with codes + shift, and v = x · colscale[c] when colscale is given. */
static void quantize_rows_shifted(uint8_t *q, float *absmax, const float *x, const float *colscale, int64_t N, int C,
                                  float threshold, int *cols, int *ncols, int shift) {
  int nc = 0;
  if (threshold > 0 && cols) {
    /* A column is an outlier column if any row holds |x| >= threshold there. */
    for (int c = 0; c < C; c++) {
      bool hit = false;
      for (int64_t i = 0; i < N && !hit; i++) hit = fabsf(x[i * C + c]) >= threshold;
      if (hit) cols[nc++] = c;
    }
  }
  if (ncols) *ncols = nc;
  bool zero_cols = nc > 0 && N > 1;
  #pragma omp parallel for schedule(static) if (N * C > 32768)
  for (int64_t i = 0; i < N; i++) {
    absmax[i] = quantize_row(q + i * C, x + i * C, colscale, C, threshold, shift);
    if (zero_cols)
      for (int j = 0; j < nc; j++) q[i * C + cols[j]] = (uint8_t)shift;
  }
}

// q (N,C) int8, absmax (N), x (N,C); cols receives outlier column indices (capacity C)
void quantize_rows(int8_t *q, float *absmax, const float *x, int64_t N, int C, float threshold,
                   int *cols, int *ncols) {
  quantize_rows_shifted((uint8_t *)q, absmax, x, NULL, N, C, threshold, cols, ncols, 0);
}

void linear_quantize_weights(linear *l, const float *w, int row0, int nrows) {
  quantize_rows(l->q + (int64_t)row0 * l->in, l->scale + row0, w, nrows, l->in, 0, NULL, NULL);
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

int linear_prepare(linear *l) { return l->kind == LINEAR_INT8 ? int8_pack(l) : LACOS_OK; }
void linear_release(linear *l) { int8_pack_free(l); }
double linear_prepared_bytes(const linear *l) { return int8_packed_bytes(l); }

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

// c (M,N) = a (M,K) · op(b), op(b) = bᵀ (b (N,K)) for tb 'T', b (K,N) for 'N'
static int gemm_s8(char tb, int64_t M, int64_t N, int64_t K, const int8_t *a, int64_t lda,
                   const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc, int8_scratch *s) {
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
    TRY(int8_scratch_grow((void **)&s->u, &s->u_bytes, (size_t)(2 * M) * (size_t)K, "split int8 operands"));
    TRY(int8_scratch_grow((void **)&s->c2, &s->c2_bytes, sizeof(int32_t) * (size_t)(2 * M) * (size_t)N, "split int32 products"));
    uint8_t *u = s->u;
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
    st = dnnl_gemm_u8s8s32('N', tb, 'F', 2 * M, N, K, 1.0f, u, K, 64, b, ldb, 0, 0.0f, s->c2, N, &co);
    if (st == dnnl_success) {
      const int32_t *c2 = s->c2;
      #pragma omp parallel for schedule(static) if (M * N > 32768)
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) c[i * ldc + j] = c2[i * N + j] + c2[(M + i) * N + j];
    }
  }
  if (st != dnnl_success) return fail(LACOS_EUNSUPPORTED, "oneDNN int8 GEMM failed (status %d) for %lldx%lldx%lld",
                                      (int)st, (long long)M, (long long)N, (long long)K);
  return LACOS_OK;
}

/* One output row from its int32 products: o = (c − off)·ri·sc (+ b), ri the
   row's absmax/127², off the packed products' offsets (or none), b the
   bias (or none). One loop per case, each a plain vector loop; the bias add
   is its own rounding after the product either way (no contraction under
   -std=c11), so fused or not the bits are the same. */
static void dequantize_row(float *o, const int32_t *c, const int32_t *off, float ri, const float *sc, const float *b,
                           int n) {
  if (off && b) {
    #pragma omp simd
    for (int j = 0; j < n; j++) o[j] = (float)(c[j] - off[j]) * ri * sc[j] + b[j];
  } else if (off) {
    #pragma omp simd
    for (int j = 0; j < n; j++) o[j] = (float)(c[j] - off[j]) * ri * sc[j];
  } else if (b) {
    #pragma omp simd
    for (int j = 0; j < n; j++) o[j] = (float)c[j] * ri * sc[j] + b[j];
  } else {
    #pragma omp simd
    for (int j = 0; j < n; j++) o[j] = (float)c[j] * ri * sc[j];
  }
}

/* Mirrors the int8_scratch_grow calls of linear_forward,
   linear_backward_input, gemm_s8 and int8_matmul.c (with the quarter of
   slack), buffer by buffer: the planner adds the largest of each over a
   model's linears. */
static double grown(double want) { return want + (double)((size_t)want / 4); }
double int8_scratch_need(int64_t N, int in, int out, bool fast_backward) {
  double n = (double)N, a, rs = grown(4 * n), c, tmp, cols = grown(4.0 * in), u = 0, c2 = 0, qt = 0, sp = 0;
  bool packed = int8_packing_available(in, out), split = !packed && !int8_has_vnni();
  /* forward: a (N,in) codes, c (N,out) int32; backward: a (N,out), c (N,in) */
  a = grown(n * (in > out ? in : out));
  c = grown(4 * n * (in > out ? in : out));
  tmp = fast_backward ? 0 : grown(4.0 * 256 * in);
  if (split) {
    u = grown(2 * n * (in > out ? in : out));
    c2 = grown(8 * n * (in > out ? in : out));
  }
  if (packed) {
    qt = fast_backward ? grown((double)in * out) : 0;
    sp = grown(int8_matmul_scratchpad(N, in, out));
  }
  return a + rs + c + tmp + cols + u + c2 + qt + sp;
}

// out (N,out), inp (N,in)
int linear_forward(float *out, const float *inp, linear *l, int64_t N, float threshold, int8_scratch *s) {
  int K_in = l->in, K_out = l->out;
  l->outliers = 0;
  if (N == 0) return LACOS_OK;
  if (l->kind == LINEAR_F32) {
    threads_count();
    sgemm_nt(out, inp, l->w, (int)N, K_out, K_in, 1.0f, 0.0f);
    if (l->bias) add_bias(out, l->bias, N, K_out);
    return LACOS_OK;
  }
  TRY(int8_scratch_grow((void **)&s->a, &s->a_bytes, (size_t)N * K_in, "int8 activations"));
  TRY(int8_scratch_grow((void **)&s->rs, &s->rs_bytes, sizeof(float) * (size_t)N, "activation scales"));
  TRY(int8_scratch_grow((void **)&s->c, &s->c_bytes, sizeof(int32_t) * (size_t)N * K_out, "int32 products"));
  TRY(int8_scratch_grow((void **)&s->cols, &s->cols_bytes, sizeof(int) * (size_t)K_in, "outlier columns"));
  int nc = 0;
  /* packed: u8 codes (code + 128), whose products carry offsets[n] = 128·Σ_k W[n,k] more */
  const int32_t *offsets = l->packed ? int8_packed_offsets(l, false) : NULL;
  quantize_rows_shifted((uint8_t *)s->a, s->rs, inp, NULL, N, K_in, threshold, s->cols, &nc, offsets ? 128 : 0);
  if (offsets) TRY(int8_matmul_forward(s->c, (const uint8_t *)s->a, N, l, s));
  else TRY(gemm_s8('T', N, K_out, K_in, s->a, K_in, l->q, K_in, s->c, K_out, s));
  /* dequantise (and add the bias, unless outlier columns come first) */
  const int32_t *c = s->c;
  const float *rs = s->rs, *sc = l->scale, *b = nc == 0 ? l->bias : NULL;
  #pragma omp parallel for schedule(static) if (N * K_out > 32768)
  for (int64_t i = 0; i < N; i++) dequantize_row(out + i * K_out, c + i * K_out, offsets, rs[i] * DEQ, sc, b, K_out);
  l->outliers = nc;
  if (nc > 0) {
    /* The outlier columns in f32: out += x[:, cols] · Wdeq[:, cols]ᵀ. */
    size_t need = sizeof(float) * ((size_t)N * nc + (size_t)K_out * nc);
    TRY(int8_scratch_grow((void **)&s->tmp, &s->tmp_bytes, need, "outlier columns"));
    float *xa = s->tmp, *wa = s->tmp + (size_t)N * nc;
    for (int64_t i = 0; i < N; i++)
      for (int j = 0; j < nc; j++) xa[i * nc + j] = inp[i * K_in + s->cols[j]];
    for (int o = 0; o < K_out; o++) {
      float k = sc[o] / 127.0f;
      for (int j = 0; j < nc; j++) wa[(int64_t)o * nc + j] = weight_code(l, o, s->cols[j]) * k;
    }
    threads_count();
    sgemm_nt(out, xa, wa, (int)N, K_out, nc, 1.0f, 1.0f);
    if (l->bias) add_bias(out, l->bias, N, K_out);
  }
  return LACOS_OK;
}

// dinp (N,in) += dout (N,out) · W (out,in)
int linear_backward_input(float *dinp, const float *dout, const linear *l, int64_t N, bool fast_int8,
                          int8_scratch *s) {
  int K_in = l->in, K_out = l->out;
  if (N == 0) return LACOS_OK;
  threads_count();
  if (l->kind == LINEAR_F32) { sgemm_nn(dinp, dout, l->w, (int)N, K_in, K_out, 1.0f, 1.0f); return LACOS_OK; }
  if (fast_int8) {
    /* Fold the weight row scales into the gradient columns (g = dout·scale,
       inside the quantisation), quantise the gradient rows, and take an
       int8 product against the codes. */
    TRY(int8_scratch_grow((void **)&s->a, &s->a_bytes, (size_t)N * K_out, "int8 gradients"));
    TRY(int8_scratch_grow((void **)&s->rs, &s->rs_bytes, sizeof(float) * (size_t)N, "gradient scales"));
    TRY(int8_scratch_grow((void **)&s->c, &s->c_bytes, sizeof(int32_t) * (size_t)N * K_in, "int32 products"));
    const int32_t *offsets = l->packed ? int8_packed_offsets(l, true) : NULL;   /* 128·Σ_n W[n,k] */
    quantize_rows_shifted((uint8_t *)s->a, s->rs, dout, l->scale, N, K_out, 0, NULL, NULL, offsets ? 128 : 0);
    if (offsets) TRY(int8_matmul_backward(s->c, (const uint8_t *)s->a, N, l, s));
    else TRY(gemm_s8('N', N, K_in, K_out, s->a, K_out, l->q, K_in, s->c, K_in, s));
    const int32_t *c = s->c;
    #pragma omp parallel for schedule(static) if (N * K_in > 32768)
    for (int64_t i = 0; i < N; i++) {
      float ri = s->rs[i] * DEQ;
      const int32_t *ci = c + i * K_in;
      float *di = dinp + i * K_in;
      if (offsets) {
        #pragma omp simd
        for (int k = 0; k < K_in; k++) di[k] += (float)(ci[k] - offsets[k]) * ri;
      } else {
        #pragma omp simd
        for (int k = 0; k < K_in; k++) di[k] += (float)ci[k] * ri;
      }
    }
    return LACOS_OK;
  }
  /* Exact: dequantise blocks of weight rows and accumulate f32 products. */
  enum { ROWS = 256 };
  TRY(int8_scratch_grow((void **)&s->tmp, &s->tmp_bytes, sizeof(float) * (size_t)ROWS * K_in, "dequantised weights"));
  float *wt = s->tmp;
  for (int r0 = 0; r0 < K_out; r0 += ROWS) {
    int nr = K_out - r0 < ROWS ? K_out - r0 : ROWS;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < nr; r++) linear_weight_row(wt + (int64_t)r * K_in, l, r0 + r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, K_in, nr, 1.0f, dout + r0, K_out, wt, K_in, 1.0f, dinp, K_in);
  }
  return LACOS_OK;
}
