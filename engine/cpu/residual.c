/* residual.c: the residual additions of a block. add_row is the serial
   loop, for add_inplace's threads and for the int8 products' epilogue
   (int8_rows.c), which adds a row while it is in cache. */
#include "layers.h"

int residual_forward(float *out, const float *a, const float *b, int64_t n) {
  #pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
  return LACOS_OK;
}

void add_row(float *acc, const float *x, int64_t n) {
  #pragma omp simd
  for (int64_t i = 0; i < n; i++) acc[i] += x[i];
}

int add_inplace(float *acc, const float *x, int64_t n) {
  enum { BLOCK = 4096 };
  int64_t blocks = (n + BLOCK - 1) / BLOCK;
  #pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < blocks; b++) {
    int64_t i = b * BLOCK;
    add_row(acc + i, x + i, n - i < BLOCK ? n - i : BLOCK);
  }
  return LACOS_OK;
}
