/* gelu.c: the GELU of a family (math/gelu.h: BLOOM's tanh approximation
   with the derivative transformers' bloom_gelu_back uses, or BERT's exact
   erf form), the per-element formulas shared with kernels/gelu.cu. */
#include "layers.h"
#include "../math/gelu.h"

int gelu_forward(float *out, const float *inp, int64_t n, int kind) {
  #pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = gelu_value(kind, inp[i]);
  return LACOS_OK;
}

// dinp (n) += gelu'(inp) · dout
int gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n, int kind) {
  #pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) dinp[i] += gelu_grad(kind, inp[i]) * dout[i];
  return LACOS_OK;
}
