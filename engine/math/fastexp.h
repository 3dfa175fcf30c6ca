/* fastexp.h: the exp of the hot loops (softmax, GELU) and BLOOM's GELU,
   for the CPU layers and their CUDA twins alike.

   libm's expf/tanhf are scalar calls that the compiler cannot vectorise
   without -ffast-math; fast_expf is a Cody-Waite range reduction plus a
   degree-6 polynomial, within 2 ulp of expf over [-87, 88], keeping the IEEE
   behaviour we rely on (exp(-inf) = 0, large inputs saturate, NaN stays
   NaN). */
#ifndef LACOS_MATH_FASTEXP_H
#define LACOS_MATH_FASTEXP_H
#include "hd.h"
#include <stdint.h>
#include <string.h>

/* exp(x) for x clamped to [-87.34, 88.72], a NaN taken as 0 (converting
   rint(NaN) to int is undefined behaviour, found by fuzz_bloom on NaN
   weights): no special results, so a loop around it keeps one path. At the
   low end it gives the smallest normal float, ~1.2e-38, not 0. */
LACOS_HD float fast_expf_clamped(float x0) {
  float x = x0 == x0 ? x0 : 0.0f;
  if (x < -87.33654f) x = -87.33654f;
  if (x > 88.72283f) x = 88.72283f;
#ifdef __CUDA_ARCH__
  float n = rintf(x * 1.44269504088896341f);
#else
  float n = __builtin_rintf(x * 1.44269504088896341f);
#endif
  float r = x - n * 0.693359375f;          /* ln2 split in two for exactness */
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t e = (int32_t)n + 127;
  uint32_t bits = (uint32_t)e << 23;
  float scale;
  memcpy(&scale, &bits, 4);
  return p * scale;
}

/* Below -87.3 the answer is 0, above 88.7 inf; a NaN comes back as NaN. */
LACOS_HD float fast_expf(float x0) {
  float res = fast_expf_clamped(x0);
  return x0 < -87.33654f ? 0.0f : (x0 == x0 ? res : x0);
}

/* BLOOM's tanh-approximated GELU written through the logistic function:
   0.5·x·(1 + tanh(u)) = x / (1 + exp(-2u)), u = 0.79788456·x·(1 + 0.044715·x²).
   fast_expf's special results change nothing here (1 + 1.2e-38 is 1 as
   1 + 0 is; a NaN x gives NaN through the division): without them the
   vector loop divides once per element instead of once per case. */
LACOS_HD float gelu_f(float x) {
  float u = 0.79788456f * x * (1.0f + 0.044715f * x * x);
  return x / (1.0f + fast_expf_clamped(-2.0f * u));
}

/* Its derivative as transformers' bloom_gelu_back computes it. */
LACOS_HD float gelu_grad_f(float x) {
  float u = 0.79788456f * x * (1.0f + 0.044715f * x * x);
  float t = 1.0f - 2.0f / (fast_expf(2.0f * u) + 1.0f);   /* tanh(u) */
  return 0.5f * x * (1.0f - t * t) * (0.79788456f + 0.1070322243f * x * x) + 0.5f * (1.0f + t);
}
#endif
