/* gelu.c: the GELU of a family (math/gelu.h: BLOOM's tanh approximation
   with the derivative transformers' bloom_gelu_back uses, or BERT's exact
   erf form), the per-element formulas shared with kernels/gelu.cu.
   The kind is tested once, outside the loops: a test inside (gelu_value)
   puts libm's erff into BLOOM's loop, which then no longer vectorises
   (it cost a fifth of a bloom-560m int8 encode). gelu_row is the serial
   loop, for gelu_forward's threads and for the int8 products' epilogue
   (int8_rows.c), which applies it to a row still in cache. */
#include "layers.h"
#include "../math/gelu.h"

void gelu_row(float *out, const float *inp, int64_t n, int kind) {
  if (kind == GELU_ERF) {
    for (int64_t i = 0; i < n; i++) out[i] = gelu_erf_f(inp[i]);
  } else {
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) out[i] = gelu_f(inp[i]);
  }
}

int gelu_forward(float *out, const float *inp, int64_t n, int kind) {
  enum { BLOCK = 4096 };
  int64_t blocks = (n + BLOCK - 1) / BLOCK;
  #pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < blocks; b++) {
    int64_t i = b * BLOCK;
    gelu_row(out + i, inp + i, n - i < BLOCK ? n - i : BLOCK, kind);
  }
  return LACOS_OK;
}

// dinp (n) += gelu'(inp) · dout
int gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n, int kind) {
  if (kind == GELU_ERF) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) dinp[i] += gelu_erf_grad_f(inp[i]) * dout[i];
  } else {
    #pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) dinp[i] += gelu_grad_f(inp[i]) * dout[i];
  }
  return LACOS_OK;
}
