/* test_loss.c: MNRL (with hard negatives, symmetric), CoSENT and the
   softmax classifier — values against direct formulas and gradients against
   central finite differences; bad inputs. */
#include "test.h"

static lacos_tensor *randt(int64_t n, int64_t d, double seed) {
  lacos_tensor *t;
  int64_t sh[2] = {n, d};
  lacos_tensor_rand(&t, LACOS_F32, 2, sh, seed, 1, 0, 1);
  return t;
}
static lacos_tensor *like(const lacos_tensor *t) {
  lacos_tensor *g;
  lacos_tensor_new(&g, LACOS_F32, LACOS_CPU, 2, t->shape);
  return g;
}

typedef double (*loss_fn)(void *ctx);

/* Checks every entry of x against dx by central differences of f. */
static double fd(lacos_tensor *x, const lacos_tensor *dx, loss_fn f, void *ctx) {
  double worst = 0;
  float *p = x->data;
  const float *g = dx->data;
  for (int64_t i = 0; i < lacos_tensor_numel(x); i++) {
    float keep = p[i], h = 1e-3f;
    p[i] = keep + h; double lp = f(ctx);
    p[i] = keep - h; double lm = f(ctx);
    p[i] = keep;
    double num = (lp - lm) / (2.0 * h);
    worst = fmax(worst, fabs(num - g[i]) / (0.01 * fmax(fabs(num), fabs(g[i])) + 1e-4));
  }
  return worst;
}

typedef struct { lacos_tensor *a, *c, *u, *v, *lab, *W, *b; double scale; int sym; } ctx_t;

static double mnrl_value(void *p) {
  ctx_t *c = p;
  double L = NAN;
  lacos_loss_mnrl(c->a, c->c, c->scale, c->sym, &L, NULL, NULL);
  return L;
}

static void mnrl_matches_formula(void) {
  ctx_t c = {.a = randt(4, 6, 1), .c = randt(8, 6, 2), .scale = 20, .sym = 0};   /* one hard negative each */
  double L;
  lacos_tensor *da = like(c.a), *dc = like(c.c);
  CHECK_OK(lacos_loss_mnrl(c.a, c.c, 20, 0, &L, da, dc));
  /* direct formula */
  const float *a = c.a->data, *cc = c.c->data;
  double want = 0;
  for (int i = 0; i < 4; i++) {
    double s[8], m = -1e300, z = 0;
    for (int j = 0; j < 8; j++) {
      double dotp = 0, na = 0, nc = 0;
      for (int k = 0; k < 6; k++) { dotp += a[i * 6 + k] * cc[j * 6 + k]; na += a[i * 6 + k] * a[i * 6 + k]; nc += cc[j * 6 + k] * cc[j * 6 + k]; }
      s[j] = 20 * dotp / sqrt(na) / sqrt(nc);
      m = fmax(m, s[j]);
    }
    for (int j = 0; j < 8; j++) z += exp(s[j] - m);
    want += m + log(z) - s[i];
  }
  CHECK_NEAR(L, want / 4, 1e-6);
  double ea = fd(c.a, da, mnrl_value, &c), ec = fd(c.c, dc, mnrl_value, &c);
  printf("#   MNRL gradient error %.2f / %.2f of tolerance\n", ea, ec);
  CHECK(ea <= 1 && ec <= 1);
  /* symmetric */
  c.sym = 1;
  CHECK_OK(lacos_loss_mnrl(c.a, c.c, 20, 1, &L, da, dc));
  ea = fd(c.a, da, mnrl_value, &c);
  ec = fd(c.c, dc, mnrl_value, &c);
  printf("#   symmetric MNRL gradient error %.2f / %.2f of tolerance\n", ea, ec);
  CHECK(ea <= 1 && ec <= 1);
  /* identical anchors and positives with no negatives: loss is log(B) minus the margin, and finite */
  CHECK_FAIL(lacos_loss_mnrl(c.a, c.a, -1, 0, &L, NULL, NULL), LACOS_EINVAL, "scale");
  lacos_tensor *odd = randt(5, 6, 3);
  CHECK_FAIL(lacos_loss_mnrl(c.a, odd, 20, 0, &L, NULL, NULL), LACOS_EINVAL, "B·(1+k)");
  lacos_tensor *wrongd = randt(4, 5, 3);
  CHECK_FAIL(lacos_loss_mnrl(c.a, wrongd, 20, 0, &L, NULL, NULL), LACOS_EINVAL, "dimension");
  lacos_tensor_free(odd); lacos_tensor_free(wrongd);
  lacos_tensor_free(c.a); lacos_tensor_free(c.c); lacos_tensor_free(da); lacos_tensor_free(dc);
}

static double cosent_value(void *p) {
  ctx_t *c = p;
  double L = NAN;
  lacos_loss_cosent(c->u, c->v, c->lab, c->scale, &L, NULL, NULL);
  return L;
}

static void cosent_matches_formula(void) {
  ctx_t c = {.u = randt(5, 4, 4), .v = randt(5, 4, 5), .scale = 20};
  float labs[5] = {0.1f, 0.9f, 0.5f, 0.5f, 0.3f};   /* a tie: that pair contributes nothing */
  int64_t n = 5;
  lacos_tensor_from_buffer(&c.lab, LACOS_F32, 1, &n, labs, LACOS_F32);
  double L;
  lacos_tensor *du = like(c.u), *dv = like(c.v);
  CHECK_OK(lacos_loss_cosent(c.u, c.v, c.lab, 20, &L, du, dv));
  double cs[5];
  const float *u = c.u->data, *v = c.v->data;
  for (int i = 0; i < 5; i++) {
    double d = 0, nu = 0, nv = 0;
    for (int k = 0; k < 4; k++) { d += u[i * 4 + k] * v[i * 4 + k]; nu += u[i * 4 + k] * u[i * 4 + k]; nv += v[i * 4 + k] * v[i * 4 + k]; }
    cs[i] = d / sqrt(nu) / sqrt(nv);
  }
  double z = 1;
  for (int i = 0; i < 5; i++) for (int j = 0; j < 5; j++) if (labs[i] < labs[j]) z += exp(20 * (cs[i] - cs[j]));
  CHECK_NEAR(L, log(z), 1e-6);
  double eu = fd(c.u, du, cosent_value, &c), ev = fd(c.v, dv, cosent_value, &c);
  printf("#   CoSENT gradient error %.2f / %.2f of tolerance\n", eu, ev);
  CHECK(eu <= 1 && ev <= 1);
  lacos_tensor_free(c.u); lacos_tensor_free(c.v); lacos_tensor_free(c.lab); lacos_tensor_free(du); lacos_tensor_free(dv);
}

static double softmax_value(void *p) {
  ctx_t *c = p;
  double L = NAN;
  lacos_loss_softmax(c->u, c->v, c->lab, c->W, c->b, &L, NULL, NULL, NULL, NULL);
  return L;
}

static void softmax_classifier(void) {
  ctx_t c = {.u = randt(6, 4, 6), .v = randt(6, 4, 7), .W = randt(3, 12, 8)};
  int32_t labs[6] = {0, 1, 2, 2, 1, 0};
  int64_t n = 6, k = 3;
  lacos_tensor_from_buffer(&c.lab, LACOS_I32, 1, &n, labs, LACOS_I32);
  lacos_tensor_rand(&c.b, LACOS_F32, 1, &k, 9, 1, 0, 0.1);
  lacos_tensor *du = like(c.u), *dv = like(c.v), *dW = like(c.W), *db;
  lacos_tensor_new(&db, LACOS_F32, LACOS_CPU, 1, &k);
  double L;
  CHECK_OK(lacos_loss_softmax(c.u, c.v, c.lab, c.W, c.b, &L, du, dv, dW, db));
  CHECK(L > 0 && isfinite(L));
  double e1 = fd(c.u, du, softmax_value, &c), e2 = fd(c.v, dv, softmax_value, &c), e3 = fd(c.W, dW, softmax_value, &c);
  printf("#   softmax loss gradient error %.2f / %.2f / %.2f of tolerance\n", e1, e2, e3);
  CHECK(e1 <= 1 && e2 <= 1 && e3 <= 1);
  labs[2] = 7;
  lacos_tensor *bad;
  lacos_tensor_from_buffer(&bad, LACOS_I32, 1, &n, labs, LACOS_I32);
  CHECK_FAIL(lacos_loss_softmax(c.u, c.v, bad, c.W, c.b, &L, NULL, NULL, NULL, NULL), LACOS_EINVAL, "label 7");
  lacos_tensor_free(bad);
  lacos_tensor_free(c.u); lacos_tensor_free(c.v); lacos_tensor_free(c.lab); lacos_tensor_free(c.W); lacos_tensor_free(c.b);
  lacos_tensor_free(du); lacos_tensor_free(dv); lacos_tensor_free(dW); lacos_tensor_free(db);
}

int main(void) {
  RUN(mnrl_matches_formula);
  RUN(cosent_matches_formula);
  RUN(softmax_classifier);
  TEST_EXIT();
}
