/* layernorm.c: LayerNorm with biased variance and eps inside the root,
   as torch.nn.LayerNorm (BLOOM uses eps = 1e-5 everywhere). Mean and rstd
   are cached for the backward pass (llm.c's layout). */
#include "layers.h"
#include <math.h>

/* One row, also the epilogue of the int8 products (int8_rows.c), which
   normalises a row of a linear's output while it is in cache. Two passes
   in double: the sums stay exact to f32 rounding for any C. y may be x:
   the last pass reads each value before it writes it. */
void layernorm_row(float *y, float *mean, float *rstd, const float *x, const float *weight, const float *bias, int C,
                   float eps) {
  double s = 0;
  #pragma omp simd reduction(+:s)
  for (int c = 0; c < C; c++) s += x[c];
  float m = (float)(s / C);
  double v = 0;
  #pragma omp simd reduction(+:v)
  for (int c = 0; c < C; c++) { double d = x[c] - m; v += d * d; }
  float r = (float)(1.0 / sqrt(v / C + eps));
  #pragma omp simd
  for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * weight[c] + bias[c];
  if (mean) *mean = m;
  if (rstd) *rstd = r;
}

// out (N,C), mean (N), rstd (N), inp (N,C), weight (C), bias (C)
// Rows go to the threads 16 at a time as they come free (a thread that lost
// its core on a shared machine does not hold the other at the end).
int layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                      const float *weight, const float *bias, int64_t N, int C, float eps) {
  #pragma omp parallel for schedule(dynamic, 16) if (N * C > 32768)
  for (int64_t i = 0; i < N; i++)
    layernorm_row(out + i * C, mean ? mean + i : NULL, rstd ? rstd + i : NULL, inp + i * C, weight, bias, C, eps);
  return LACOS_OK;
}

// dinp (N,C) +=, dweight/dbias (C) += (NULL when frozen), dout (N,C)
int layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                       const float *weight, const float *mean, const float *rstd, int64_t N, int C) {
  #pragma omp parallel for schedule(static) if (N * C > 32768)
  for (int64_t i = 0; i < N; i++) {
    const float *x = inp + i * C, *dy = dout + i * C;
    float *dx = dinp + i * C;
    float m = mean[i], r = rstd[i];
    double a = 0, b = 0;   /* mean(dnorm), mean(dnorm·norm) */
    #pragma omp simd reduction(+:a, b)
    for (int c = 0; c < C; c++) {
      float norm = (x[c] - m) * r, dn = weight[c] * dy[c];
      a += dn;
      b += (double)dn * norm;
    }
    float fa = (float)(a / C), fb = (float)(b / C);
    #pragma omp simd
    for (int c = 0; c < C; c++) {
      float norm = (x[c] - m) * r, dn = weight[c] * dy[c];
      dx[c] += (dn - fa - norm * fb) * r;
    }
  }
  if (dweight || dbias) {   /* column sums: serial over rows keeps them deterministic */
    for (int64_t i = 0; i < N; i++) {
      const float *x = inp + i * C, *dy = dout + i * C;
      float m = mean[i], r = rstd[i];
      for (int c = 0; c < C; c++) {
        if (dweight) dweight[c] += (x[c] - m) * r * dy[c];
        if (dbias) dbias[c] += dy[c];
      }
    }
  }
  return LACOS_OK;
}
