/* rng.h: the engine's counter-based generator (a SplitMix64 finaliser over
   seed and counter) and LoRA's dropout mask drawn from it. Value i of a
   stream depends only on (seed, i), so a tensor is the same for any thread
   count and on either device, and a backward pass regenerates a dropout
   mask instead of storing it. */
#ifndef LACOS_MATH_RNG_H
#define LACOS_MATH_RNG_H
#include "hd.h"
#include <stdint.h>

LACOS_HD uint64_t rng_u64(uint64_t seed, uint64_t counter) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + counter * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
LACOS_HD double rng_uniform(uint64_t seed, uint64_t counter) {
  return (double)(rng_u64(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}

/* Dropout's keep-scale for counter i of call `call`: 0 (dropped, with
   probability p) or 1/(1-p). */
LACOS_HD float dropout_scale(uint64_t seed, uint64_t call, uint64_t i, double p) {
  return rng_uniform(seed ^ (call * 0x9E3779B97F4A7C15ull), i) < p ? 0.0f : (float)(1.0 / (1.0 - p));
}

/* LoRA dropout's counter for input feature 0 of token position pos of a row
   whose key is `key` and whose first real token is at `start` (left
   padding); feature k adds k. A sentence's mask depends on the sentence
   alone, not on what shares its batch (a GradCache chunk, another rank's
   share of the global batch, the padded length), so data-parallel results
   do not depend on the number of ranks. */
LACOS_HD uint64_t dropout_counter(uint64_t key, int32_t start, int64_t pos, int in) {
  return (key << 32) + (uint64_t)(pos - start) * (uint64_t)in;
}
#endif
