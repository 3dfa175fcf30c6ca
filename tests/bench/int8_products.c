/* int8_products.c: lacos' int8 products against oneDNN's matmul primitive
   on its own, at the shapes of one BLOOM block (M = B·T rows).

   For each linear of the block (qkv C→3C, dense C→C, fc1 C→4C, fc2 4C→C):
     peak     oneDNN's matmul primitive by itself: u8 activations (M,K), s8
              weights (K,N) reordered once into the layout it picks (format
              "any"), s32 products; no quantisation, no dequantisation.
     forward  lacos' linear_forward on the packed int8 linear: quantise the
              f32 rows, the product, dequantise, bias: the whole y = x·Wᵀ + b.
     backward lacos' linear_backward_input with int8 products (training's
              input gradient): scale and quantise the gradient rows, rebuild
              the transposed tiles, the product, dequantise into dx.
   Each timed REPS times in turns; the median, in GOP/s of the product's
   2·M·K·N operations (so forward and backward count their overheads
   against them), from wall time and from process CPU time (GOP per
   CPU-second divided by the thread count: on a shared machine the wall
   clock also counts the time other processes held the cores, the CPU clock
   does not). Prints one JSON line per linear.

   usage: bench_int8_products C M REPS (threads: LACOS_THREADS) */
#include "cpu/layers.h"
#include <oneapi/dnnl/dnnl.h>
#include <time.h>

#define DNNL_OK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) { \
  fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #x, (int)s_); exit(1); } } while (0)

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static double cpu_now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static double median(double *t, int n) { qsort(t, (size_t)n, sizeof *t, cmp); return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2; }
static void fill(float *x, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) x[i] = (float)(((i + seed) * 2654435761u) % 2001) / 1000.0f - 1.0f;
}

typedef struct primitive { dnnl_primitive_t p; dnnl_memory_t a, b, c; const char *impl; } primitive;

static void primitive_init(primitive *m, dnnl_engine_t eng, dnnl_stream_t st, int64_t M, int64_t K, int64_t N,
                           uint8_t *a, const int8_t *w, int32_t *c) {
  dnnl_memory_desc_t a_md, any, plain, c_md;
  dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N};
  DNNL_OK(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dnnl_u8, dnnl_ab));
  DNNL_OK(dnnl_memory_desc_init_by_tag(&any, 2, bd, dnnl_s8, dnnl_format_tag_any));
  DNNL_OK(dnnl_memory_desc_init_by_tag(&plain, 2, bd, dnnl_s8, dnnl_ba));   /* W (N,K) row-major */
  DNNL_OK(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_s32, dnnl_ab));
  dnnl_matmul_desc_t md;
  DNNL_OK(dnnl_matmul_desc_init(&md, &a_md, &any, NULL, &c_md));
  dnnl_primitive_desc_t pd;
  DNNL_OK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
  DNNL_OK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &m->impl));
  const dnnl_memory_desc_t *b_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  dnnl_memory_t src;
  DNNL_OK(dnnl_memory_create(&src, &plain, eng, (void *)w));
  DNNL_OK(dnnl_memory_create(&m->b, b_md, eng, DNNL_MEMORY_ALLOCATE));
  dnnl_primitive_desc_t rpd;
  dnnl_primitive_t r;
  DNNL_OK(dnnl_reorder_primitive_desc_create(&rpd, &plain, eng, b_md, eng, NULL));
  DNNL_OK(dnnl_primitive_create(&r, rpd));
  dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, m->b}};
  DNNL_OK(dnnl_primitive_execute(r, st, 2, ra));
  DNNL_OK(dnnl_stream_wait(st));
  DNNL_OK(dnnl_memory_create(&m->a, &a_md, eng, a));
  DNNL_OK(dnnl_memory_create(&m->c, &c_md, eng, c));
  DNNL_OK(dnnl_primitive_create(&m->p, pd));
}

static void primitive_run(primitive *m, dnnl_stream_t st) {
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, m->a}, {DNNL_ARG_WEIGHTS, m->b}, {DNNL_ARG_DST, m->c}};
  DNNL_OK(dnnl_primitive_execute(m->p, st, 3, args));
  DNNL_OK(dnnl_stream_wait(st));
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: %s C M REPS\n", argv[0]); return 2; }
  int C = atoi(argv[1]), reps = atoi(argv[3]);
  int64_t M = atoll(argv[2]);
  int threads = threads_count();
  dnnl_engine_t eng;
  dnnl_stream_t st;
  DNNL_OK(dnnl_engine_create(&eng, dnnl_cpu, 0));
  DNNL_OK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
  const int shapes[4][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}};
  const char *names[4] = {"qkv", "dense", "fc1", "fc2"};
  double *t = malloc(sizeof(double) * 3 * (size_t)reps), *tc = malloc(sizeof(double) * 3 * (size_t)reps);
  for (int s = 0; s < 4; s++) {
    int K = shapes[s][0], N = shapes[s][1];
    float *w = malloc(sizeof(float) * (size_t)K * N), *x = malloc(sizeof(float) * (size_t)M * K);
    float *y = malloc(sizeof(float) * (size_t)M * N), *dy = malloc(sizeof(float) * (size_t)M * N);
    float *dx = malloc(sizeof(float) * (size_t)M * K), *bias = malloc(sizeof(float) * (size_t)N), *scale = malloc(sizeof(float) * (size_t)N);
    int8_t *q = malloc((size_t)K * N), *q_plain = malloc((size_t)K * N);
    uint8_t *a = malloc((size_t)M * K);
    int32_t *c = malloc(sizeof(int32_t) * (size_t)M * N);
    fill(w, (size_t)K * N, 1); fill(x, (size_t)M * K, 2); fill(dy, (size_t)M * N, 3); fill(bias, (size_t)N, 4);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (uint8_t)(1 + (i * 7919) % 255);
    linear l = {.in = K, .out = N, .kind = LINEAR_INT8, .q = q, .scale = scale, .bias = bias};
    linear_quantize_weights(&l, w, 0, N);
    memcpy(q_plain, q, (size_t)K * N);
    if (linear_prepare(&l) != LACOS_OK) { fprintf(stderr, "linear_prepare: %s\n", lacos_last_error()); return 1; }
    primitive prim;
    primitive_init(&prim, eng, st, M, K, N, a, q_plain, c);
    /* the caller's scratch, as the model sizes it: forward and fast input gradient */
    size_t ws_bytes = linear_scratch(M, K, N, LINEAR_INT8, false, true, true);
    scratch sc = {malloc(ws_bytes), ws_bytes};
    /* warm-up: primitives created */
    primitive_run(&prim, st);
    if (linear_forward(y, x, &l, M, 0, sc) || linear_backward_input(dx, dy, &l, M, true, sc)) {
      fprintf(stderr, "%s\n", lacos_last_error());
      return 1;
    }
    for (int r = 0; r < reps; r++) {
      for (int k = 0; k < 3; k++) {
        int which = (r + k) % 3;   /* the first of each round rotates */
        double t0 = now(), c0 = cpu_now();
        if (which == 0) primitive_run(&prim, st);
        else if (which == 1) linear_forward(y, x, &l, M, 0, sc);
        else linear_backward_input(dx, dy, &l, M, true, sc);
        t[which * reps + r] = now() - t0;
        tc[which * reps + r] = (cpu_now() - c0) / threads;
      }
    }
    double ops = 2.0 * (double)M * K * N;
    printf("{\"linear\": \"%s\", \"M\": %lld, \"K\": %d, \"N\": %d, \"threads\": %d, \"packed\": %s, \"impl\": \"%s\", "
           "\"peak_gops\": %.1f, \"forward_gops\": %.1f, \"backward_gops\": %.1f, "
           "\"peak_gops_cpu\": %.1f, \"forward_gops_cpu\": %.1f, \"backward_gops_cpu\": %.1f}\n",
           names[s], (long long)M, K, N, threads, l.packed ? "true" : "false", prim.impl,
           ops / median(t, reps) * 1e-9, ops / median(t + reps, reps) * 1e-9, ops / median(t + 2 * reps, reps) * 1e-9,
           ops / median(tc, reps) * 1e-9, ops / median(tc + reps, reps) * 1e-9, ops / median(tc + 2 * reps, reps) * 1e-9);
    fflush(stdout);
    free(sc.p);
    linear_release(&l);
    dnnl_primitive_destroy(prim.p);
    dnnl_memory_destroy(prim.a); dnnl_memory_destroy(prim.b); dnnl_memory_destroy(prim.c);
    free(w); free(x); free(y); free(dy); free(dx); free(bias); free(scale); free(q); free(q_plain); free(a); free(c);
  }
  free(t);
  free(tc);
  return 0;
}
