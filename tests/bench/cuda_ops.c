/* cuda_ops.c: where a GPU training step's time goes. Times each device op of
   one BLOOM block at a given shape (default bloom-7b1's: hidden 4096, 32
   heads, 16 sequences of 128 tokens) and adds them up the way a training
   step with activation checkpointing runs them: every block's forward twice
   and its backward once. Wall time over repeated launches after a warm-up,
   the stream synchronised around each op. Not a test: `make bench-cuda-ops`
   builds it, tests/bench/gpu_session.sh runs it on a GPU machine.
   usage: bench_cuda_ops [hidden heads sequences tokens layers] */
#include "../../engine/backend.h"
#include "../../engine/cpu/layers.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const backend *G;   /* the CUDA table */

static void must(int st, const char *what) {
  if (st) { fprintf(stderr, "bench_cuda_ops: %s: %s\n", what, lacos_last_error()); exit(1); }
}

static void *dev_buf(size_t bytes, const char *what) {
  void *d = NULL;
  must(G->alloc(&d, bytes, what), what);
  return d;
}

static void *dev_rand(size_t n, uint64_t seed, float lo, float hi) {
  float *h = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * (float)rng_uniform(seed, i);
  void *d = dev_buf(sizeof(float) * n, "bench buffer");
  must(G->upload(d, h, sizeof(float) * n), "bench buffer");
  free(h);
  return d;
}

/* Milliseconds per call of op(ctx), after one warm-up call. */
typedef int (*op_fn)(void *ctx);
static double time_op(const char *name, op_fn op, void *ctx) {
  must(op(ctx), name);
  must(G->sync(), name);
  int reps = 0;
  double t0 = now(), t;
  do {
    must(op(ctx), name);
    reps++;
    must(G->sync(), name);
    t = now() - t0;
  } while (t < 0.2 && reps < 200);
  return t / reps * 1e3;
}

typedef struct ctx {
  int B, T, C, NH;
  int64_t N;
  linear lin[4];
  float *x, *y, *dy, *dx, *big, *dbig, *qkv, *dqkv, *att, *probs, *mean, *rstd, *w, *b, *slopes;
  int32_t *mask;
  scratch ws;   /* every op's scratch, sized by the table's queries */
  int which;
} ctx;

static int op_linear_fwd(void *p) {
  ctx *c = p;
  linear *l = &c->lin[c->which];
  /* fc2 reads the (N,4C) buffer into an (N,C) one; the others the reverse */
  return c->which == 3 ? G->linear_forward(c->y, c->big, l, c->N, 0, c->ws)
                       : G->linear_forward(c->big, c->x, l, c->N, 0, c->ws);
}
static int op_linear_bwd(void *p) {
  ctx *c = p;
  linear *l = &c->lin[c->which];
  return c->which == 3 ? G->linear_backward_input(c->dbig, c->dy, l, c->N, true, c->ws)
                       : G->linear_backward_input(c->dx, c->dbig, l, c->N, true, c->ws);
}
static int op_attn_fwd(void *p) {
  ctx *c = p;
  return G->attention_forward(c->att, c->probs, c->qkv, c->mask, c->slopes, true, c->B, c->T, c->C, c->NH, c->ws);
}
static int op_attn_bwd(void *p) {
  ctx *c = p;
  return G->attention_backward(c->dqkv, c->att, c->probs, c->qkv, c->mask, true, c->B, c->T, c->C, c->NH, c->ws);
}
static int op_ln_fwd(void *p) {
  ctx *c = p;
  return G->layernorm_forward(c->y, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C, 1e-5f);
}
static int op_ln_bwd(void *p) {
  ctx *c = p;
  return G->layernorm_backward(c->dx, NULL, NULL, c->dy, c->x, c->w, c->mean, c->rstd, c->N, c->C);
}
static int op_gelu_fwd(void *p) { ctx *c = p; return G->gelu_forward(c->big, c->big, c->N * 4 * c->C, GELU_TANH); }
static int op_gelu_bwd(void *p) { ctx *c = p; return G->gelu_backward(c->dbig, c->big, c->dbig, c->N * 4 * c->C, GELU_TANH); }
static int op_residual(void *p) { ctx *c = p; return G->add_inplace(c->y, c->x, c->N * c->C); }

static size_t pass_scratch_of(const ctx *c) {
  size_t most = G->attention_scratch(c->B, c->T, c->C, c->NH, true, false);
  size_t b = G->attention_scratch(c->B, c->T, c->C, c->NH, true, true);
  if (b > most) most = b;
  for (int t = 0; t < 4; t++) {
    size_t l = G->linear_scratch(c->N, c->lin[t].in, c->lin[t].out, LINEAR_INT8, false, true, true);
    if (l > most) most = l;
  }
  return most;
}

int main(int argc, char **argv) {
  ctx c = {0};
  c.C = argc > 1 ? atoi(argv[1]) : 4096;
  c.NH = argc > 2 ? atoi(argv[2]) : 32;
  c.B = argc > 3 ? atoi(argv[3]) : 16;
  c.T = argc > 4 ? atoi(argv[4]) : 128;
  int L = argc > 5 ? atoi(argv[5]) : 30;
  c.N = (int64_t)c.B * c.T;
  char why[400];
  if (!backend_available(LACOS_CUDA, why, sizeof why)) { printf("bench_cuda_ops: skipped: no GPU: %s\n", why); return 0; }
  must(backend_get(&G, LACOS_CUDA), "device");
  char name[256];
  must(G->info(name, sizeof name, NULL, NULL, NULL, NULL, NULL), "device");
  int C = c.C;
  int shapes[4][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}};
  for (int t = 0; t < 4; t++) {
    linear *l = &c.lin[t];
    l->in = shapes[t][0];
    l->out = shapes[t][1];
    l->kind = LINEAR_INT8;
    size_t n = (size_t)l->in * l->out;
    int8_t *q = malloc(n);
    for (size_t i = 0; i < n; i++) q[i] = (int8_t)(rng_u64(7 + t, i) % 255 - 127);
    l->q = dev_buf(n, "bench weights");
    must(G->upload(l->q, q, n), "weights");
    free(q);
    l->scale = dev_rand(l->out, 11 + t, 0.5f, 1.5f);
    l->bias = dev_rand(l->out, 17 + t, -0.1f, 0.1f);
  }
  int64_t N = c.N;
  c.x = dev_rand(N * C, 1, -1, 1);
  c.y = dev_rand(N * C, 2, -1, 1);
  c.dy = dev_rand(N * C, 3, -1, 1);
  c.dx = dev_rand(N * C, 4, -1, 1);
  c.big = dev_rand(N * 4 * C, 5, -1, 1);
  c.dbig = dev_rand(N * 4 * C, 6, -1, 1);
  c.qkv = dev_rand(N * 3 * C, 7, -1, 1);
  c.dqkv = dev_rand(N * 3 * C, 8, -1, 1);
  c.att = dev_rand(N * C, 9, -1, 1);
  c.probs = dev_rand((size_t)c.B * c.NH * c.T * c.T, 10, 0, 1);
  c.mean = dev_rand(N, 11, 0, 1);
  c.rstd = dev_rand(N, 12, 1, 2);
  c.w = dev_rand(C, 13, 0.5f, 1.5f);
  c.b = dev_rand(C, 14, -0.1f, 0.1f);
  float *sl = malloc(sizeof(float) * c.NH);
  alibi_slopes(sl, c.NH);
  c.slopes = dev_buf(sizeof(float) * c.NH, "slopes");
  must(G->upload(c.slopes, sl, sizeof(float) * c.NH), "slopes");
  free(sl);
  int32_t *mask = malloc(sizeof(int32_t) * N);
  for (int64_t i = 0; i < N; i++) mask[i] = 1;
  c.mask = dev_buf(sizeof(int32_t) * N, "mask");
  must(G->upload(c.mask, mask, sizeof(int32_t) * N), "mask");
  free(mask);
  /* one scratch for every op, as a model's pass shares one */
  c.ws.bytes = pass_scratch_of(&c);
  c.ws.p = dev_buf(c.ws.bytes, "scratch");

  printf("# %s: hidden %d, %d heads, %d x %d tokens, %d layers\n", name, C, c.NH, c.B, c.T, L);
  const char *lname[4] = {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"};
  double fwd = 0, bwd = 0, ms;
  for (int t = 0; t < 4; t++) {
    c.which = t;
    double ops = 2.0 * N * c.lin[t].in * c.lin[t].out;
    ms = time_op("linear forward", op_linear_fwd, &c);
    printf("%-34s %8.3f ms  %6.0f TOPS\n", lname[t], ms, ops / ms * 1e-9);
    fwd += ms;
    ms = time_op("linear backward", op_linear_bwd, &c);
    printf("%-34s %8.3f ms  %6.0f TOPS\n", "  input gradient (int8)", ms, ops / ms * 1e-9);
    bwd += ms;
  }
  struct { const char *name; op_fn f; int backward; double times; } rest[] = {
    {"attention forward", op_attn_fwd, 0, 1}, {"attention backward", op_attn_bwd, 1, 1},
    {"layernorm forward (x2)", op_ln_fwd, 0, 2}, {"layernorm backward (x2)", op_ln_bwd, 1, 2},
    {"gelu forward", op_gelu_fwd, 0, 1}, {"gelu backward", op_gelu_bwd, 1, 1},
    {"residual (x2 forward)", op_residual, 0, 2},
  };
  for (size_t i = 0; i < sizeof rest / sizeof *rest; i++) {
    ms = time_op(rest[i].name, rest[i].f, &c) * rest[i].times;
    printf("%-34s %8.3f ms\n", rest[i].name, ms);
    if (rest[i].backward) bwd += ms; else fwd += ms;
  }
  printf("block: forward %.3f ms, backward %.3f ms\n", fwd, bwd);
  printf("a step's blocks with checkpointing (%d x (2 forward + backward)): %.1f ms\n", L, L * (2 * fwd + bwd));
  return 0;
}
