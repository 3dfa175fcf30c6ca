/* optim_math.h: the per-element arithmetic of the optimizers (engine/optim.c
   describes the semantics: bitsandbytes' 8-bit blockwise Adam, its f32-state
   Adam for small tensors, torch's AdamW), written once for the CPU step
   (engine/cpu/optim.c) and the CUDA kernel (kernels/optim.cu). With -fmad=false
   on the device and ISO C on the host nothing is contracted, so both give
   the same bits. */
#ifndef LACOS_MATH_OPTIM_MATH_H
#define LACOS_MATH_OPTIM_MATH_H
#include "hd.h"
#include <math.h>
#include <stdint.h>

/* The scalars of one step, computed on the host (optim.c) exactly once. */
typedef struct optim_consts {
  /* 8-bit and 32-bit Adam (float-rounded inputs, as bitsandbytes passes them) */
  float b1, b2, omb1, omb2, step_size, eps_c2, decay;
  int decay_on;
  /* AdamW (torch: Python doubles, rounded where they meet float tensors) */
  float w_b2, w_omb1, w_omb2, w_decay, w_neg_step, w_bc2_sqrt, w_eps;
  int w_decay_on;
} optim_consts;

/* The code an all-zero block stores for each moment. */
enum { OPTIM_ZERO_CODE_SIGNED = 127, OPTIM_ZERO_CODE_UNSIGNED = 0 };

/* The nearest code to x: the number of the 255 code midpoints
   (map[i]+map[i+1])*0.5f strictly below x (mid[255] = +inf), found by
   binary search; ties go to the lower code, NaN gives 0. The CPU step uses
   an equal lookup table built from this search (engine/cpu/optim.c). */
LACOS_HD unsigned optim_code_find(const float *mid, float x) {
  unsigned i = 0;
  i += mid[i + 127] < x ? 128u : 0u;
  i += mid[i + 63] < x ? 64u : 0u;
  i += mid[i + 31] < x ? 32u : 0u;
  i += mid[i + 15] < x ? 16u : 0u;
  i += mid[i + 7] < x ? 8u : 0u;
  i += mid[i + 3] < x ? 4u : 0u;
  i += mid[i + 1] < x ? 2u : 0u;
  i += mid[i] < x ? 1u : 0u;
  return i;
}

/* 8-bit steps 1-2: the dequantised moments (qm, qv: map values of the
   codes; am1, am2: the block's absmax) updated with g; m = v = 0 for a
   non-finite gradient. Returns whether g was finite. */
LACOS_HD int optim_adam8_moments(const optim_consts *k, float g, float qm, float qv, float am1, float am2, float *m,
                                 float *v) {
  int fin = isfinite(g);
  float g0 = fin ? g : 0.0f;
  float vj = qv * am2;
  vj = vj * k->b2 + (k->omb2 * g0) * g0;
  float mj = qm * am1;
  mj = mj * k->b1 + k->omb1 * g0;
  *m = fin ? mj : 0.0f;
  *v = fin ? vj : 0.0f;
  return fin;
}

/* 8-bit steps 4-5: the parameter (untouched for a non-finite gradient). */
LACOS_HD float optim_adam8_param(const optim_consts *k, float p, float m, float v, int fin) {
  float pj = p + k->step_size * (m / (sqrtf(v) + k->eps_c2));
  if (k->decay_on) pj = pj * k->decay;
  return fin ? pj : p;
}

/* 8-bit step 6: the factor that scales a moment into [-1, 1] against its
   block's new absmax (one IEEE division per block). */
LACOS_HD float optim_absmax_inverse(float nm) { return nm > 0.0f ? 1.0f / nm : 0.0f; }

/* 8-bit step 7: momentum's code never flips sign: when the nearest code's
   sign differs from m's, move one code towards m. */
LACOS_HD unsigned optim_momentum_code(const float *map1, unsigned q, float m) {
  if (signbit(map1[q]) != signbit(m)) q = m > 0.0f ? q + 1 : q - 1;
  return q;
}

/* 8-bit steps 6-7 with the search: codes of m and v against the block's new
   absmax values nm1, nm2. */
LACOS_HD void optim_adam8_codes(const float *map1, const float *mid1, const float *mid2, float m, float v, float nm1,
                                float nm2, uint8_t *c1, uint8_t *c2) {
  float inv1 = optim_absmax_inverse(nm1), inv2 = optim_absmax_inverse(nm2);
  unsigned q1 = nm1 > 0.0f ? optim_code_find(mid1, m * inv1) : (unsigned)OPTIM_ZERO_CODE_SIGNED;
  *c1 = (uint8_t)optim_momentum_code(map1, q1, m);
  *c2 = (uint8_t)(nm2 > 0.0f ? optim_code_find(mid2, v * inv2) : (unsigned)OPTIM_ZERO_CODE_UNSIGNED);
}

/* f32 states of a small Adam8bit tensor (kOptimizer32bit2State). */
LACOS_HD int optim_adam32(const optim_consts *k, float *p, float g, float *m, float *v) {
  int fin = isfinite(g);
  float g0 = fin ? g : 0.0f;
  float mj = *m * k->b1 + k->omb1 * g0;
  float vj = *v * k->b2 + k->omb2 * (g0 * g0);
  float pj = *p + k->step_size * (mj / (sqrtf(vj) + k->eps_c2));
  if (k->decay_on) pj = pj * k->decay;
  *m = fin ? mj : 0.0f;
  *v = fin ? vj : 0.0f;
  *p = fin ? pj : *p;
  return fin;
}

/* torch.optim.AdamW, single-tensor path. */
LACOS_HD int optim_adamw(const optim_consts *k, float *p, float g, float *m, float *v) {
  int fin = isfinite(g);
  float g0 = fin ? g : 0.0f;
  float pj = *p;
  if (k->w_decay_on) pj = pj * k->w_decay;
  float mj = *m + k->w_omb1 * (g0 - *m);
  float vj = *v * k->w_b2 + (k->w_omb2 * g0) * g0;
  float denom = sqrtf(vj) / k->w_bc2_sqrt + k->w_eps;
  pj = pj + k->w_neg_step * (mj / denom);
  *m = fin ? mj : 0.0f;
  *v = fin ? vj : 0.0f;
  *p = fin ? pj : *p;
  return fin;
}

/* The dynamic maps of bitsandbytes' create_dynamic_map (engine/optim_maps.c). */
#ifdef __cplusplus
extern "C" {
#endif
extern const float optim_map_signed[256], optim_map_unsigned[256];
#ifdef __cplusplus
}
#endif
#endif
