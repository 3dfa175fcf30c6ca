/* test_cuda_ops.c: every CUDA op against its CPU twin on random inputs, in
   the style of ggml's test-backend-ops: both devices compute the same op on
   the same data and the results are compared by normalised squared error,
   NMSE = Σ(cpu − gpu)² / Σ cpu². Limits:
   - 0 (exact) for integer results: int8 codes, int32 products, gathers;
   - 1e-7 for elementwise ops and reductions (the brief's limit; most of
     these are bit-exact by construction: -fmad=false, the CPU's exp);
   - 1e-8 for f32/f16/bf16 GEMMs (f32 accumulation; TF32 would give ~1e-6
     and fail, on purpose);
   - the whole-engine parity tests of cuda_parity.h (model outputs and LoRA
     gradients through int8 layers: 5e-4; optimizer steps: 1e-12, designed
     to be bit-exact).
   The ops are the entries of the CPU and CUDA backend tables
   (engine/backend.h), each given the scratch its table's *_scratch query
   asks for. Backward ops start from random gradient buffers, checking that
   they accumulate. Without a usable GPU (or in a build without CUDA) every test
   prints "ok - <name> # SKIP no GPU: <reason>", which the runner counts as
   skipped, never passed. */
#include "test.h"
#include "../../engine/backend.h"
#include "../../engine/cpu/layers.h"
#include <cblas.h>

static const double LIM_MODEL = 5e-4, LIM_STEP = 1e-12;
#define PARITY_CFG_HIDDEN 64
#define PARITY_CFG_HEADS 4
#include "cuda_parity.h"

static const double EXACT = 0, ELEMENTWISE = 1e-7, GEMM = 1e-8;

/* ---- host and device buffers ---- */

static const backend *G;   /* the device's table */

static void *dev_buf(size_t bytes) {
  void *p = NULL;
  if (G->alloc(&p, bytes, "test buffer")) {
    printf("#   device allocation failed: %s\n", lacos_last_error());
    test_failed_now = 1;
  }
  return p;
}
static void dev_release(void *p, size_t bytes) { G->free(p, bytes); }

/* Scratch of `bytes` on the device (dev_release it with scratch_bytes(ws)). */
static scratch dev_scratch(size_t bytes) { return (scratch){ dev_buf(bytes ? bytes : 1), bytes ? bytes : 1 }; }
static void dev_scratch_free(scratch ws) { dev_release(ws.p, ws.bytes); }
static scratch host_scratch(size_t bytes) { return (scratch){ malloc(bytes ? bytes : 1), bytes ? bytes : 1 }; }

static float *hrand(int64_t n, uint64_t seed, float lo, float hi) {
  float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)rng_uniform(seed, (uint64_t)i);
  return x;
}

/* Device copy of a host buffer (NULL and a failed check on error). */
static void *up(const void *h, size_t bytes) {
  void *d = dev_buf(bytes);
  if (!d || G->upload(d, h, bytes)) {
    printf("#   upload failed: %s\n", lacos_last_error());
    test_failed_now = 1;
    dev_release(d, bytes);
    return NULL;
  }
  return d;
}

/* Host copy of n floats of device memory. */
static float *down(const void *d, int64_t n) {
  float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
  if (G->download(h, d, sizeof(float) * (size_t)n)) {
    printf("#   download failed: %s\n", lacos_last_error());
    test_failed_now = 1;
    memset(h, 0xff, sizeof(float) * (size_t)n);   /* NaNs: the comparison fails too */
  }
  return h;
}

static int64_t mismatches(const void *a, const void *b, int64_t n, size_t elem) {
  int64_t k = 0;
  for (int64_t i = 0; i < n; i++) k += memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) != 0;
  return k;
}

/* ---- layers ---- */

static void op_layernorm(void) {
  int64_t N = 37;
  int C = 200;
  float *x = hrand(N * C, 1, 1, 5), *w = hrand(C, 2, 0.5f, 1.5f), *b = hrand(C, 3, -0.2f, 0.2f);
  float *out = malloc(sizeof(float) * N * C), *mean = malloc(sizeof(float) * N), *rstd = malloc(sizeof(float) * N);
  layernorm_forward(out, mean, rstd, x, w, b, N, C, 1e-5f);
  float *dx = up(x, 4 * N * C), *dw = up(w, 4 * C), *db = up(b, 4 * C), *dout = dev_buf(4 * N * C),
        *dmean = dev_buf(4 * N), *drstd = dev_buf(4 * N);
  CHECK_OK(G->layernorm_forward(dout, dmean, drstd, dx, dw, db, N, C, 1e-5f));
  float *g = down(dout, N * C), *gm = down(dmean, N), *gr = down(drstd, N);
  CHECK_NMSE("forward", nmse(out, g, N * C), ELEMENTWISE);
  CHECK_NMSE("mean", nmse(mean, gm, N), ELEMENTWISE);
  CHECK_NMSE("rstd", nmse(rstd, gr, N), ELEMENTWISE);
  /* backward, accumulating into random dinp, dweight, dbias */
  float *dy = hrand(N * C, 4, -1, 1), *gi = hrand(N * C, 5, -1, 1), *gw = hrand(C, 6, -1, 1), *gb = hrand(C, 7, -1, 1);
  float *d_dy = up(dy, 4 * N * C), *d_gi = up(gi, 4 * N * C), *d_gw = up(gw, 4 * C), *d_gb = up(gb, 4 * C);
  layernorm_backward(gi, gw, gb, dy, x, w, mean, rstd, N, C);
  CHECK_OK(G->layernorm_backward(d_gi, d_gw, d_gb, d_dy, dx, dw, dmean, drstd, N, C));
  float *hi = down(d_gi, N * C), *hw = down(d_gw, C), *hb = down(d_gb, C);
  CHECK_NMSE("dinp", nmse(gi, hi, N * C), ELEMENTWISE);
  CHECK_NMSE("dweight", nmse(gw, hw, C), ELEMENTWISE);
  CHECK_NMSE("dbias", nmse(gb, hb, C), ELEMENTWISE);
  /* in place, as bloom_embed uses it */
  CHECK_OK(G->layernorm_forward(dx, NULL, NULL, dx, dw, db, N, C, 1e-5f));
  float *ip = down(dx, N * C);
  CHECK_NMSE("in place", nmse(out, ip, N * C), ELEMENTWISE);
  free(x); free(w); free(b); free(out); free(mean); free(rstd); free(g); free(gm); free(gr); free(dy); free(gi);
  free(gw); free(gb); free(hi); free(hw); free(hb); free(ip);
  dev_release(dx, 4 * N * C); dev_release(dw, 4 * C); dev_release(db, 4 * C); dev_release(dout, 4 * N * C); dev_release(dmean, 4 * N);
  dev_release(drstd, 4 * N); dev_release(d_dy, 4 * N * C); dev_release(d_gi, 4 * N * C); dev_release(d_gw, 4 * C); dev_release(d_gb, 4 * C);
}

static void op_gelu(void) {
  int64_t n = 100003;
  float *x = hrand(n, 8, -9, 9), *y = malloc(4 * n), *dy = hrand(n, 9, -1, 1), *dx = hrand(n, 10, -1, 1);
  gelu_forward(y, x, n, GELU_TANH);
  float *d_x = up(x, 4 * n), *d_y = dev_buf(4 * n), *d_dy = up(dy, 4 * n), *d_dx = up(dx, 4 * n);
  CHECK_OK(G->gelu_forward(d_y, d_x, n, GELU_TANH));
  gelu_backward(dx, x, dy, n, GELU_TANH);
  CHECK_OK(G->gelu_backward(d_dx, d_x, d_dy, n, GELU_TANH));
  float *gy = down(d_y, n), *gdx = down(d_dx, n);
  CHECK_NMSE("forward", nmse(y, gy, n), ELEMENTWISE);
  CHECK_NMSE("backward", nmse(dx, gdx, n), ELEMENTWISE);
  free(x); free(y); free(dy); free(dx); free(gy); free(gdx);
  dev_release(d_x, 4 * n); dev_release(d_y, 4 * n); dev_release(d_dy, 4 * n); dev_release(d_dx, 4 * n);
}

/* Right padding, left padding and a sequence of padding only; a head size
   that is not a power of two; long sequences (several warps of keys per
   row); each side with the scratch its table asks for. */
static void attention_case(int B, int T, int C, int NH, uint64_t seed) {
  int64_t N = (int64_t)B * T, nq = N * 3 * C, np = (int64_t)B * NH * T * T;
  float *qkv = hrand(nq, seed, -1, 1), *slopes = malloc(4 * NH);
  alibi_slopes(slopes, NH);
  int32_t *mask = malloc(4 * N);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int kind = b % 3;
      mask[b * T + t] = kind == 0 ? t < T - 2 : kind == 1 ? t >= T / 3 : (b == B - 1 ? 0 : 1);
    }
  float *out = malloc(4 * N * C), *probs = malloc(4 * np);
  size_t hb = attention_scratch(B, T, C, NH, false, false), db = G->attention_scratch(B, T, C, NH, false, false);
  for (int k = 0; k < 2; k++) {
    size_t h = attention_scratch(B, T, C, NH, true, k), d = G->attention_scratch(B, T, C, NH, true, k);
    if (h > hb) hb = h;
    if (d > db) db = d;
  }
  scratch hs = host_scratch(hb), ds = dev_scratch(db);
  attention_forward(out, probs, qkv, mask, slopes, true, B, T, C, NH, hs);
  float *d_qkv = up(qkv, 4 * nq), *d_sl = up(slopes, 4 * NH), *d_out = dev_buf(4 * N * C),
        *d_probs = dev_buf(4 * np);
  int32_t *d_mask = up(mask, 4 * N);
  CHECK_OK(G->attention_forward(d_out, d_probs, d_qkv, d_mask, d_sl, true, B, T, C, NH, ds));
  float *go = down(d_out, N * C), *gp = down(d_probs, np);
  char what[64];
  snprintf(what, sizeof what, "forward B%d T%d C%d NH%d", B, T, C, NH);
  CHECK_NMSE(what, nmse(out, go, N * C), ELEMENTWISE);
  CHECK_NMSE("probabilities", nmse(probs, gp, np), ELEMENTWISE);
  /* without probabilities (inference) */
  CHECK_OK(G->attention_forward(d_out, NULL, d_qkv, d_mask, d_sl, true, B, T, C, NH, ds));
  float *go2 = down(d_out, N * C);
  CHECK_NMSE("forward without probabilities", nmse(out, go2, N * C), ELEMENTWISE);
  /* backward from the CPU's probabilities, accumulating into a random dqkv */
  float *dout = hrand(N * C, seed + 1, -1, 1), *dqkv = hrand(nq, seed + 2, -0.1f, 0.1f);
  float *d_dout = up(dout, 4 * N * C), *d_dqkv = up(dqkv, 4 * nq), *d_p = up(probs, 4 * np);
  attention_backward(dqkv, dout, probs, qkv, mask, true, B, T, C, NH, hs);
  CHECK_OK(G->attention_backward(d_dqkv, d_dout, d_p, d_qkv, d_mask, true, B, T, C, NH, ds));
  float *gq = down(d_dqkv, nq);
  snprintf(what, sizeof what, "backward B%d T%d C%d NH%d", B, T, C, NH);
  CHECK_NMSE(what, nmse(dqkv, gq, nq), 1e-6);
  free(qkv); free(slopes); free(mask); free(out); free(probs); free(go); free(gp); free(go2); free(dout); free(dqkv); free(gq);
  dev_release(d_qkv, 4 * nq); dev_release(d_sl, 4 * NH); dev_release(d_out, 4 * N * C); dev_release(d_probs, 4 * np);
  dev_release(d_mask, 4 * N); dev_release(d_dout, 4 * N * C); dev_release(d_dqkv, 4 * nq); dev_release(d_p, 4 * np);
  free(hs.p);
  dev_scratch_free(ds);
}

static void op_attention(void) {
  attention_case(3, 19, 48, 4, 11);     /* HD 12 */
  attention_case(3, 9, 36, 3, 12);      /* 3 heads: ALiBi's non-power-of-two branch */
  attention_case(2, 300, 64, 2, 13);    /* 300 keys: ten warps of keys per row */
  attention_case(1, 1200, 128, 1, 14);  /* long rows */
  attention_case(4, 128, 256, 2, 15);   /* a bloom-7b1-like head (HD 128) */
}

static void op_pooling(void) {
  int B = 4, T = 11, C = 70;
  int64_t N = (int64_t)B * T;
  float *x = hrand(N * C, 20, -1, 1), *gout = hrand((int64_t)B * C, 21, -1, 1);
  int32_t mask[44];
  for (int i = 0; i < 44; i++) {
    int b = i / T, t = i % T;
    mask[i] = b == 0 ? 1 : b == 1 ? t < 6 : b == 2 ? t >= 4 : 0;
  }
  float *d_x = up(x, 4 * N * C), *d_g = up(gout, 4 * B * C), *d_out = dev_buf(4 * B * C);
  int32_t *d_m = up(mask, sizeof mask);
  static const char *const names[] = {"mean", "weightedmean", "lasttoken", "cls", "max", "mean_sqrt_len"};
  /* skip 3: a prompt's tokens attended to but not pooled (row 3 has none left) */
  for (int skip = 0; skip <= 3; skip += 3)
    for (int mode = 0; mode <= POOL_MEAN_SQRT_LEN; mode++) {
      float *out = malloc(4 * B * C), *dx = hrand(N * C, 22 + mode, -1, 1);
      float *d_dx = up(dx, 4 * N * C);
      pooling_forward(out, x, mask, B, T, C, mode, skip);
      CHECK_OK(G->pooling_forward(d_out, d_x, d_m, B, T, C, mode, skip));
      pooling_backward(dx, gout, x, mask, B, T, C, mode, skip);
      CHECK_OK(G->pooling_backward(d_dx, d_g, d_x, d_m, B, T, C, mode, skip));
      float *go = down(d_out, B * C), *gd = down(d_dx, N * C);
      CHECK_NMSE(names[mode], nmse(out, go, B * C), ELEMENTWISE);
      CHECK_NMSE("backward", nmse(dx, gd, N * C), ELEMENTWISE);
      free(out); free(dx); free(go); free(gd);
      dev_release(d_dx, 4 * N * C);
    }
  free(x); free(gout);
  dev_release(d_x, 4 * N * C); dev_release(d_g, 4 * B * C); dev_release(d_out, 4 * B * C); dev_release(d_m, sizeof mask);
}

static void op_residual(void) {
  int64_t n = 70001;
  float *a = hrand(n, 30, -1, 1), *b = hrand(n, 31, -1, 1), *o = malloc(4 * n);
  residual_forward(o, a, b, n);
  float *da = up(a, 4 * n), *db = up(b, 4 * n), *dout = dev_buf(4 * n);
  CHECK_OK(G->residual_forward(dout, da, db, n));
  float *g = down(dout, n);
  CHECK_NMSE("residual", nmse(o, g, n), EXACT);
  add_inplace(a, b, n);
  CHECK_OK(G->add_inplace(da, db, n));
  float *g2 = down(da, n);
  CHECK_NMSE("add_inplace", nmse(a, g2, n), EXACT);
  free(a); free(b); free(o); free(g); free(g2);
  dev_release(da, 4 * n); dev_release(db, 4 * n); dev_release(dout, 4 * n);
}

static void op_embedding(void) {
  int V = 97, C = 40;
  int64_t N = 23;
  int32_t ids[23];
  for (int i = 0; i < 23; i++) ids[i] = (int32_t)(rng_u64(40, (uint64_t)i) % (uint64_t)V);
  float *tab = hrand((int64_t)V * C, 41, -0.05f, 0.05f), *scale = hrand(V, 42, 0.01f, 0.1f);
  int32_t *d_ids = up(ids, sizeof ids);
  float *d_scale = up(scale, 4 * V), *d_out = dev_buf(4 * N * C);
  int dtypes[4] = {LACOS_F32, LACOS_F16, LACOS_BF16, LACOS_I8};
  for (int k = 0; k < 4; k++) {
    int dt = dtypes[k];
    size_t esz = (size_t)lacos_dtype_size(dt), bytes = esz * (size_t)V * C;
    void *t = malloc(bytes);
    if (dt == LACOS_I8)
      for (int64_t i = 0; i < (int64_t)V * C; i++) ((int8_t *)t)[i] = (int8_t)(rng_u64(43, (uint64_t)i) % 255 - 127);
    else dtype_convert(t, dt, tab, LACOS_F32, (int64_t)V * C);
    float *out = malloc(4 * N * C);
    CHECK_OK(embedding_forward(out, ids, N, t, dt, scale, V, C));
    void *d_t = up(t, bytes);
    CHECK_OK(G->embedding_forward(d_out, d_ids, N, d_t, dt, d_scale, V, C));
    float *g = down(d_out, N * C);
    CHECK_NMSE(lacos_dtype_name(dt), nmse(out, g, N * C), EXACT);
    free(t); free(out); free(g);
    dev_release(d_t, bytes);
  }
  free(tab); free(scale);
  dev_release(d_ids, sizeof ids); dev_release(d_scale, 4 * V); dev_release(d_out, 4 * N * C);
}

/* ---- quantisation and GEMMs ---- */

static void quantize_case(int64_t N, int C, float threshold, uint64_t seed) {
  float *x = hrand(N * C, seed, -2, 2);
  if (threshold > 0) {   /* two outlier columns, one hit in a single row */
    x[(N > 3 ? 3 : 0) * C + 5] = 9;
    x[(N - 1) * C + 17] = -7;
  }
  int8_t *q = malloc((size_t)(N * C));
  float *am = malloc(4 * N);
  int *cols = malloc(sizeof(int) * C), nc = -1;
  quantize_rows(q, am, x, N, C, threshold, cols, &nc, (scratch){0});
  scratch count = dev_scratch(sizeof(int));
  float *d_x = up(x, 4 * N * C), *d_am = dev_buf(4 * N);
  int8_t *d_q = dev_buf((size_t)(N * C));
  int *d_cols = dev_buf(sizeof(int) * C), gnc = -2;
  CHECK_OK(G->quantize_rows(d_q, d_am, d_x, N, C, threshold, d_cols, &gnc, count));
  dev_scratch_free(count);
  int8_t *gq = malloc((size_t)(N * C));
  int *gcols = malloc(sizeof(int) * C);
  float *gam = down(d_am, N);
  CHECK_OK(G->download(gq, d_q, (size_t)(N * C)));
  CHECK_OK(G->download(gcols, d_cols, sizeof(int) * C));
  CHECK(nc == gnc);
  CHECK(mismatches(q, gq, N * C, 1) == 0);
  CHECK(mismatches(am, gam, N, 4) == 0);
  if (nc == gnc && nc > 0) CHECK(mismatches(cols, gcols, nc, sizeof(int)) == 0);
  if (threshold > 0) CHECK(nc == 2);
  free(x); free(q); free(am); free(cols); free(gq); free(gcols); free(gam);
  dev_release(d_x, 4 * N * C); dev_release(d_am, 4 * N); dev_release(d_q, (size_t)(N * C)); dev_release(d_cols, sizeof(int) * C);
}

static void op_quantize_rows(void) {
  quantize_case(33, 130, 0, 50);
  quantize_case(33, 130, 2.5f, 51);   /* outlier columns zeroed in every row */
  quantize_case(4, 64, 2.5f, 52);
  quantize_case(1, 64, 2.5f, 53);     /* one row: outliers zeroed, columns kept */
}

static void gemm_s8_case(bool trans_b, int64_t M, int64_t N, int64_t K, uint64_t seed) {
  int8_t *a = malloc((size_t)(M * K)), *b = malloc((size_t)(N * K));
  for (int64_t i = 0; i < M * K; i++) a[i] = (int8_t)(rng_u64(seed, (uint64_t)i) % 255 - 127);
  for (int64_t i = 0; i < N * K; i++) b[i] = (int8_t)(rng_u64(seed + 1, (uint64_t)i) % 255 - 127);
  int32_t *c = malloc(4 * (size_t)(M * N)), *g = malloc(4 * (size_t)(M * N));
  int64_t ldb = trans_b ? K : N;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      int32_t s = 0;
      for (int64_t k = 0; k < K; k++) s += a[i * K + k] * (trans_b ? b[j * ldb + k] : b[k * ldb + j]);
      c[i * N + j] = s;
    }
  int8_t *da = up(a, (size_t)(M * K)), *db = up(b, (size_t)(N * K));
  int32_t *dc = dev_buf(4 * (size_t)(M * N));
  scratch ws = dev_scratch(G->gemm_s8_scratch(M, N, K));
  CHECK_OK(G->gemm_s8(trans_b, M, N, K, da, K, db, ldb, dc, N, ws));
  dev_scratch_free(ws);
  CHECK_OK(G->download(g, dc, 4 * (size_t)(M * N)));
  int64_t bad = mismatches(c, g, M * N, 4);
  if (bad) printf("#   int8 GEMM %s %lldx%lldx%lld: %lld of %lld products differ\n", trans_b ? "NT" : "NN",
                  (long long)M, (long long)N, (long long)K, (long long)bad, (long long)(M * N));
  CHECK(bad == 0);
  free(a); free(b); free(c); free(g);
  dev_release(da, (size_t)(M * K)); dev_release(db, (size_t)(N * K)); dev_release(dc, 4 * (size_t)(M * N));
}

static void op_gemm_s8(void) {
  gemm_s8_case(true, 37, 64, 96, 60);     /* the forward's "TN" cuBLASLt product */
  gemm_s8_case(true, 256, 1024, 512, 61);
  gemm_s8_case(false, 9, 16, 32, 62);     /* the fast backward's NN product */
  gemm_s8_case(true, 5, 6, 7, 63);        /* sizes cuBLASLt's int8 kernels refuse: the exact fallback */
  gemm_s8_case(false, 3, 10, 13, 64);
}

/* gemm_cuda against a double reference on the same (rounded) inputs. */
static void gemm_case(int dtype, bool ta, bool tb, int M, int N, int K, uint64_t seed) {
  float *a = hrand((int64_t)M * K, seed, -1, 1), *b = hrand((int64_t)K * N, seed + 1, -1, 1),
        *c = hrand((int64_t)M * N, seed + 2, -1, 1);
  size_t esz = (size_t)lacos_dtype_size(dtype);
  void *ta_ = malloc(esz * (size_t)M * K), *tb_ = malloc(esz * (size_t)K * N);
  dtype_convert(ta_, dtype, a, LACOS_F32, (int64_t)M * K);
  dtype_convert(tb_, dtype, b, LACOS_F32, (int64_t)K * N);
  dtype_convert(a, LACOS_F32, ta_, dtype, (int64_t)M * K);   /* the values the GPU sees */
  dtype_convert(b, LACOS_F32, tb_, dtype, (int64_t)K * N);
  int lda = ta ? M : K, ldb = tb ? K : N;
  float alpha = 0.7f, beta = 0.3f, *ref = malloc(4 * (size_t)M * N);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++) s += (double)(ta ? a[k * lda + i] : a[i * lda + k]) * (tb ? b[j * ldb + k] : b[k * ldb + j]);
      ref[i * N + j] = (float)(alpha * s + beta * c[i * N + j]);
    }
  void *da = up(ta_, esz * (size_t)M * K), *db = up(tb_, esz * (size_t)K * N);
  float *dc = up(c, 4 * (size_t)M * N);
  CHECK_OK(G->gemm(dtype, ta, tb, M, N, K, alpha, da, lda, db, ldb, beta, dc, N));
  float *g = down(dc, (int64_t)M * N);
  char what[64];
  snprintf(what, sizeof what, "%s %c%c %dx%dx%d", lacos_dtype_name(dtype), ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K);
  CHECK_NMSE(what, nmse(ref, g, (int64_t)M * N), GEMM);
  free(a); free(b); free(c); free(ta_); free(tb_); free(ref); free(g);
  dev_release(da, esz * (size_t)M * K); dev_release(db, esz * (size_t)K * N); dev_release(dc, 4 * (size_t)M * N);
}

static void op_gemm_float(void) {
  int dtypes[3] = {LACOS_F32, LACOS_F16, LACOS_BF16};
  for (int k = 0; k < 3; k++)
    for (int t = 0; t < 4; t++) gemm_case(dtypes[k], t & 1, t & 2, 33, 17, 65, 70 + (uint64_t)(k * 4 + t));
  gemm_case(LACOS_F32, false, true, 128, 256, 512, 90);
  gemm_case(LACOS_F32, false, false, 7, 5, 0, 91);   /* K = 0: C = beta·C */
  /* batched, strided (attention's form), each product against the CPU's */
  for (int t = 0; t < 4; t++) {
    bool ta = t & 1, tb = t & 2;
    int M = 21, N = 13, K = 37, nb = 5;
    int lda = ta ? M : K, ldb = tb ? K : N;
    int64_t sa = (int64_t)K * M + 3, sb = (int64_t)K * N + 5, sc = (int64_t)M * N + 7;
    float *a = hrand(sa * nb, 95 + t, -1, 1), *b = hrand(sb * nb, 99 + t, -1, 1), *c = hrand(sc * nb, 103 + t, -1, 1);
    float *da = up(a, 4 * sa * nb), *db = up(b, 4 * sb * nb), *dc = up(c, 4 * sc * nb);
    CHECK_OK(G->gemm_batched(LACOS_F32, ta, tb, M, N, K, 0.75f, da, lda, sa, db, ldb, sb, 0.5f, dc, N, sc, nb));
    for (int i = 0; i < nb; i++)
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 0.75f,
                  a + i * sa, lda, b + i * sb, ldb, 0.5f, c + i * sc, N);
    float *g = down(dc, sc * nb);
    char what[64];
    snprintf(what, sizeof what, "batched %c%c", ta ? 'T' : 'N', tb ? 'T' : 'N');
    CHECK_NMSE(what, nmse(c, g, sc * nb), GEMM);
    free(a); free(b); free(c); free(g);
    dev_release(da, 4 * sa * nb); dev_release(db, 4 * sb * nb); dev_release(dc, 4 * sc * nb);
  }
  /* the sgemm_* twins against linear.c's */
  int M = 19, N = 23, K = 31;
  float *a = hrand(M * K, 92, -1, 1), *b = hrand(K * N, 93, -1, 1), *c = hrand(M * N, 94, -1, 1);
  float *ca = malloc(4 * M * N), *da = up(a, 4 * M * K), *db = up(b, 4 * K * N), *dc = dev_buf(4 * M * N);
  for (int v = 0; v < 3; v++) {
    memcpy(ca, c, 4 * M * N);
    CHECK_OK(G->upload(dc, c, 4 * M * N));
    if (v == 0) { sgemm_nt(ca, a, b, M, N, K, 0.5f, 1.0f); CHECK_OK(be_sgemm_nt(G, dc, da, db, M, N, K, 0.5f, 1.0f)); }
    if (v == 1) { sgemm_nn(ca, a, b, M, N, K, 0.5f, 1.0f); CHECK_OK(be_sgemm_nn(G, dc, da, db, M, N, K, 0.5f, 1.0f)); }
    if (v == 2) { sgemm_tn(ca, a, b, M, N, K, 0.5f, 1.0f); CHECK_OK(be_sgemm_tn(G, dc, da, db, M, N, K, 0.5f, 1.0f)); }
    float *g = down(dc, M * N);
    CHECK_NMSE(v == 0 ? "sgemm_nt" : v == 1 ? "sgemm_nn" : "sgemm_tn", nmse(ca, g, M * N), GEMM);
    free(g);
  }
  free(a); free(b); free(c); free(ca);
  dev_release(da, 4 * M * K); dev_release(db, 4 * K * N); dev_release(dc, 4 * M * N);
}

/* ---- linears ---- */

typedef struct lin_pair { linear h, d; size_t wbytes; } lin_pair;

/* The same linear on both devices: f32 weights, or int8 codes and scales. */
static void lin_make(lin_pair *lp, int kind, int in, int out, uint64_t seed) {
  memset(lp, 0, sizeof *lp);
  float *w = hrand((int64_t)in * out, seed, -0.1f, 0.1f);
  lp->h.in = lp->d.in = in;
  lp->h.out = lp->d.out = out;
  lp->h.kind = lp->d.kind = kind;
  lp->h.bias = hrand(out, seed + 1, -0.05f, 0.05f);
  lp->d.bias = up(lp->h.bias, 4 * (size_t)out);
  if (kind == LINEAR_F32) {
    lp->h.w = w;
    lp->d.w = up(w, 4 * (size_t)in * out);
    return;
  }
  lp->h.q = malloc((size_t)in * out);
  lp->h.scale = malloc(4 * (size_t)out);
  linear_quantize_weights(&lp->h, w, 0, out);
  free(w);
  lp->d.q = up(lp->h.q, (size_t)in * out);
  lp->d.scale = up(lp->h.scale, 4 * (size_t)out);
}

static void lin_free(lin_pair *lp) {
  size_t n = (size_t)lp->h.in * lp->h.out;
  free(lp->h.w); free(lp->h.q); free(lp->h.scale); free(lp->h.bias);
  dev_release(lp->d.w, 4 * n); dev_release(lp->d.q, n); dev_release(lp->d.scale, 4 * (size_t)lp->h.out);
  dev_release(lp->d.bias, 4 * (size_t)lp->h.out);
}

static void linear_case(int kind, float threshold, int64_t N, int in, int out, uint64_t seed) {
  lin_pair lp;
  lin_make(&lp, kind, in, out, seed);
  float *x = hrand(N * in, seed + 2, -1, 1);
  if (threshold > 0) { x[2 * in + 3] = 8; x[5 * in + 40] = -9; }
  float *y = malloc(4 * N * out), *d_x = up(x, 4 * N * in), *d_y = dev_buf(4 * N * out);
  size_t hb = 0, db = 0;
  for (int fast = 0; fast < 2; fast++) {
    size_t h = linear_scratch(N, in, out, kind, threshold > 0, true, fast),
           d = G->linear_scratch(N, in, out, kind, threshold > 0, true, fast);
    if (h > hb) hb = h;
    if (d > db) db = d;
  }
  scratch hs = host_scratch(hb), ds = dev_scratch(db);
  CHECK_OK(linear_forward(y, x, &lp.h, N, threshold, hs));
  CHECK_OK(G->linear_forward(d_y, d_x, &lp.d, N, threshold, ds));
  float *g = down(d_y, N * out);
  char what[80];
  snprintf(what, sizeof what, "%s forward, threshold %g", kind == LINEAR_F32 ? "f32" : "int8", threshold);
  CHECK_NMSE(what, nmse(y, g, N * out), GEMM);
  CHECK(lp.h.outliers == lp.d.outliers);
  if (threshold > 0) CHECK(lp.h.outliers == 2);
  /* input gradients, exact and (int8) through int8 products */
  float *dy = hrand(N * out, seed + 3, -1, 1), *d_dy = up(dy, 4 * N * out);
  for (int fast = 0; fast < (kind == LINEAR_INT8 ? 2 : 1); fast++) {
    float *dx = hrand(N * in, seed + 4, -1, 1), *d_dx = up(dx, 4 * N * in);
    CHECK_OK(linear_backward_input(dx, dy, &lp.h, N, fast, hs));
    CHECK_OK(G->linear_backward_input(d_dx, d_dy, &lp.d, N, fast, ds));
    float *gd = down(d_dx, N * in);
    snprintf(what, sizeof what, "%s backward%s", kind == LINEAR_F32 ? "f32" : "int8", fast ? " (int8 products)" : "");
    CHECK_NMSE(what, nmse(dx, gd, N * in), GEMM);
    free(dx); free(gd);
    dev_release(d_dx, 4 * N * in);
  }
  free(hs.p);
  dev_scratch_free(ds);
  free(x); free(y); free(g); free(dy);
  dev_release(d_x, 4 * N * in); dev_release(d_y, 4 * N * out); dev_release(d_dy, 4 * N * out);
  lin_free(&lp);
}

static void op_linear(void) {
  linear_case(LINEAR_F32, 0, 21, 64, 96, 100);
  linear_case(LINEAR_INT8, 0, 21, 64, 96, 101);
  linear_case(LINEAR_INT8, 2.5f, 21, 64, 96, 102);   /* outlier columns through the f32 product */
  linear_case(LINEAR_INT8, 0, 7, 30, 18, 103);       /* sizes for the int8 fallback kernel */
  linear_case(LINEAR_INT8, 0, 130, 256, 1024, 104);
}

/* ---- LoRA ---- */

static void op_lora(void) {
  lora_hyper hp = {.r = 4, .scaling = 12.0 / 4, .dropout = 0.2, .seed = 9};   /* r 4, alpha 12 */
  int64_t N = 15;
  int in = 40, out = 24, r = 4;
  lora_slot hs = {.A = hrand(r * in, 110, -0.3f, 0.3f), .B = hrand(out * r, 111, -0.3f, 0.3f),
                  .dA = hrand(r * in, 112, -1, 1), .dB = hrand(out * r, 113, -1, 1), .in = in, .out = out};
  lora_slot ds = {.A = up(hs.A, 4 * r * in), .B = up(hs.B, 4 * out * r), .dA = up(hs.dA, 4 * r * in),
                  .dB = up(hs.dB, 4 * out * r), .in = in, .out = out};
  float *x = hrand(N * in, 114, -1, 1), *y = hrand(N * out, 115, -1, 1), *dy = hrand(N * out, 116, -1, 1);
  float *dx = hrand(N * in, 117, -1, 1), *h = malloc(4 * N * r), *dh = malloc(4 * N * r), *xd = malloc(4 * N * in);
  float *d_x = up(x, 4 * N * in), *d_y = up(y, 4 * N * out), *d_dy = up(dy, 4 * N * out), *d_dx = up(dx, 4 * N * in),
        *d_h = dev_buf(4 * N * r), *d_dh = dev_buf(4 * N * r), *d_xd = dev_buf(4 * N * in);
  /* three rows of five tokens, keyed out of order, the second left-padded */
  uint64_t keys[3] = { 4, 0, 9 };
  int32_t starts[3] = { 0, 2, 0 };
  void *d_keys = up(keys, sizeof keys), *d_starts = up(starts, sizeof starts);
  for (int call = 0; call < 2; call++) {   /* 0: no dropout; 7: a dropout stream */
    uint64_t dc = call ? 7 : 0;
    lora_dropout hd = { dc, 5, keys, starts }, dd = { dc, 5, d_keys, d_starts };
    CHECK_OK(lora_forward(&hp, &hs, y, x, h, N, &hd, xd));
    CHECK_OK(G->lora_forward(&hp, &ds, d_y, d_x, d_h, N, &dd, d_xd));
    CHECK_OK(lora_backward(&hp, &hs, dx, dy, x, h, dh, N, &hd, xd));
    CHECK_OK(G->lora_backward(&hp, &ds, d_dx, d_dy, d_x, d_h, d_dh, N, &dd, d_xd));
    float *gy = down(d_y, N * out), *gx = down(d_dx, N * in), *ga = down(ds.dA, r * in), *gb = down(ds.dB, out * r);
    CHECK_NMSE(call ? "forward, dropout" : "forward", nmse(y, gy, N * out), GEMM);
    CHECK_NMSE("dx", nmse(dx, gx, N * in), GEMM);
    CHECK_NMSE("dA", nmse(hs.dA, ga, r * in), GEMM);
    CHECK_NMSE("dB", nmse(hs.dB, gb, out * r), GEMM);
    free(gy); free(gx); free(ga); free(gb);
  }
  free(hs.A); free(hs.B); free(hs.dA); free(hs.dB); free(x); free(y); free(dy); free(dx); free(h); free(dh); free(xd);
  dev_release(ds.A, 4 * r * in); dev_release(ds.B, 4 * out * r); dev_release(ds.dA, 4 * r * in); dev_release(ds.dB, 4 * out * r);
  dev_release(d_x, 4 * N * in); dev_release(d_y, 4 * N * out); dev_release(d_dy, 4 * N * out); dev_release(d_dx, 4 * N * in);
  dev_release(d_h, 4 * N * r); dev_release(d_dh, 4 * N * r); dev_release(d_xd, 4 * N * in);
  dev_release(d_keys, sizeof keys); dev_release(d_starts, sizeof starts);
}

/* A device fault or a bad launch comes back as a clear error, not an abort. */
static void op_errors_are_reported(void) {
  float *d = dev_buf(64);
  CHECK_FAIL(G->attention_forward(d, NULL, d, NULL, d, true, 1, 20000, 64, 1, (scratch){ d, 64 }), LACOS_ELIMIT,
             "sequence too long");
  CHECK_FAIL(G->attention_forward(d, NULL, d, NULL, d, true, 1, 64, 64, 1, (scratch){ d, 64 }), LACOS_ELIMIT,
             "cannot hold one head");
  CHECK_FAIL(G->embedding_forward(d, NULL, 1, d, LACOS_I64, NULL, 1, 1), LACOS_EUNSUPPORTED, "not supported on CUDA");
  CHECK_FAIL(G->gemm(LACOS_I32, false, false, 2, 2, 2, 1, d, 2, d, 2, 0, d, 2), LACOS_EUNSUPPORTED, "f32, f16 or bf16");
  dev_release(d, 64);
}

/* op_errors_are_reported needs the real kernels. `make check-cuda-harness`
   compiles this file against tests/c/cuda_emul.h instead of liblacos's
   backend (a check of the harness itself — buffer sizes, CPU references —
   on a machine without a GPU) and defines OPS_GPU_ONLY empty. */
#ifndef OPS_GPU_ONLY
#define OPS_GPU_ONLY(X) X(op_errors_are_reported)
#else
static void op_errors_are_reported(void) __attribute__((unused));
#endif
#define OPS(X) X(op_layernorm) X(op_gelu) X(op_attention) X(op_pooling) X(op_residual) X(op_embedding) \
  X(op_quantize_rows) X(op_gemm_s8) X(op_gemm_float) X(op_linear) X(op_lora) OPS_GPU_ONLY(X)

int main(void) {
  char why[400], reason[460];
  if (!backend_available(LACOS_CUDA, why, sizeof why) || backend_get(&G, LACOS_CUDA)) {
    snprintf(reason, sizeof reason, "no GPU: %s", why);
#define SKIP_ONE(fn) SKIP(#fn, reason);
    OPS(SKIP_ONE)
    PARITY_TESTS(SKIP_ONE)
    return 0;
  }
  char name[256];
  int cc = 0;
  double fr = 0, tot = 0;
  if (lacos_cuda_info(name, sizeof name, &cc, NULL, &fr, &tot) == LACOS_OK)
    printf("# device: %s, compute capability %.1f, %.1f GiB free of %.1f GiB\n", name, cc / 10.0, fr / 1073741824.0,
           tot / 1073741824.0);
  /* cuBLASLt's workspace is allocated on the first GEMM and kept: make it
     exist before the tests that count device memory. */
  float one = 1;
  float *w = dev_buf(4);
  if (w && !G->upload(w, &one, 4)) be_sgemm_nn(G, w, w, w, 1, 1, 1, 1, 0);
#define RUN_ONE(fn) RUN(fn);
  OPS(RUN_ONE)
  PARITY_TESTS(RUN_ONE)
  dev_release(w, 4);
  TEST_EXIT();
}
