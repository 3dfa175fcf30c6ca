/* pooling_weights.h: the weight of each token in a sentence embedding
   (sentence-transformers' Pooling modes), shared by engine/cpu/pooling.c and
   kernels/pooling.cu so both devices pool with the same numbers.
   - mean: 1 per real token;
   - weightedmean: SGPT's position weights 1..L counted from the first real
     token (the mask's running count), so an embedding does not depend on the
     batch's padding or its side;
   - lasttoken: 1 at the last position whose mask is 1.
   The total is summed in position order in float, as the embedding divides
   by exactly that number. */
#ifndef LACOS_MATH_POOLING_WEIGHTS_H
#define LACOS_MATH_POOLING_WEIGHTS_H
#include "hd.h"
#include <stdint.h>

enum { POOL_MEAN = 0, POOL_WEIGHTEDMEAN = 1, POOL_LASTTOKEN = 2 };

/* Weight of position t, given run = real tokens at positions 0..t and last
   = the last real position of the sequence. */
LACOS_HD float pool_weight(int mode, int32_t mask_t, int run, int t, int last) {
  if (!mask_t) return 0.0f;
  if (mode == POOL_MEAN) return 1.0f;
  if (mode == POOL_WEIGHTEDMEAN) return (float)run;
  return t == last ? 1.0f : 0.0f;
}

/* The sum of the weights of a mask row (T), and its last real position (-1 when none). */
LACOS_HD float pool_total(const int32_t *m, int T, int mode, int *last_out) {
  int last = -1;
  for (int t = 0; t < T; t++)
    if (m[t]) last = t;
  float sum = 0;
  int run = 0;
  for (int t = 0; t < T; t++) {
    run += m[t] != 0;
    sum += pool_weight(mode, m[t], run, t, last);
  }
  *last_out = last;
  return sum;
}
#endif
