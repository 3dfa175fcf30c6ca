/* optim.c: the optimizer step on the CPU, the twin of kernels/optim.cu:
   8-bit blockwise Adam (bitsandbytes' kOptimizerStatic8bit2StateBlockwise),
   f32-state Adam for small tensors and torch's AdamW over engine/optim.c's
   work items, plus the gradient norm's partial sums and the clipping scale.
   The per-element arithmetic is math/optim_math.h's; engine/optim.c says
   which semantics and why. Items are independent (no shared accumulators),
   so results do not depend on the thread count. */
#include "layers.h"
#include <math.h>
#include <pthread.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__GNUC__) && !defined(__clang__)
/* sqrtf of a non-negative float needs no errno path; without it the loops vectorise */
#pragma GCC optimize("no-math-errno")
#endif

enum { BLOCK = 256 };

/* ---- nearest code ---- */

/* The nearest code to x is the number of code midpoints (map[i]+map[i+1])*0.5f
   strictly below x: ties go to the lower code (torch.bucketize on the
   midpoints, bitsandbytes' reference quantize_blockwise). NaN gives 0.

   The definition is math/optim_math.h's binary search (optim_code_find),
   which the CUDA kernel runs. The CPU step uses an equivalent lookup: a
   float's sign, exponent and top 7 mantissa bits select a bucket of magnitudes; for |x| in [2^-23, 1) a bucket holds at most
   one midpoint, so the count is the bucket's base count plus one comparison.
   Below 2^-23 (no midpoint is that small) and from 1 up (all midpoints are
   below 1) the count is constant. The tables are built from the search once
   and every bucket is verified; if one held two midpoints the step would
   fall back to the search (test_optim checks it does not). */
enum {
  TINY_BITS = 0x34000000,     /* 2^-23 */
  ONE_BITS = 0x3F800000,      /* 1.0f */
  INF_BITS = 0x7F800000,
  KEYS = (ONE_BITS >> 16) - (TINY_BITS >> 16)
};

typedef struct code_index {
  float mid[256];             /* mid[255] = +inf */
  uint8_t base[2][KEYS];      /* [sign][bucket]: midpoints below the bucket */
  uint8_t tiny[2], big[2];    /* [sign]: |x| < 2^-23, |x| >= 1 */
  int ok;                     /* every bucket verified */
} code_index;

static code_index code_signed, code_unsigned;
static pthread_once_t code_once = PTHREAD_ONCE_INIT;

static float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void code_index_build(code_index *t, const float *map) {
  for (int i = 0; i < 255; i++) t->mid[i] = (map[i] + map[i + 1]) * 0.5f;
  t->mid[255] = INFINITY;
  t->ok = 1;
  for (uint32_t s = 0; s < 2; s++) {
    uint32_t sb = s << 31;
    /* |x| < 2^-23: from the smallest magnitude (0) to the largest */
    t->tiny[s] = (uint8_t)optim_code_find(t->mid, float_of(sb));
    t->ok &= optim_code_find(t->mid, float_of(sb | (TINY_BITS - 1))) == t->tiny[s];
    t->big[s] = (uint8_t)optim_code_find(t->mid, float_of(sb | ONE_BITS));
    t->ok &= optim_code_find(t->mid, float_of(sb | INF_BITS)) == t->big[s];
    for (uint32_t k = 0; k < KEYS; k++) {
      uint32_t lo = TINY_BITS + (k << 16), hi = lo + 0xFFFF;     /* magnitudes in the bucket */
      float first = float_of(sb | (s ? hi : lo)), last = float_of(sb | (s ? lo : hi));   /* smallest, largest x */
      unsigned b = optim_code_find(t->mid, first);
      t->base[s][k] = (uint8_t)b;
      t->ok &= optim_code_find(t->mid, last) <= b + 1;
    }
  }
}

static void code_index_init(void) {
  code_index_build(&code_signed, optim_map_signed);
  code_index_build(&code_unsigned, optim_map_unsigned);
}

static const code_index *code_index_get(int is_signed) {
  pthread_once(&code_once, code_index_init);
  return is_signed ? &code_signed : &code_unsigned;
}

static inline unsigned nearest_code(const code_index *t, float x) {
  if (!t->ok) return optim_code_find(t->mid, x);
  uint32_t u;
  memcpy(&u, &x, 4);
  uint32_t mag = u & 0x7FFFFFFFu, sign = u >> 31;
  if (mag < TINY_BITS) return t->tiny[sign];
  if (mag >= ONE_BITS) return mag > INF_BITS ? 0u : t->big[sign];
  unsigned b = t->base[sign][(mag >> 16) - (TINY_BITS >> 16)];
  return b + (t->mid[b] < x);
}

/* For tests (test_optim.c declares them): the lookup, the search it must
   equal, and whether the lookup is in use. */
unsigned optim_code_lookup(int is_signed, float x);
unsigned optim_code_search(int is_signed, float x);
int optim_code_lookup_ok(void);
unsigned optim_code_lookup(int is_signed, float x) { return nearest_code(code_index_get(is_signed), x); }
unsigned optim_code_search(int is_signed, float x) {
  const code_index *t = code_index_get(is_signed);
  return x != x ? 0u : optim_code_find(t->mid, x);
}
int optim_code_lookup_ok(void) { return code_index_get(1)->ok && code_index_get(0)->ok; }

unsigned optim_nearest_code(int is_signed, float x) { return nearest_code(code_index_get(is_signed), x); }

/* ---- blockwise quantisation ---- */

// codes (n) u8, absmax (ceil(n/block)) f32, x (n) f32
// codes (n) u8, absmax (ceil(n/block)) f32, x (n) f32
void quantize_blockwise(uint8_t *codes, float *absmax, const float *x, int64_t n, int is_signed, int block) {
  const code_index *t = code_index_get(is_signed);
  int64_t nb = (n + block - 1) / block;
  #pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < nb; b++) {
    int64_t s = b * block, e = s + block < n ? s + block : n;
    float am = 0.0f;
    for (int64_t i = s; i < e; i++) { float a = fabsf(x[i]); am = a > am ? a : am; }
    absmax[b] = am;
    if (am == 0.0f) {
      memset(codes + s, is_signed ? OPTIM_ZERO_CODE_SIGNED : OPTIM_ZERO_CODE_UNSIGNED, (size_t)(e - s));
      continue;
    }
    float inv = 1.0f / am;
    for (int64_t i = s; i < e; i++) codes[i] = (uint8_t)nearest_code(t, x[i] * inv);
  }
}

void dequantize_blockwise(float *x, const uint8_t *codes, const float *absmax, int64_t n, int is_signed,
                          int block) {
  const float *map = is_signed ? optim_map_signed : optim_map_unsigned;
  #pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) x[i] = map[codes[i]] * absmax[i / block];
}

/* ---- the step ---- */

/* One block of an 8-bit tensor (kOptimizerStatic8bit2StateBlockwise).
   p, g (len) f32; c1, c2 (len) codes; a1, a2 the block's absmax. */
static int64_t adam8bit_block(const optim_consts *k, float *p, const float *g, uint8_t *c1, uint8_t *c2, float *a1,
                              float *a2, int64_t len) {
  const code_index *t1 = code_index_get(1), *t2 = code_index_get(0);
  float m[BLOCK], v[BLOCK];
  const float am1 = *a1, am2 = *a2;
  float nm1 = 0.0f, nm2 = 0.0f;
  int64_t bad = 0;
  /* branch-free: a non-finite gradient computes with 0 and is then masked */
  for (int64_t j = 0; j < len; j++)
    bad += !optim_adam8_moments(k, g[j], optim_map_signed[c1[j]], optim_map_unsigned[c2[j]], am1, am2, &m[j], &v[j]);
  /* max as fmaxf (a NaN never replaces the running max), without the libm call */
  for (int64_t j = 0; j < len; j++) {
    float am = fabsf(m[j]), av = fabsf(v[j]);
    nm1 = am > nm1 ? am : nm1;
    nm2 = av > nm2 ? av : nm2;
  }
  *a1 = nm1;
  *a2 = nm2;
  for (int64_t j = 0; j < len; j++) p[j] = optim_adam8_param(k, p[j], m[j], v[j], isfinite(g[j]));
  float inv1 = optim_absmax_inverse(nm1), inv2 = optim_absmax_inverse(nm2);
  for (int64_t j = 0; j < len; j++) {
    unsigned q1 = nm1 > 0.0f ? nearest_code(t1, m[j] * inv1) : OPTIM_ZERO_CODE_SIGNED;
    c1[j] = (uint8_t)optim_momentum_code(optim_map_signed, q1, m[j]);
    c2[j] = (uint8_t)(nm2 > 0.0f ? nearest_code(t2, v[j] * inv2) : OPTIM_ZERO_CODE_UNSIGNED);
  }
  return bad;
}

int optim_step(const optim_item *items, int64_t nitems, const optim_consts *k, int kind, uint8_t *codes1,
               uint8_t *codes2, float *absmax1, float *absmax2, float *mom_m, float *mom_v, scratch ws,
               double *nonfinite) {
  (void)ws;
  int64_t bad = 0, numel = 0;
  for (int64_t w = 0; w < nitems; w++) numel += items[w].len;
  #pragma omp parallel for schedule(static) reduction(+:bad) if (numel > 32768)
  for (int64_t w = 0; w < nitems; w++) {
    const optim_item *it = &items[w];
    if (it->eight_bit) {
      bad += adam8bit_block(k, it->p, it->g, codes1 + it->state, codes2 + it->state, absmax1 + it->block,
                            absmax2 + it->block, it->len);
    } else if (kind == LACOS_OPTIM_ADAM8BIT) {
      for (int32_t j = 0; j < it->len; j++)
        bad += !optim_adam32(k, &it->p[j], it->g[j], &mom_m[it->state + j], &mom_v[it->state + j]);
    } else {
      for (int32_t j = 0; j < it->len; j++)
        bad += !optim_adamw(k, &it->p[j], it->g[j], &mom_m[it->state + j], &mom_v[it->state + j]);
    }
  }
  *nonfinite = (double)bad;
  return LACOS_OK;
}

/* Σ g² per item in double, each by one thread in element order. */
int optim_sumsq(double *partials, const optim_item *items, int64_t nitems, scratch ws) {
  (void)ws;
  int64_t numel = 0;
  for (int64_t w = 0; w < nitems; w++) numel += items[w].len;
  #pragma omp parallel for schedule(static) if (numel > 65536)
  for (int64_t w = 0; w < nitems; w++) {
    const float *g = items[w].g;
    double s = 0;
    for (int32_t j = 0; j < items[w].len; j++) s += (double)g[j] * (double)g[j];
    partials[w] = s;
  }
  return LACOS_OK;
}

size_t optim_scratch(int64_t nitems) { (void)nitems; return 0; }

int scale_f32(float *x, int64_t n, float k) {
  #pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t j = 0; j < n; j++) x[j] = x[j] * k;
  return LACOS_OK;
}
