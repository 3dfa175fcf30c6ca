/* pooling.c: sentence embeddings from the final hidden states
   (sentence-transformers' Pooling modes; ENGINE-FACTS §9).
   - mean: masked mean (a sequence with no tokens pools to zeros);
   - weightedmean: SGPT's position-weighted mean, weights 1..L counted from
     the first real token (mask cumsum), so the embedding of a sentence does
     not depend on how much padding the batch needs or on the padding side;
     with right padding this equals sentence-transformers' arange weights;
   - lasttoken: the last position whose mask is 1 (correct for left and
     right padding, unlike sum(mask) − 1). */
#include "layers.h"

static void weights_for(float *w, const int32_t *m, int T, int mode, float *total) {
  float sum = 0;
  int run = 0, last = -1;
  for (int t = 0; t < T; t++) {
    run += m[t] != 0;
    w[t] = 0;
    if (!m[t]) continue;
    last = t;
    if (mode == POOL_MEAN) w[t] = 1.0f;
    else if (mode == POOL_WEIGHTEDMEAN) w[t] = (float)run;
  }
  if (mode == POOL_LASTTOKEN && last >= 0) w[last] = 1.0f;
  for (int t = 0; t < T; t++) sum += w[t];
  *total = sum;
}

// out (B,C), inp (B,T,C), mask (B,T)
void pooling_forward(float *out, const float *inp, const int32_t *mask, int B, int T, int C, int mode) {
  #pragma omp parallel for schedule(static) if (B * T * C > 65536)
  for (int b = 0; b < B; b++) {
    float *w = malloc(sizeof(float) * (size_t)T), total;
    weights_for(w, mask + (int64_t)b * T, T, mode, &total);
    float *o = out + (int64_t)b * C;
    for (int c = 0; c < C; c++) o[c] = 0;
    float inv = total > 0 ? 1.0f / total : 0.0f;
    for (int t = 0; t < T; t++) {
      if (w[t] == 0) continue;
      const float *x = inp + ((int64_t)b * T + t) * C;
      float wt = w[t] * inv;
      #pragma omp simd
      for (int c = 0; c < C; c++) o[c] += wt * x[c];
    }
    free(w);
  }
}

// dinp (B,T,C) +=, dout (B,C)
void pooling_backward(float *dinp, const float *dout, const int32_t *mask, int B, int T, int C, int mode) {
  #pragma omp parallel for schedule(static) if (B * T * C > 65536)
  for (int b = 0; b < B; b++) {
    float *w = malloc(sizeof(float) * (size_t)T), total;
    weights_for(w, mask + (int64_t)b * T, T, mode, &total);
    float inv = total > 0 ? 1.0f / total : 0.0f;
    const float *g = dout + (int64_t)b * C;
    for (int t = 0; t < T; t++) {
      if (w[t] == 0) continue;
      float *dx = dinp + ((int64_t)b * T + t) * C;
      float wt = w[t] * inv;
      #pragma omp simd
      for (int c = 0; c < C; c++) dx[c] += wt * g[c];
    }
    free(w);
  }
}
