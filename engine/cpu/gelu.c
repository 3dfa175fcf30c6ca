/* gelu.c: BLOOM's tanh-approximated GELU and the derivative that
   transformers' custom backward (bloom_gelu_back) uses; the per-element
   formulas are math/fastexp.h's, shared with kernels/gelu.cu. */
#include "layers.h"
#include "../math/fastexp.h"

int gelu_forward(float *out, const float *inp, int64_t n) {
  #pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = gelu_f(inp[i]);
  return LACOS_OK;
}

// dinp (n) += gelu'(inp) · dout
int gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n) {
  #pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) dinp[i] += gelu_grad_f(inp[i]) * dout[i];
  return LACOS_OK;
}
