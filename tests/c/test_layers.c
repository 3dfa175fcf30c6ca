/* test_layers.c: the CPU layers one by one — finite-difference checks of
   every backward pass, int8 linear against a naive reference, ALiBi slopes
   against the values in ENGINE-FACTS §1.6, pooling semantics. */
#include "test.h"
#include <float.h>
#include "../../engine/cpu/layers.h"

static uint64_t test_seed = 1234;
static void fill(float *x, int64_t n, float lo, float hi) {
  for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)rng_uniform(test_seed, (uint64_t)i + (uint64_t)n * 7919);
  test_seed++;
}
static double dot(const float *a, const float *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}
/* Caller-owned scratch for the layers that take it (freed at exit). */
static scratch test_scratch(size_t bytes) {
  static void *buf;
  static size_t have;
  if (bytes > have) { free(buf); buf = malloc(bytes); have = bytes; }
  return (scratch){ buf, have };
}
static scratch att_ws(int B, int T, int C, int NH, bool probs, bool backward) {
  return test_scratch(attention_scratch(B, T, C, NH, probs, backward));
}

/* Relative agreement of an analytic and a numeric derivative. */
static double rel_err(double a, double n) {
  double d = fabs(a - n), s = fmax(fmax(fabs(a), fabs(n)), 1e-2);
  return d / s;
}

/* ---- layernorm ---- */
static const int LN_N = 5, LN_C = 24;
static float ln_x[5 * 24], ln_w[24], ln_b[24], ln_wt[5 * 24], ln_out[5 * 24];
static double ln_loss(void) {
  layernorm_forward(ln_out, NULL, NULL, ln_x, ln_w, ln_b, LN_N, LN_C, 1e-5f);
  return dot(ln_out, ln_wt, LN_N * LN_C);
}
static void layernorm_gradcheck(void) {
  fill(ln_x, LN_N * LN_C, -2, 2); fill(ln_w, LN_C, 0.5f, 1.5f); fill(ln_b, LN_C, -0.3f, 0.3f); fill(ln_wt, LN_N * LN_C, -1, 1);
  float mean[5], rstd[5], dx[5 * 24] = {0}, dw[24] = {0}, db[24] = {0};
  layernorm_forward(ln_out, mean, rstd, ln_x, ln_w, ln_b, LN_N, LN_C, 1e-5f);
  layernorm_backward(dx, dw, db, ln_wt, ln_x, ln_w, mean, rstd, LN_N, LN_C);
  double worst = 0;
  for (int i = 0; i < LN_N * LN_C; i += 7) {
    float keep = ln_x[i], h = 1e-2f;
    ln_x[i] = keep + h; double lp = ln_loss();
    ln_x[i] = keep - h; double lm = ln_loss();
    ln_x[i] = keep;
    worst = fmax(worst, rel_err(dx[i], (lp - lm) / (2 * h)));
  }
  for (int c = 0; c < LN_C; c += 5) {
    float keep = ln_w[c], h = 1e-2f;
    ln_w[c] = keep + h; double lp = ln_loss();
    ln_w[c] = keep - h; double lm = ln_loss();
    ln_w[c] = keep;
    worst = fmax(worst, rel_err(dw[c], (lp - lm) / (2 * h)));
  }
  printf("#   layernorm max relative error %.2e\n", worst);
  CHECK(worst < 2e-2);
  /* forward against a double-precision reference */
  layernorm_forward(ln_out, NULL, NULL, ln_x, ln_w, ln_b, LN_N, LN_C, 1e-5f);
  for (int i = 0; i < LN_N; i++) {
    double m = 0, v = 0;
    for (int c = 0; c < LN_C; c++) m += ln_x[i * LN_C + c];
    m /= LN_C;
    for (int c = 0; c < LN_C; c++) v += (ln_x[i * LN_C + c] - m) * (ln_x[i * LN_C + c] - m);
    v /= LN_C;
    for (int c = 0; c < LN_C; c++)
      CHECK_NEAR(ln_out[i * LN_C + c], (ln_x[i * LN_C + c] - m) / sqrt(v + 1e-5) * ln_w[c] + ln_b[c], 1e-5);
  }
}

/* ---- gelu ---- */
static void gelu_gradcheck(void) {
  enum { n = 64 };
  float x[n], y[n], dx[n] = {0}, ones[n];
  for (int i = 0; i < n; i++) { x[i] = -6.0f + 12.0f * i / (n - 1); ones[i] = 1; }
  gelu_forward(y, x, n, GELU_TANH);
  gelu_backward(dx, x, ones, n, GELU_TANH);
  double worst = 0, fwd = 0;
  for (int i = 0; i < n; i++) {
    double xd = x[i];
    fwd = fmax(fwd, fabs(y[i] - 0.5 * xd * (1 + tanh(0.79788456 * xd * (1 + 0.044715 * xd * xd)))));
    double h = 1e-3, gp = 0.5 * (xd + h) * (1 + tanh(0.79788456 * (xd + h) * (1 + 0.044715 * (xd + h) * (xd + h))));
    double gm = 0.5 * (xd - h) * (1 + tanh(0.79788456 * (xd - h) * (1 + 0.044715 * (xd - h) * (xd - h))));
    worst = fmax(worst, fabs(dx[i] - (gp - gm) / (2 * h)));
  }
  printf("#   gelu forward max abs error %.2e, derivative %.2e\n", fwd, worst);
  CHECK(fwd < 1e-6);
  CHECK(worst < 1e-5);
}

/* ---- attention ---- */
enum { AB = 3, AT = 5, AC = 12, ANH = 3 };
static float a_qkv[AB * AT * 3 * AC], a_out[AB * AT * AC], a_wt[AB * AT * AC], a_slopes[ANH];
static int32_t a_mask[AB * AT] = {1, 1, 1, 1, 1,  0, 0, 1, 1, 1,  1, 1, 1, 0, 0};
static double att_loss(void) {
  attention_forward(a_out, NULL, a_qkv, a_mask, a_slopes, true, AB, AT, AC, ANH, att_ws(AB, AT, AC, ANH, false, false));
  return dot(a_out, a_wt, AB * AT * AC);
}
static void attention_gradcheck(void) {
  fill(a_qkv, AB * AT * 3 * AC, -1, 1); fill(a_wt, AB * AT * AC, -1, 1);
  alibi_slopes(a_slopes, ANH);
  float probs[AB * ANH * AT * AT], dqkv[AB * AT * 3 * AC] = {0};
  attention_forward(a_out, probs, a_qkv, a_mask, a_slopes, true, AB, AT, AC, ANH, att_ws(AB, AT, AC, ANH, true, false));
  /* rows sum to one; masked keys get exactly zero; a fully masked (left-pad) query row is uniform */
  for (int r = 0; r < AB * ANH * AT; r++) {
    double s = 0;
    for (int j = 0; j < AT; j++) s += probs[r * AT + j];
    CHECK_NEAR(s, 1.0, 1e-5);
  }
  CHECK(probs[(1 * ANH * AT + 2) * AT + 0] == 0.0f);              /* batch 1 row 2 ignores padded key 0 */
  CHECK(probs[(0 * ANH * AT + 1) * AT + 3] == 0.0f);              /* causal */
  CHECK_NEAR(probs[(1 * ANH * AT + 0) * AT + 4], 1.0 / AT, 1e-6);  /* left-pad query: uniform */
  attention_backward(dqkv, a_wt, probs, a_qkv, a_mask, true, AB, AT, AC, ANH, att_ws(AB, AT, AC, ANH, true, true));
  double worst = 0;
  for (int i = 0; i < AB * AT * 3 * AC; i += 5) {
    float keep = a_qkv[i], h = 1e-2f;
    a_qkv[i] = keep + h; double lp = att_loss();
    a_qkv[i] = keep - h; double lm = att_loss();
    a_qkv[i] = keep;
    worst = fmax(worst, rel_err(dqkv[i], (lp - lm) / (2 * h)));
  }
  printf("#   attention max relative error %.2e\n", worst);
  CHECK(worst < 2e-2);
}

/* Left padding must not change the real tokens' outputs (ALiBi positions start at the first real token). */
static void attention_padding_invariance(void) {
  enum { T = 4, C = 8, NH = 2 };
  float qkv1[T * 3 * C], qkv2[(T + 2) * 3 * C], o1[T * C], o2[(T + 2) * C], sl[NH];
  fill(qkv1, T * 3 * C, -1, 1);
  fill(qkv2, 2 * 3 * C, -1, 1);                 /* junk in the padded rows */
  memcpy(qkv2 + 2 * 3 * C, qkv1, sizeof qkv1);
  int32_t m1[T] = {1, 1, 1, 1}, m2[T + 2] = {0, 0, 1, 1, 1, 1};
  alibi_slopes(sl, NH);
  attention_forward(o1, NULL, qkv1, m1, sl, true, 1, T, C, NH, att_ws(1, T, C, NH, false, false));
  attention_forward(o2, NULL, qkv2, m2, sl, true, 1, T + 2, C, NH, att_ws(1, T + 2, C, NH, false, false));
  double worst = 0;
  for (int i = 0; i < T * C; i++) worst = fmax(worst, fabs(o1[i] - o2[2 * C + i]));
  CHECK(worst < 1e-6);
}

/* attention_forward and attention_backward against the textbook loops
   (double precision, every key scored, masked scores at the f32 minimum; a
   query with no visible key passes no gradient to q and k), for lengths
   that leave every remainder of the blocks of 4 queries and 16 keys, left
   and right padding, and head sizes 8 and 24 (not multiples of 16); causal
   with ALiBi (BLOOM) and bidirectional without slopes (BERT). */
static void attention_matches_reference(void) {
  enum { B = 3, TMAX = 37, CMAX = 72, NH = 3 };
  static float qkv[B * TMAX * 3 * CMAX], out[B * TMAX * CMAX], probs[B * NH * TMAX * TMAX];
  static float dout[B * TMAX * CMAX], dqkv[B * TMAX * 3 * CMAX];
  static double dref[B * TMAX * 3 * CMAX];
  static int32_t mask[B * TMAX];
  float sl[NH];
  alibi_slopes(sl, NH);
  const int Ts[] = {1, 2, 3, 5, 6, 7, 17, 37}, Cs[] = {24, 72};
  double worst = 0, gworst = 0;
  for (int mode = 0; mode < 4; mode++)
    for (int ti = 0; ti < 8; ti++) {
      bool causal = mode < 2;
      const float *slp = causal ? sl : NULL;
      int T = Ts[ti], C = Cs[mode % 2], HD = C / NH;
      fill(qkv, (int64_t)B * T * 3 * C, -2, 2);
      for (int t = 0; t < T; t++) {
        mask[t] = 1;
        mask[T + t] = t >= T / 2;        /* left padding: queries before T/2 see no key */
        mask[2 * T + t] = t < T - 1 || T == 1;   /* right padding */
      }
      fill(dout, (int64_t)B * T * C, -1, 1);
      memset(dref, 0, sizeof(double) * (size_t)B * T * 3 * C);
      for (int wp = 0; wp < 2; wp++) {
        CHECK_OK(attention_forward(out, wp ? probs : NULL, qkv, mask, slp, causal, B, T, C, NH,
                                   att_ws(B, T, C, NH, wp, false)));
        for (int b = 0; b < B; b++)
          for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
              double s[TMAX], mx = -FLT_MAX, sum = 0;
              int run = 0;
              for (int j = 0; j < T; j++) {
                run += mask[b * T + j] != 0;
                double d = 0;
                for (int e = 0; e < HD; e++)
                  d += (double)qkv[(b * T + i) * 3 * C + h * HD + e] * qkv[(b * T + j) * 3 * C + C + h * HD + e];
                s[j] = (!causal || j <= i) && mask[b * T + j] ? d / sqrt((double)HD) + (causal ? sl[h] * (run - 1) : 0)
                                                              : -FLT_MAX;
                mx = fmax(mx, s[j]);
              }
              for (int j = 0; j < T; j++) sum += s[j] = exp(s[j] - mx);
              for (int e = 0; e < HD; e++) {
                double o = 0;
                for (int j = 0; j < T; j++) o += s[j] / sum * qkv[(b * T + j) * 3 * C + 2 * C + h * HD + e];
                worst = fmax(worst, fabs(o - out[(b * T + i) * C + h * HD + e]));
              }
              if (!wp) continue;
              for (int j = 0; j < T; j++) worst = fmax(worst, fabs(s[j] / sum - probs[((b * NH + h) * T + i) * T + j]));
              /* the backward of this query, in double */
              const float *go = dout + (b * T + i) * C + h * HD;
              double dp[TMAX], pdp = 0;
              bool blind = true;
              for (int j = 0; j < (causal ? i + 1 : T); j++) blind &= !mask[b * T + j];
              for (int j = 0; j < T; j++) {
                double pj = s[j] / sum;
                dp[j] = 0;
                for (int e = 0; e < HD; e++) {
                  dp[j] += go[e] * (double)qkv[(b * T + j) * 3 * C + 2 * C + h * HD + e];
                  dref[(b * T + j) * 3 * C + 2 * C + h * HD + e] += pj * go[e];
                }
                pdp += pj * dp[j];
              }
              for (int j = 0; j < T && !blind; j++) {
                double ds = s[j] / sum * (dp[j] - pdp) / sqrt((double)HD);
                for (int e = 0; e < HD; e++) {
                  dref[(b * T + i) * 3 * C + h * HD + e] += ds * qkv[(b * T + j) * 3 * C + C + h * HD + e];
                  dref[(b * T + j) * 3 * C + C + h * HD + e] += ds * qkv[(b * T + i) * 3 * C + h * HD + e];
                }
              }
            }
      }
      memset(dqkv, 0, sizeof(float) * (size_t)B * T * 3 * C);
      CHECK_OK(attention_backward(dqkv, dout, probs, qkv, mask, causal, B, T, C, NH, att_ws(B, T, C, NH, true, true)));
      for (int k = 0; k < B * T * 3 * C; k++) gworst = fmax(gworst, fabs(dqkv[k] - dref[k]));
    }
  printf("#   attention vs reference: max abs difference %.2e, gradient %.2e\n", worst, gworst);
  CHECK(worst < 1e-5);
  CHECK(gworst < 1e-5);
}

static void alibi_slopes_match(void) {
  float s16[16], s32[32], s12[12];
  alibi_slopes(s16, 16);
  alibi_slopes(s32, 32);
  alibi_slopes(s12, 12);
  for (int h = 1; h <= 16; h++) CHECK_NEAR(s16[h - 1], pow(2, -0.5 * h), 1e-7);
  for (int h = 1; h <= 32; h++) CHECK_NEAR(s32[h - 1], pow(2, -0.25 * h), 1e-7);
  const double want12[12] = {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625,
                             0.707107, 0.353553, 0.176777, 0.088388};
  for (int h = 0; h < 12; h++) CHECK_NEAR(s12[h], want12[h], 1e-6);
}

/* ---- pooling ---- */
static void pooling_modes(void) {
  enum { B = 2, T = 4, C = 3 };
  float x[B * T * C], out[B * C];
  for (int i = 0; i < B * T * C; i++) x[i] = (float)i;
  int32_t mask[B * T] = {1, 1, 1, 0,  0, 1, 1, 1};   /* right and left padded */
  pooling_forward(out, x, mask, B, T, C, POOL_MEAN, 0);
  CHECK_NEAR(out[0], (0 + 3 + 6) / 3.0, 1e-6);
  CHECK_NEAR(out[C], (15 + 18 + 21) / 3.0, 1e-6);
  pooling_forward(out, x, mask, B, T, C, POOL_WEIGHTEDMEAN, 0);
  CHECK_NEAR(out[0], (1 * 0 + 2 * 3 + 3 * 6) / 6.0, 1e-6);
  CHECK_NEAR(out[C], (1 * 15 + 2 * 18 + 3 * 21) / 6.0, 1e-6);   /* weights from the first real token */
  pooling_forward(out, x, mask, B, T, C, POOL_LASTTOKEN, 0);
  CHECK_NEAR(out[0], 6, 0);
  CHECK_NEAR(out[C], 21, 0);
  pooling_forward(out, x, mask, B, T, C, POOL_CLS, 0);
  CHECK_NEAR(out[0], x[0], 0);
  CHECK_NEAR(out[C], x[(T + 1) * C], 0);   /* the first real token of a left-padded row */
  pooling_forward(out, x, mask, B, T, C, POOL_MAX, 0);
  CHECK_NEAR(out[0], 6, 0);
  CHECK_NEAR(out[C], 21, 0);
  /* backward is the transpose of forward for each mode (max: at its argmax), pooling every token and with
     each row's first two real tokens skipped (those get no gradient) */
  for (int skip = 0; skip <= 2; skip += 2)
    for (int mode = 0; mode <= POOL_MEAN_SQRT_LEN; mode++) {
      float g[B * C], dx[B * T * C] = {0}, xx[B * T * C];
      fill(g, B * C, -1, 1);
      fill(xx, B * T * C, -1, 1);
      pooling_backward(dx, g, xx, mask, B, T, C, mode, skip);
      pooling_forward(out, xx, mask, B, T, C, mode, skip);
      CHECK_NEAR(dot(out, g, B * C), dot(dx, xx, B * T * C), 1e-5);
      if (skip)
        for (int c = 0; c < C; c++) CHECK(dx[c] == 0 && dx[C + c] == 0 && dx[(T + 1) * C + c] == 0);
    }
  /* skip 1: each row's first real token attended to but not pooled (a one-token prompt); weightedmean keeps the
     weights counted from the first real token, cls takes the first pooled token */
  pooling_forward(out, x, mask, B, T, C, POOL_MEAN, 1);
  CHECK_NEAR(out[0], (3 + 6) / 2.0, 1e-6);
  CHECK_NEAR(out[C], (18 + 21) / 2.0, 1e-6);
  pooling_forward(out, x, mask, B, T, C, POOL_WEIGHTEDMEAN, 1);
  CHECK_NEAR(out[0], (2 * 3 + 3 * 6) / 5.0, 1e-5);
  CHECK_NEAR(out[C], (2 * 18 + 3 * 21) / 5.0, 1e-5);
  pooling_forward(out, x, mask, B, T, C, POOL_CLS, 1);
  CHECK_NEAR(out[0], 3, 0);
  CHECK_NEAR(out[C], 18, 0);
  pooling_forward(out, x, mask, B, T, C, POOL_LASTTOKEN, 1);
  CHECK_NEAR(out[C], 21, 0);
  pooling_forward(out, x, mask, B, T, C, POOL_MEAN_SQRT_LEN, 1);
  CHECK_NEAR(out[0], (3 + 6) / sqrt(2.0), 1e-5);
  for (int i = 0; i < B * T * C; i++) x[i] = -(float)i;   /* the largest value is now each row's first real token */
  pooling_forward(out, x, mask, B, T, C, POOL_MAX, 1);
  CHECK_NEAR(out[0], -3, 0);
  CHECK_NEAR(out[C], -18, 0);
  for (int i = 0; i < B * T * C; i++) x[i] = (float)i;
  /* a row whose real tokens are all skipped pools to zeros (cls, lasttoken, max too) */
  for (int mode = 0; mode <= POOL_MEAN_SQRT_LEN; mode++) {
    pooling_forward(out, x, mask, B, T, C, mode, 3);
    for (int c = 0; c < 2 * C; c++) CHECK(out[c] == 0);
  }
  /* no tokens: zeros, not NaN */
  int32_t none[T] = {0, 0, 0, 0};
  pooling_forward(out, x, none, 1, T, C, POOL_MEAN, 0);
  CHECK(out[0] == 0 && out[1] == 0);
}

/* ---- int8 linear ---- */
static void int8_linear_matches_reference(void) {
  enum { N = 7, IN = 64, OUT = 48 };
  float x[N * IN], w[OUT * IN], bias[OUT], y[N * OUT], yf[N * OUT];
  fill(x, N * IN, -1, 1); fill(w, OUT * IN, -0.05f, 0.05f); fill(bias, OUT, -0.1f, 0.1f);
  x[3 * IN + 10] = 9.0f;   /* an outlier feature */
  int8_t q[OUT * IN];
  float scale[OUT];
  linear l8 = {.in = IN, .out = OUT, .kind = LINEAR_INT8, .q = q, .scale = scale, .bias = bias};
  linear l32 = {.in = IN, .out = OUT, .kind = LINEAR_F32, .w = w, .bias = bias};
  linear_quantize_weights(&l8, w, 0, OUT);
  size_t need = linear_scratch(N, IN, OUT, LINEAR_INT8, true, true, true), exact = linear_scratch(N, IN, OUT, LINEAR_INT8, true, true, false);
  scratch s = test_scratch(need > exact ? need : exact);
  /* scratch is the caller's: too little is a clean error, not a write past it */
  CHECK_FAIL(linear_forward(y, x, &l8, N, 0, (scratch){ s.p, 64 }), LACOS_ELIMIT, "do not fit");
  /* reference: quantise rows half-to-even, integer dot products, dequantise */
  CHECK_OK(linear_forward(y, x, &l8, N, 0, s));
  double worst = 0;
  for (int i = 0; i < N; i++) {
    float am = 0;
    for (int k = 0; k < IN; k++) am = fmaxf(am, fabsf(x[i * IN + k]));
    for (int j = 0; j < OUT; j++) {
      int64_t acc = 0;
      for (int k = 0; k < IN; k++) acc += (int64_t)(int8_t)rintf(x[i * IN + k] * 127.0f / am) * q[j * IN + k];
      double ref = (double)acc * am * scale[j] / 16129.0 + bias[j];
      worst = fmax(worst, fabs(ref - y[i * OUT + j]));
    }
  }
  printf("#   int8 linear vs integer reference: max abs difference %.2e\n", worst);
  CHECK(worst < 1e-5);
  /* with the outlier threshold the product is closer to f32 */
  CHECK_OK(linear_forward(yf, x, &l32, N, 0, s));
  double e0 = 0, e6 = 0;
  for (int i = 0; i < N * OUT; i++) e0 = fmax(e0, fabs(y[i] - yf[i]));
  CHECK_OK(linear_forward(y, x, &l8, N, 6.0f, s));
  CHECK(l8.outliers == 1);
  for (int i = 0; i < N * OUT; i++) e6 = fmax(e6, fabs(y[i] - yf[i]));
  printf("#   int8 vs f32: threshold 0 max error %.3e, threshold 6 %.3e\n", e0, e6);
  CHECK(e6 < e0);
  /* input gradients: exact mode equals the dequantised f32 product; int8 mode within 3% */
  float dy[N * OUT], dx_exact[N * IN] = {0}, dx_fast[N * IN] = {0}, dx_ref[N * IN] = {0}, wd[OUT * IN];
  fill(dy, N * OUT, -1, 1);
  for (int j = 0; j < OUT; j++) linear_weight_row(wd + j * IN, &l8, j);
  linear lref = {.in = IN, .out = OUT, .kind = LINEAR_F32, .w = wd};
  CHECK_OK(linear_backward_input(dx_ref, dy, &lref, N, false, s));
  CHECK_OK(linear_backward_input(dx_exact, dy, &l8, N, false, s));
  CHECK_OK(linear_backward_input(dx_fast, dy, &l8, N, true, s));
  double ee = 0, ef = 0, mag = 0;
  for (int i = 0; i < N * IN; i++) {
    ee = fmax(ee, fabs(dx_exact[i] - dx_ref[i]));
    ef = fmax(ef, fabs(dx_fast[i] - dx_ref[i]));
    mag = fmax(mag, fabs(dx_ref[i]));
  }
  printf("#   int8 input gradient: exact mode %.2e, int8 mode %.2e (of %.2e)\n", ee, ef, mag);
  CHECK(ee < 1e-5);
  CHECK(ef < 0.03 * mag);
}

/* linear_prepare packs the codes for oneDNN's matmul primitive (u8 activation
   codes, integer sums taken off): the same int32 products as the plain GEMM,
   so the same bits out, forward (with and without outlier columns) and input
   gradients; rows read back from the packed codes are the plain rows. */
static void packed_int8_linear_matches_plain(void) {
  enum { N = 37, IN = 128, OUT = 192 };
  if (!int8_packing_available(IN, OUT)) { printf("#   no packed int8 products on this CPU: nothing to compare\n"); return; }
  static float x[N * IN], w[OUT * IN], bias[OUT], y0[N * OUT], y1[N * OUT], dy[N * OUT], dx0[N * IN], dx1[N * IN];
  static float r0[IN], r1[IN];
  static int8_t q0[OUT * IN], q1[OUT * IN];
  float s0[OUT], s1[OUT];
  fill(x, N * IN, -1, 1); fill(w, OUT * IN, -0.05f, 0.05f); fill(bias, OUT, -0.1f, 0.1f); fill(dy, N * OUT, -1, 1);
  x[5 * IN + 17] = 8.0f;   /* an outlier feature for threshold 6 */
  linear plain = {.in = IN, .out = OUT, .kind = LINEAR_INT8, .q = q0, .scale = s0, .bias = bias};
  linear packed = {.in = IN, .out = OUT, .kind = LINEAR_INT8, .q = q1, .scale = s1, .bias = bias};
  linear_quantize_weights(&plain, w, 0, OUT);
  linear_quantize_weights(&packed, w, 0, OUT);
  CHECK_OK(linear_prepare(&packed));
  CHECK(packed.packed != NULL);
  CHECK(packed.packed_bytes >= 4 * (IN + OUT));
  CHECK(memcmp(q0, q1, sizeof q0) != 0);   /* the codes moved */
  /* one region for every call: the largest need, fast backward or exact, with outlier columns */
  size_t need = linear_scratch(N, IN, OUT, LINEAR_INT8, true, true, true), exact = linear_scratch(N, IN, OUT, LINEAR_INT8, true, true, false);
  scratch s = test_scratch(need > exact ? need : exact);
  CHECK(linear_scratch(N, IN, OUT, LINEAR_INT8, false, true, true) >= int8_rows_scratch(N, IN, OUT, true));
  /* room for the quantised gradient rows but not one thread's pieces: a clean error */
  scratch short_ws = { s.p, IN * OUT + 64 };
  CHECK_FAIL(linear_backward_input(dx1, dy, &packed, N, true, short_ws), LACOS_ELIMIT, "int8 matmul");
  CHECK_FAIL(linear_forward(y1, x, &packed, N, 0, (scratch){ s.p, 4 * IN + 64 }), LACOS_ELIMIT, "per thread");
  for (int r = 0; r < OUT; r++) {
    linear_weight_row(r0, &plain, r);
    linear_weight_row(r1, &packed, r);
    CHECK(memcmp(r0, r1, sizeof r0) == 0);
  }
  float thresholds[2] = {0, 6.0f};
  for (int t = 0; t < 2; t++) {
    CHECK_OK(linear_forward(y0, x, &plain, N, thresholds[t], s));
    CHECK_OK(linear_forward(y1, x, &packed, N, thresholds[t], s));
    CHECK(memcmp(y0, y1, sizeof y0) == 0);
    CHECK(plain.outliers == t && packed.outliers == t);
  }
  for (int fast = 0; fast < 2; fast++) {
    memset(dx0, 0, sizeof dx0);
    memset(dx1, 0, sizeof dx1);
    CHECK_OK(linear_backward_input(dx0, dy, &plain, N, fast, s));
    CHECK_OK(linear_backward_input(dx1, dy, &packed, N, fast, s));
    CHECK(memcmp(dx0, dx1, sizeof dx0) == 0);
  }
  /* scratch for one thread's pieces only: the products run on one thread, same bits */
  int threads = lacos_threads_get();
  CHECK_OK(lacos_threads_set(1));
  scratch one = { s.p, int8_rows_scratch(N, IN, OUT, true) };
  CHECK_OK(lacos_threads_set(threads));
  memset(dx1, 0, sizeof dx1);
  CHECK_OK(linear_backward_input(dx1, dy, &packed, N, true, one));
  CHECK(memcmp(dx0, dx1, sizeof dx0) == 0);
  one.bytes = int8_rows_scratch(N, IN, OUT, false) / (size_t)lacos_threads_get() + 4 * IN + 64;
  CHECK_OK(linear_forward(y1, x, &packed, N, 0, one));
  CHECK_OK(linear_forward(y0, x, &plain, N, 0, s));
  CHECK(memcmp(y0, y1, sizeof y0) == 0);
  /* a row count of 1 and a NaN row: same as the plain path too */
  x[2 * IN + 3] = NAN;
  CHECK_OK(linear_forward(y0, x, &plain, 3, 0, s));
  CHECK_OK(linear_forward(y1, x, &packed, 3, 0, s));
  CHECK(memcmp(y0, y1, sizeof(float) * 3 * OUT) == 0 && isnan(y1[2 * OUT]));
  CHECK_OK(linear_forward(y1, x, &packed, 1, 0, s));
  CHECK(memcmp(y0, y1, sizeof(float) * OUT) == 0);
  linear_release(&packed);
  CHECK(packed.packed == NULL);
}

/* The packed input gradient (int8_rows.c) transposes the weights whole
   when the copy is small (320 x 4096: 1.25 MiB) and by blocks of dx's
   columns and chunks of rows otherwise (2112 x 4096: 8.25 MiB, 33 blocks
   of 64 columns; 1100 rows: a chunk of 1024 in four products of 256, then
   64 and a padded 16 for the last 12). Both, over a dx that already holds
   values (the gradient adds to it), give the bits of the plain int8 GEMM;
   so does scratch for one thread only. */
static void packed_int8_backward_matches_plain(int N, int IN, int OUT) {
  if (!int8_packing_available(IN, OUT)) { printf("#   no packed int8 products on this CPU: nothing to compare\n"); return; }
  size_t wn = (size_t)OUT * IN, yn = (size_t)N * OUT, xn = (size_t)N * IN;
  float *w = malloc(sizeof(float) * wn), *dy = malloc(sizeof(float) * yn), *s0 = malloc(sizeof(float) * OUT);
  float *s1 = malloc(sizeof(float) * OUT), *dx0 = malloc(sizeof(float) * xn), *dx1 = malloc(sizeof(float) * xn);
  float *dx_in = malloc(sizeof(float) * xn);
  int8_t *q0 = malloc(wn), *q1 = malloc(wn);
  fill(w, (int64_t)wn, -0.05f, 0.05f); fill(dy, (int64_t)yn, -1, 1); fill(dx_in, (int64_t)xn, -1, 1);
  dy[7 * (size_t)OUT + 3] = 40.0f;   /* a row with one large gradient: its other codes small */
  linear plain = {.in = IN, .out = OUT, .kind = LINEAR_INT8, .q = q0, .scale = s0};
  linear packed = {.in = IN, .out = OUT, .kind = LINEAR_INT8, .q = q1, .scale = s1};
  linear_quantize_weights(&plain, w, 0, OUT);
  linear_quantize_weights(&packed, w, 0, OUT);
  CHECK_OK(linear_prepare(&packed));
  CHECK(packed.packed != NULL);
  scratch s = test_scratch(linear_scratch(N, IN, OUT, LINEAR_INT8, false, true, true));
  memcpy(dx0, dx_in, sizeof(float) * xn);
  memcpy(dx1, dx_in, sizeof(float) * xn);
  CHECK_OK(linear_backward_input(dx0, dy, &plain, N, true, s));
  CHECK_OK(linear_backward_input(dx1, dy, &packed, N, true, s));
  CHECK(memcmp(dx0, dx1, sizeof(float) * xn) == 0);
  int threads = lacos_threads_get();
  CHECK_OK(lacos_threads_set(1));
  scratch one = { s.p, int8_rows_scratch(N, IN, OUT, true) };
  CHECK_OK(lacos_threads_set(threads));
  memcpy(dx1, dx_in, sizeof(float) * xn);
  CHECK_OK(linear_backward_input(dx1, dy, &packed, N, true, one));
  CHECK(memcmp(dx0, dx1, sizeof(float) * xn) == 0);
  linear_release(&packed);
  free(w); free(dy); free(s0); free(s1); free(dx0); free(dx1); free(dx_in); free(q0); free(q1);
}
static void packed_int8_backward_whole_matches_plain(void) { packed_int8_backward_matches_plain(1100, 320, 4096); }
static void packed_int8_backward_blocks_match_plain(void) { packed_int8_backward_matches_plain(1100, 2112, 4096); }

/* linear_forward_fused = linear_forward, then gelu_forward (pre keeping the
   values before it) and add_inplace of the residual: the same bits, for
   f32 weights, plain int8 codes and packed ones (whose int8_rows.c applies
   the epilogue per row), with and without outlier columns, over more rows
   than one thread's pieces hold. */
static void fused_epilogue_matches_separate(void) {
  enum { N = 150, IN = 128, OUT = 192 };
  static float x[N * IN], w[OUT * IN], bias[OUT], res[N * OUT], y0[N * OUT], y1[N * OUT], p0[N * OUT], p1[N * OUT];
  static int8_t q0[OUT * IN], q1[OUT * IN];
  float s0[OUT], s1[OUT];
  fill(x, N * IN, -1, 1); fill(w, OUT * IN, -0.05f, 0.05f); fill(bias, OUT, -0.1f, 0.1f); fill(res, N * OUT, -1, 1);
  x[40 * IN + 9] = 8.0f;   /* an outlier feature for threshold 6 */
  linear f32 = {.in = IN, .out = OUT, .kind = LINEAR_F32, .w = w, .bias = bias};
  linear plain = {.in = IN, .out = OUT, .kind = LINEAR_INT8, .q = q0, .scale = s0, .bias = bias};
  linear packed = {.in = IN, .out = OUT, .kind = LINEAR_INT8, .q = q1, .scale = s1, .bias = bias};
  linear_quantize_weights(&plain, w, 0, OUT);
  linear_quantize_weights(&packed, w, 0, OUT);
  CHECK_OK(linear_prepare(&packed));
  scratch s = test_scratch(linear_scratch(N, IN, OUT, LINEAR_INT8, true, false, false));
  linear *lins[3] = {&f32, &plain, &packed};
  float thresholds[2] = {0, 6.0f};
  int kinds[2] = {GELU_TANH, GELU_ERF};
  for (int li = 0; li < 3; li++)
    for (int t = 0; t < 2; t++)
      for (int g = 0; g < 2; g++) {
        linear *l = lins[li];
        /* GELU, keeping pre */
        CHECK_OK(linear_forward(p0, x, l, N, thresholds[t], s));
        CHECK_OK(gelu_forward(y0, p0, N * OUT, kinds[g]));
        CHECK_OK(linear_forward_fused(y1, x, l, N, thresholds[t], &(linear_epilogue){ .gelu = kinds[g], .pre = p1 }, s));
        CHECK(memcmp(y0, y1, sizeof y0) == 0 && memcmp(p0, p1, sizeof p0) == 0);
        /* GELU in place */
        CHECK_OK(linear_forward_fused(y1, x, l, N, thresholds[t], &(linear_epilogue){ .gelu = kinds[g] }, s));
        CHECK(memcmp(y0, y1, sizeof y0) == 0);
        /* the residual */
        CHECK_OK(linear_forward(y0, x, l, N, thresholds[t], s));
        CHECK_OK(add_inplace(y0, res, N * OUT));
        CHECK_OK(linear_forward_fused(y1, x, l, N, thresholds[t], &(linear_epilogue){ .gelu = -1, .residual = res }, s));
        CHECK(memcmp(y0, y1, sizeof y0) == 0);
        CHECK(l->outliers == (l->kind == LINEAR_INT8 ? t : 0));
      }
  CHECK_FAIL(linear_forward_fused(y1, x, &packed, N, 0, &(linear_epilogue){ .gelu = GELU_TANH, .pre = y1 }, s), LACOS_EINVAL,
             "pre is the output");
  linear_release(&packed);
}

/* The LayerNorm of the epilogue = linear_forward, add_inplace, then
   layernorm_forward, to the bit: into its own buffer (with mean and rstd),
   in place over the output, and over the linear's own input (what an
   inference pass does, its LayerNorm reusing the dense's input buffer), for
   f32 weights, plain int8 codes and packed ones, with and without outlier
   columns, over more rows than one thread's pieces hold. */
static void fused_layernorm_matches_separate(void) {
  enum { N = 150, C = 128 };
  static float x[N * C], xin[N * C], w[C * C], bias[C], res[N * C], y0[N * C], y1[N * C], l0[N * C], l1[N * C];
  static int8_t q0[C * C], q1[C * C];
  float s0[C], s1[C], lw[C], lb[C], m0[N], m1[N], r0[N], r1[N];
  fill(x, N * C, -1, 1); fill(w, C * C, -0.05f, 0.05f); fill(bias, C, -0.1f, 0.1f); fill(res, N * C, -1, 1);
  fill(lw, C, 0.5f, 1.5f); fill(lb, C, -0.2f, 0.2f);
  x[40 * C + 9] = 8.0f;   /* an outlier feature for threshold 6 */
  linear f32 = {.in = C, .out = C, .kind = LINEAR_F32, .w = w, .bias = bias};
  linear plain = {.in = C, .out = C, .kind = LINEAR_INT8, .q = q0, .scale = s0, .bias = bias};
  linear packed = {.in = C, .out = C, .kind = LINEAR_INT8, .q = q1, .scale = s1, .bias = bias};
  linear_quantize_weights(&plain, w, 0, C);
  linear_quantize_weights(&packed, w, 0, C);
  CHECK_OK(linear_prepare(&packed));
  scratch s = test_scratch(linear_scratch(N, C, C, LINEAR_INT8, true, false, false));
  linear *lins[3] = {&f32, &plain, &packed};
  float thresholds[2] = {0, 6.0f}, eps = 1e-5f;
  for (int li = 0; li < 3; li++)
    for (int t = 0; t < 2; t++) {
      linear *l = lins[li];
      CHECK_OK(linear_forward(y0, x, l, N, thresholds[t], s));
      CHECK_OK(add_inplace(y0, res, N * C));
      CHECK_OK(layernorm_forward(l0, m0, r0, y0, lw, lb, N, C, eps));
      linear_epilogue ep = {.gelu = -1, .residual = res, .ln = l1, .ln_mean = m1, .ln_rstd = r1, .ln_w = lw,
                            .ln_b = lb, .ln_eps = eps};
      memset(l1, 0, sizeof l1);
      CHECK_OK(linear_forward_fused(y1, x, l, N, thresholds[t], &ep, s));
      CHECK(memcmp(y0, y1, sizeof y0) == 0 && memcmp(l0, l1, sizeof l0) == 0);
      CHECK(memcmp(m0, m1, sizeof m0) == 0 && memcmp(r0, r1, sizeof r0) == 0);
      /* in place over the output, no statistics kept */
      ep.ln = y1; ep.ln_mean = ep.ln_rstd = NULL;
      CHECK_OK(linear_forward_fused(y1, x, l, N, thresholds[t], &ep, s));
      CHECK(memcmp(l0, y1, sizeof l0) == 0);
      /* over the input */
      memcpy(xin, x, sizeof x);
      ep.ln = xin;
      CHECK_OK(linear_forward_fused(y1, xin, l, N, thresholds[t], &ep, s));
      CHECK(memcmp(y0, y1, sizeof y0) == 0 && memcmp(l0, xin, sizeof l0) == 0);
    }
  linear_release(&packed);
}

static void quantize_half_to_even(void) {
  float x[4] = {0.5f, 1.5f, 2.5f, -127.0f};   /* absmax 127: codes are the values themselves */
  int8_t q[4];
  float am;
  quantize_rows(q, &am, x, 1, 4, 0, NULL, NULL, (scratch){0});
  CHECK(am == 127.0f);
  CHECK(q[0] == 0 && q[1] == 2 && q[2] == 2 && q[3] == -127);
  float z[3] = {0, 0, 0};
  quantize_rows(q, &am, z, 1, 3, 0, NULL, NULL, (scratch){0});
  CHECK(q[0] == 0 && am == 0);
}

int main(void) {
  lacos_threads_set(2);
  RUN(layernorm_gradcheck);
  RUN(gelu_gradcheck);
  RUN(attention_gradcheck);
  RUN(attention_padding_invariance);
  RUN(attention_matches_reference);
  RUN(alibi_slopes_match);
  RUN(pooling_modes);
  RUN(int8_linear_matches_reference);
  RUN(packed_int8_linear_matches_plain);
  RUN(packed_int8_backward_whole_matches_plain);
  RUN(packed_int8_backward_blocks_match_plain);
  RUN(fused_epilogue_matches_separate);
  RUN(fused_layernorm_matches_separate);
  RUN(quantize_half_to_even);
  TEST_EXIT();
}
