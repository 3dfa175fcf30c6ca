/* pooling.c: sentence embeddings from the final hidden states
   (sentence-transformers' Pooling modes; ENGINE-FACTS §9), with the token
   weights of math/pooling_weights.h (shared with kernels/pooling.cu):
   - mean: masked mean (a sequence with no tokens pools to zeros);
   - weightedmean: SGPT's position-weighted mean, weights 1..L counted from
     the first real token (mask cumsum), so the embedding of a sentence does
     not depend on how much padding the batch needs or on the padding side;
     with right padding this equals sentence-transformers' arange weights;
   - lasttoken: the last position whose mask is 1 (correct for left and
     right padding, unlike sum(mask) − 1);
   - cls: the first real token; mean_sqrt_len: the sum over √L;
   - max: each channel's largest value over the real tokens (zeros for a
     sequence with none); its gradient goes to that token.
   skip leaves each row's first skip real tokens out (pooling_weights.h). */
#include "layers.h"

// out (B,C), inp (B,T,C), mask (B,T)
int pooling_forward(float *out, const float *inp, const int32_t *mask, int B, int T, int C, int mode, int skip) {
  #pragma omp parallel for schedule(static) if (B * T * C > 65536)
  for (int b = 0; b < B; b++) {
    const int32_t *m = mask + (int64_t)b * T;
    float *o = out + (int64_t)b * C;
    if (mode == POOL_MAX) {
      for (int c = 0; c < C; c++) {
        int t = pool_max_position(inp, m, b, T, C, c, skip);
        o[c] = t < 0 ? 0.0f : inp[((int64_t)b * T + t) * C + c];
      }
      continue;
    }
    int last;
    float total = pool_total(m, T, mode, skip, &last);
    for (int c = 0; c < C; c++) o[c] = 0;
    float inv = total > 0 ? 1.0f / total : 0.0f;
    int run = 0;
    for (int t = 0; t < T; t++) {
      run += m[t] != 0;
      float w = pool_weight(mode, m[t], run, t, last, skip);
      if (w == 0) continue;
      const float *x = inp + ((int64_t)b * T + t) * C;
      float wt = w * inv;
      #pragma omp simd
      for (int c = 0; c < C; c++) o[c] += wt * x[c];
    }
  }
  return LACOS_OK;
}

// dinp (B,T,C) +=, dout (B,C); inp (B,T,C) is read by max only
int pooling_backward(float *dinp, const float *dout, const float *inp, const int32_t *mask, int B, int T, int C,
                     int mode, int skip) {
  #pragma omp parallel for schedule(static) if (B * T * C > 65536)
  for (int b = 0; b < B; b++) {
    const int32_t *m = mask + (int64_t)b * T;
    const float *g = dout + (int64_t)b * C;
    if (mode == POOL_MAX) {
      for (int c = 0; c < C; c++) {
        int t = pool_max_position(inp, m, b, T, C, c, skip);
        if (t >= 0) dinp[((int64_t)b * T + t) * C + c] += g[c];
      }
      continue;
    }
    int last;
    float total = pool_total(m, T, mode, skip, &last);
    float inv = total > 0 ? 1.0f / total : 0.0f;
    int run = 0;
    for (int t = 0; t < T; t++) {
      run += m[t] != 0;
      float w = pool_weight(mode, m[t], run, t, last, skip);
      if (w == 0) continue;
      float *dx = dinp + ((int64_t)b * T + t) * C;
      float wt = w * inv;
      #pragma omp simd
      for (int c = 0; c < C; c++) dx[c] += wt * g[c];
    }
  }
  return LACOS_OK;
}
