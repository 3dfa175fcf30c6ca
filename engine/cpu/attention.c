/* attention.c: BLOOM self-attention over a fused qkv buffer.

   Matches transformers' BloomAttention: scores = alibi + (1/√HD)·q·kᵀ, a
   causal and a padding mask filled with the f32 minimum (finite, so a row
   with no visible key — a left-padding query — softmaxes to uniform weights
   instead of NaN), softmax in f32, then ·v. ALiBi positions follow
   build_alibi_tensor: pos = (cumsum(mask) − 1)·mask over the keys, so left
   padding gives the first real token position 0. The qkv buffer holds
   [Q | K | V] blocks per row (bloom.c undoes the checkpoint's per-head
   interleave once at load). */
#include "layers.h"
#include "../math/fastexp.h"
#include <float.h>
#include <math.h>

void alibi_slopes(float *slopes, int NH) {
  /* build_alibi_tensor: c = 2^floor(log2 NH), base 2^(-8/c), powers 1..c;
     the remaining heads take odd powers of 2^(-4/c). */
  int c = 1;
  while (c * 2 <= NH) c *= 2;
  float base = (float)pow(2.0, -8.0 / c), extra = (float)pow(2.0, -4.0 / c);
  for (int h = 0; h < c; h++) slopes[h] = powf(base, (float)(h + 1));
  for (int h = c; h < NH; h++) slopes[h] = powf(extra, (float)(2 * (h - c) + 1));
}

static void key_positions(float *pos, const int32_t *mask, int T) {
  int run = 0;
  for (int j = 0; j < T; j++) {
    run += mask[j] != 0;
    pos[j] = mask[j] ? (float)(run - 1) : 0.0f;
  }
}

// out (B,T,C), probs (B,NH,T,T) or NULL, qkv (B,T,3C), mask (B,T), slopes (NH)
int attention_forward(float *out, float *probs, const float *qkv, const int32_t *mask,
                      const float *slopes, int B, int T, int C, int NH, scratch ws) {
  int HD = C / NH, C3 = 3 * C;
  float scale = 1.0f / sqrtf((float)HD);
  /* per thread: key positions (T) and, without probs, a row of scores (T) */
  if (B == 0 || T == 0) return LACOS_OK;
  size_t per = sizeof(float) * (size_t)T * (probs ? 1 : 2);
  int nt = scratch_threads(ws, per);
  if (nt < 1) return fail(LACOS_ELIMIT, "attention: %zu bytes of scratch cannot hold a row of %d keys", ws.bytes, T);
  /* small problems run on one thread: a parallel region costs more than it saves */
  #pragma omp parallel num_threads(nt) if ((int64_t)B * NH * T * T * HD > 262144)
  {
    float *pos = (float *)((char *)ws.p + per * (size_t)omp_get_thread_num()), *row = pos + T;
    #pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
      for (int h = 0; h < NH; h++) {
        const int32_t *mb = mask + (int64_t)b * T;
        key_positions(pos, mb, T);
        float slope = slopes[h];
        for (int i = 0; i < T; i++) {
          const float *q = qkv + ((int64_t)b * T + i) * C3 + h * HD;
          float *p = probs ? probs + (((int64_t)b * NH + h) * T + i) * T : row;
          float mx = -FLT_MAX;
          for (int j = 0; j < T; j++) {
            float s = -FLT_MAX;
            if (j <= i && mb[j]) {
              const float *k = qkv + ((int64_t)b * T + j) * C3 + C + h * HD;
              float d = 0;
              #pragma omp simd reduction(+:d)
              for (int e = 0; e < HD; e++) d += q[e] * k[e];
              s = d * scale + slope * pos[j];
            }
            p[j] = s;
            if (s > mx) mx = s;
          }
          float sum = 0;
          for (int j = 0; j < T; j++) { p[j] = fast_expf(p[j] - mx); sum += p[j]; }
          float inv = 1.0f / sum;
          float *o = out + ((int64_t)b * T + i) * C + h * HD;
          for (int e = 0; e < HD; e++) o[e] = 0;
          for (int j = 0; j < T; j++) {
            p[j] *= inv;
            if (p[j] == 0.0f) continue;
            const float *v = qkv + ((int64_t)b * T + j) * C3 + 2 * C + h * HD;
            float pj = p[j];
            #pragma omp simd
            for (int e = 0; e < HD; e++) o[e] += pj * v[e];
          }
        }
      }
    }
  }
  return LACOS_OK;
}

// dqkv (B,T,3C) +=, dout (B,T,C), probs (B,NH,T,T), qkv (B,T,3C), mask (B,T)
// A query row with no visible key had constant (masked) scores: it passes
// gradient to the values it averaged but none to its query or the keys.
int attention_backward(float *dqkv, const float *dout, const float *probs, const float *qkv,
                       const int32_t *mask, int B, int T, int C, int NH, scratch ws) {
  int HD = C / NH, C3 = 3 * C;
  float scale = 1.0f / sqrtf((float)HD);
  if (B == 0 || T == 0) return LACOS_OK;
  size_t per = sizeof(float) * (size_t)T;   /* per thread: dout·v over the keys */
  int nt = scratch_threads(ws, per);
  if (nt < 1) return fail(LACOS_ELIMIT, "attention: %zu bytes of scratch cannot hold a row of %d keys", ws.bytes, T);
  #pragma omp parallel num_threads(nt) if ((int64_t)B * NH * T * T * HD > 262144)
  {
    float *dp = (float *)((char *)ws.p + per * (size_t)omp_get_thread_num());
    #pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
      for (int h = 0; h < NH; h++) {
        const int32_t *mb = mask + (int64_t)b * T;
        int first = 0;
        while (first < T && !mb[first]) first++;
        for (int i = 0; i < T; i++) {
          bool blind = first > i;   /* no real key at or before i */
          const float *p = probs + (((int64_t)b * NH + h) * T + i) * T;
          const float *go = dout + ((int64_t)b * T + i) * C + h * HD;
          const float *q = qkv + ((int64_t)b * T + i) * C3 + h * HD;
          float *dq = dqkv + ((int64_t)b * T + i) * C3 + h * HD;
          /* dp_j = dout_i·v_j; dv_j += p_ij·dout_i */
          float pdp = 0;
          for (int j = 0; j < T; j++) {
            dp[j] = 0;
            if (p[j] == 0.0f) continue;
            const float *v = qkv + ((int64_t)b * T + j) * C3 + 2 * C + h * HD;
            float *dv = dqkv + ((int64_t)b * T + j) * C3 + 2 * C + h * HD;
            float d = 0, pj = p[j];
            #pragma omp simd reduction(+:d)
            for (int e = 0; e < HD; e++) { d += go[e] * v[e]; dv[e] += pj * go[e]; }
            dp[j] = d;
            pdp += pj * d;
          }
          if (blind) continue;
          /* softmax backward, then through the scaled dot product */
          for (int j = 0; j < T; j++) {
            if (p[j] == 0.0f) continue;
            float ds = p[j] * (dp[j] - pdp) * scale;
            const float *k = qkv + ((int64_t)b * T + j) * C3 + C + h * HD;
            float *dk = dqkv + ((int64_t)b * T + j) * C3 + C + h * HD;
            #pragma omp simd
            for (int e = 0; e < HD; e++) { dq[e] += ds * k[e]; dk[e] += ds * q[e]; }
          }
        }
      }
    }
  }
  return LACOS_OK;
}

/* One row (or two) of T floats per thread the engine runs. */
size_t attention_scratch(int B, int T, int C, int NH, bool probs, bool backward) {
  (void)B; (void)C; (void)NH;
  size_t rows = backward || probs ? 1 : 2;
  return sizeof(float) * (size_t)T * rows * (size_t)threads_count();
}
