/* pooling_weights.h: the weight of each token in a sentence embedding
   (sentence-transformers' Pooling modes), shared by engine/cpu/pooling.c and
   kernels/pooling.cu so both devices pool with the same numbers.
   - mean: 1 per real token;
   - weightedmean: SGPT's position weights 1..L counted from the first real
     token (the mask's running count), so an embedding does not depend on the
     batch's padding or its side;
   - lasttoken: 1 at the last position whose mask is 1;
   - cls: 1 at the first real token (position 0 with right padding, as
     sentence-transformers takes it);
   - mean_sqrt_len: 1 per real token, the total √L (the sum over √L);
   - max: not a weighted sum; the layers take each channel's maximum over
     the real tokens (sentence-transformers' max with padding at −1e9),
     and pool_weight is 0 for it.
   The total is summed in position order in float, as the embedding divides
   by exactly that number.
   skip: the first skip real tokens of every row are attended to but not
   pooled (sentence-transformers' include_prompt = false leaves a prompt's
   tokens out of the Pooling): the pooled tokens are those with run > skip;
   weightedmean keeps their weights counted from the first real token (as
   sentence-transformers does), cls takes the first pooled token, lasttoken
   the last, and a row with no pooled token pools to zeros. 0 pools all. */
#ifndef LACOS_MATH_POOLING_WEIGHTS_H
#define LACOS_MATH_POOLING_WEIGHTS_H
#include "hd.h"
#include <stdint.h>
#include <math.h>

/* The values of lacos.h's lacos_pooling. */
enum { POOL_MEAN = 0, POOL_WEIGHTEDMEAN = 1, POOL_LASTTOKEN = 2, POOL_CLS = 3, POOL_MAX = 4, POOL_MEAN_SQRT_LEN = 5 };

/* Weight of position t, given run = real tokens at positions 0..t, last
   = the last real position of the sequence and skip (above). */
LACOS_HD float pool_weight(int mode, int32_t mask_t, int run, int t, int last, int skip) {
  if (!mask_t || run <= skip || mode == POOL_MAX) return 0.0f;
  if (mode == POOL_MEAN || mode == POOL_MEAN_SQRT_LEN) return 1.0f;
  if (mode == POOL_WEIGHTEDMEAN) return (float)run;
  if (mode == POOL_CLS) return run == skip + 1 ? 1.0f : 0.0f;
  return t == last ? 1.0f : 0.0f;
}

/* The sum of the weights of a mask row (T), and its last real position (-1 when none). */
LACOS_HD float pool_total(const int32_t *m, int T, int mode, int skip, int *last_out) {
  int last = -1;
  for (int t = 0; t < T; t++)
    if (m[t]) last = t;
  float sum = 0;
  int run = 0;
  for (int t = 0; t < T; t++) {
    run += m[t] != 0;
    sum += pool_weight(mode, m[t], run, t, last, skip);
  }
  *last_out = last;
  return mode == POOL_MEAN_SQRT_LEN ? sqrtf(sum) : sum;
}
/* The position holding the maximum of channel c over the pooled tokens of
   sequence b (the first on ties, as a scan finds it), -1 when none. */
LACOS_HD int pool_max_position(const float *inp, const int32_t *m, int b, int T, int C, int c, int skip) {
  int arg = -1, run = 0;
  float best = 0;
  for (int t = 0; t < T; t++) {
    if (!m[t] || ++run <= skip) continue;
    float v = inp[((int64_t)b * T + t) * C + c];
    if (arg < 0 || v > best) { best = v; arg = t; }
  }
  return arg;
}
#endif
