/* gelu.c: BLOOM's tanh-approximated GELU and the derivative that
   transformers' custom backward (bloom_gelu_back) uses. */
#include "layers.h"
#include "fastmath.h"

void gelu_forward(float *out, const float *inp, int64_t n) {
  #pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = gelu_f(inp[i]);
}

// dinp (n) += gelu'(inp) · dout
void gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n) {
  #pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float x = inp[i];
    float u = 0.79788456f * x * (1.0f + 0.044715f * x * x);
    float t = 1.0f - 2.0f / (fast_expf(2.0f * u) + 1.0f);   /* tanh(u) */
    float g = 0.5f * x * (1.0f - t * t) * (0.79788456f + 0.1070322243f * x * x) + 0.5f * (1.0f + t);
    dinp[i] += g * dout[i];
  }
}
