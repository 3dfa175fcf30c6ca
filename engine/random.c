/* random.c: draws from the counter-based generator of math/rng.h (a
   SplitMix64 finaliser over seed and counter). Element i of a random tensor depends only on (seed, i), so
   results do not change with the thread count or the order of work. */
#include "engine.h"
#include <math.h>

double rng_normal(uint64_t seed, uint64_t counter) {
  /* Box-Muller on two draws derived from the one counter. */
  double u1 = rng_uniform(seed, 2 * counter), u2 = rng_uniform(seed, 2 * counter + 1);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double lacos_random_uniform(double seed, double counter) {
  return rng_uniform((uint64_t)seed, (uint64_t)counter);
}
