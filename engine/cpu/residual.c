/* residual.c: the residual additions of a block. */
#include "layers.h"

int residual_forward(float *out, const float *a, const float *b, int64_t n) {
  #pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
  return LACOS_OK;
}

int add_inplace(float *acc, const float *x, int64_t n) {
  #pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) acc[i] += x[i];
  return LACOS_OK;
}
