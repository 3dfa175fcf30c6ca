/* int8_peak.c: the int8 multiply-accumulate peak of one core of this
   machine, the ceiling no engine's int8 products can pass (bench_ceiling.sh
   sets it against the encode benchmark). Twelve independent chains of the
   widest int8 dot-product instruction the CPU has (AVX-512 VNNI's vpdpbusd
   on 64 bytes; else AVX2's vpmaddubsw + vpmaddwd + vpaddd on 32), timed by
   the thread's CPU clock, best of five. One u8·s8 product and its addition
   count as two operations, as in the GOP/s of bench_int8.sh.
   usage: bench_int8_peak  →  {"isa": ..., "gops": ..., "sink": ...}
   (INT8_PEAK_AVX2=1: the AVX2 form even where VNNI is there) */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

enum { CHAINS = 12, REPEAT = 5 };
static const long ITERS = 50000000;

/* Twelve named accumulators, not an array: an array's elements may live in
   memory, and its loads and stores then time the cache instead. */
#define CHAIN_VARS(T, z) T c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z, c8 = z, c9 = z, c10 = z, c11 = z
#define CHAIN_STEP(OP) \
  c0 = OP(c0); c1 = OP(c1); c2 = OP(c2); c3 = OP(c3); c4 = OP(c4); c5 = OP(c5); \
  c6 = OP(c6); c7 = OP(c7); c8 = OP(c8); c9 = OP(c9); c10 = OP(c10); c11 = OP(c11); \
  __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6), "+v"(c7), \
                   "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11))

/* One timed run of ITERS steps of every chain: seconds of CPU time; sink
   receives the sums (kept live). */
__attribute__((target("avx512f,avx512vnni"))) static double vnni512_once(int *sink) {
  __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5);
  CHAIN_VARS(__m512i, _mm512_setzero_si512());
#define DP(c) _mm512_dpbusd_epi32(c, a, b)
  double t = cpu_now();
  for (long n = 0; n < ITERS; n++) { CHAIN_STEP(DP); }
  t = cpu_now() - t;
#undef DP
  *sink += _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c5), c11));
  return t;
}

__attribute__((target("avx2"))) static double avx2_once(int *sink) {
  __m256i b = _mm256_set1_epi8(5), one = _mm256_set1_epi16(1);
  CHAIN_VARS(__m256i, _mm256_setzero_si256());
/* each chain's own bytes go in (its accumulator's), or the compiler would
   compute one product for all twelve */
#define DP(c) _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(c, b), one))
  double t = cpu_now();
  for (long n = 0; n < ITERS; n++) { CHAIN_STEP(DP); }
  t = cpu_now() - t;
#undef DP
  *sink += _mm256_extract_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c5), c11), 0);
  return t;
}

/* Operations per second, the best of REPEAT runs of `once` (bytes: of one
   instruction's operands, each byte a multiply and an add). */
static double best_of(double (*once)(int *), int bytes, int *sink) {
  double best = 0;
  for (int r = 0; r < REPEAT; r++) {
    double ops = (double)ITERS * CHAINS * bytes * 2 / once(sink);
    if (ops > best) best = ops;
  }
  return best;
}

int main(void) {
  int sink = 0;
  const char *isa;
  double ops;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512vnni") && !getenv("INT8_PEAK_AVX2")) {
    isa = "AVX-512 VNNI (vpdpbusd, 64 bytes)";
    ops = best_of(vnni512_once, 64, &sink);
  } else if (__builtin_cpu_supports("avx2")) {
    isa = "AVX2 (vpmaddubsw + vpmaddwd, 32 bytes)";
    ops = best_of(avx2_once, 32, &sink);
  } else {
    fprintf(stderr, "bench_int8_peak: this CPU has neither AVX-512 VNNI nor AVX2\n");
    return 1;
  }
  printf("{\"isa\": \"%s\", \"gops\": %.1f, \"sink\": %d}\n", isa, ops / 1e9, sink);
  return 0;
}
