/* int8_quantize.c: the row (de)quantisation of the int8 products (LLM.int8:
   bitsandbytes int8_vectorwise_quant, and out = C·absmax_row·scale_col/127²),
   shared by linear.c's plain GEMM path and int8_rows.c's packed row bands.
   Rounding is half to even (rintf), as torch.round and __float2int_rn. */
#include "layers.h"
#include <float.h>
#include <math.h>

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
float quantize_row(uint8_t *q, const float *x, const float *colscale, int C, float threshold, int shift) {
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

/* The outlier columns of x (N,C): those where some row holds |x| >= threshold. */
int outlier_columns(int *cols, const float *x, int64_t N, int C, float threshold) {
  int nc = 0;
  for (int c = 0; c < C; c++) {
    bool hit = false;
    for (int64_t i = 0; i < N && !hit; i++) hit = fabsf(x[i * C + c]) >= threshold;
    if (hit) cols[nc++] = c;
  }
  return nc;
}

/* quantize_rows with codes + shift, and v = x · colscale[c] when colscale is given. */
void quantize_rows_shifted(uint8_t *q, float *absmax, const float *x, const float *colscale, int64_t N, int C,
                                  float threshold, int *cols, int *ncols, int shift) {
  int nc = threshold > 0 && cols ? outlier_columns(cols, x, N, C, threshold) : 0;
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
int quantize_rows(int8_t *q, float *absmax, const float *x, int64_t N, int C, float threshold,
                  int *cols, int *ncols, scratch ws) {
  (void)ws;
  quantize_rows_shifted((uint8_t *)q, absmax, x, NULL, N, C, threshold, cols, ncols, 0);
  return LACOS_OK;
}

/* One output row from its int32 products: o = (c − off)·ri·sc (+ b), ri the
   row's absmax/127², off the packed products' offsets (or none), b the
   bias (or none). One loop per case, each a plain vector loop; the bias add
   is its own rounding after the product either way (no contraction under
   -std=c11), so fused or not the bits are the same. */
void dequantize_row(float *o, const int32_t *c, const int32_t *off, float ri, const float *sc, const float *b,
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


// di (n) += (c − off)·ri: an input-gradient row (the weight scales went in before the quantisation)
void dequantize_row_add(float *di, const int32_t *c, const int32_t *off, float ri, int n) {
  if (off) {
    #pragma omp simd
    for (int j = 0; j < n; j++) di[j] += (float)(c[j] - off[j]) * ri;
  } else {
    #pragma omp simd
    for (int j = 0; j < n; j++) di[j] += (float)c[j] * ri;
  }
}
