/* sts.c: the STS evaluation metrics: row-wise cosine similarity of two
   embedding matrices, average ranks, Pearson and Spearman correlation.

   Matches scipy.stats (scipy/scipy: scipy/stats/_stats_py.py): rankdata with
   method "average" (tied values share the mean of the ranks they span),
   spearmanr = Pearson correlation of those ranks (no 1 - 6 sum d^2 shortcut,
   which is wrong with ties), pearsonr on mean-centred values with the result
   clipped to [-1, 1]. Everything is computed in double. Where scipy returns
   NaN with a warning (a constant input) these return NaN; a non-finite input
   also gives NaN (scipy's nan_policy "propagate"). The cosine follows
   sentence-transformers' EmbeddingSimilarityEvaluator (pairwise cosine of
   normalised rows; a zero row scores 0). */
#include "engine.h"
#include <math.h>

typedef struct keyed { double v; int64_t i; } keyed;

static int cmp_keyed(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  if (x->v < y->v) return -1;
  if (x->v > y->v) return 1;
  return (x->i > y->i) - (x->i < y->i);
}

int lacos_sts_rank(double *ranks, const double *x, int64_t n) {
  if (!ranks || !x) return fail(LACOS_EINVAL, "sts_rank: NULL argument");
  if (n < 0) return fail(LACOS_EINVAL, "sts_rank: negative length");
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return fail(LACOS_ENUMERIC, "sts_rank: value %lld is not finite (%g)", (long long)i, x[i]);
  if (n == 0) return LACOS_OK;
  keyed *k;
  TRY(mem_alloc(&k, (size_t)n * sizeof *k, "ranks"));
  for (int64_t i = 0; i < n; i++) { k[i].v = x[i]; k[i].i = i; }
  qsort(k, (size_t)n, sizeof *k, cmp_keyed);
  for (int64_t a = 0; a < n;) {
    int64_t b = a + 1;
    while (b < n && k[b].v == k[a].v) b++;
    /* positions a..b-1 hold ranks a+1..b: their mean */
    double r = 0.5 * ((double)(a + 1) + (double)b);
    for (int64_t j = a; j < b; j++) ranks[k[j].i] = r;
    a = b;
  }
  mem_free(k);
  return LACOS_OK;
}

static bool all_finite(const double *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) if (!isfinite(x[i])) return false;
  return true;
}

static bool constant(const double *x, int64_t n) {
  for (int64_t i = 1; i < n; i++) if (x[i] != x[0]) return false;
  return true;
}

/* Pearson of finite, non-constant inputs, the way scipy computes it: centre,
   scale by the largest magnitude (no overflow), divide by the norms. */
static double pearson_core(const double *x, const double *y, int64_t n) {
  /* two points are exactly (anti)correlated; scipy returns the sign product */
  if (n == 2) return (x[1] > x[0] ? 1.0 : -1.0) * (y[1] > y[0] ? 1.0 : -1.0);
  double sx = 0, sy = 0;
  for (int64_t i = 0; i < n; i++) { sx += x[i]; sy += y[i]; }
  double mx = sx / (double)n, my = sy / (double)n;
  double ax = 0, ay = 0;
  for (int64_t i = 0; i < n; i++) {
    double dx = fabs(x[i] - mx), dy = fabs(y[i] - my);
    if (dx > ax) ax = dx;
    if (dy > ay) ay = dy;
  }
  if (ax == 0 || ay == 0) return NAN;
  double xx = 0, yy = 0, xy = 0;
  for (int64_t i = 0; i < n; i++) {
    double dx = (x[i] - mx) / ax, dy = (y[i] - my) / ay;
    xx += dx * dx;
    yy += dy * dy;
    xy += dx * dy;
  }
  double r = xy / (sqrt(xx) * sqrt(yy));
  if (r > 1) r = 1;
  if (r < -1) r = -1;
  return r;
}

static int check_pair(const char *what, const double *x, const double *y, int64_t n) {
  if (!x || !y) return fail(LACOS_EINVAL, "%s: NULL argument", what);
  if (n < 2) return fail(LACOS_EINVAL, "%s: needs at least 2 pairs, got %lld", what, (long long)n);
  return LACOS_OK;
}

int lacos_sts_pearson(double *r, const double *x, const double *y, int64_t n) {
  if (!r) return fail(LACOS_EINVAL, "sts_pearson: NULL result");
  TRY(check_pair("sts_pearson", x, y, n));
  if (!all_finite(x, n) || !all_finite(y, n) || constant(x, n) || constant(y, n)) { *r = NAN; return LACOS_OK; }
  *r = pearson_core(x, y, n);
  return LACOS_OK;
}

int lacos_sts_spearman(double *rho, const double *x, const double *y, int64_t n) {
  if (!rho) return fail(LACOS_EINVAL, "sts_spearman: NULL result");
  TRY(check_pair("sts_spearman", x, y, n));
  if (!all_finite(x, n) || !all_finite(y, n) || constant(x, n) || constant(y, n)) { *rho = NAN; return LACOS_OK; }
  size_t bytes = (size_t)n * sizeof(double);
  double *rx = NULL, *ry = NULL;
  int st = mem_alloc(&rx, bytes, "ranks");
  if (!st) st = mem_alloc(&ry, bytes, "ranks");
  if (!st) st = lacos_sts_rank(rx, x, n);
  if (!st) st = lacos_sts_rank(ry, y, n);
  if (!st) *rho = pearson_core(rx, ry, n);
  mem_free(rx);
  mem_free(ry);
  return st;
}

int lacos_sts_cosine(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b) {
  if (!out || !a || !b) return fail(LACOS_EINVAL, "sts_cosine: NULL argument");
  *out = NULL;
  if (a->ndim != 2 || b->ndim != 2) return fail(LACOS_EINVAL, "sts_cosine: expected two (n, d) tensors, got %d-d and %d-d", a->ndim, b->ndim);
  if (a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1])
    return fail(LACOS_EINVAL, "sts_cosine: shapes differ: (%lld, %lld) and (%lld, %lld)", (long long)a->shape[0],
                (long long)a->shape[1], (long long)b->shape[0], (long long)b->shape[1]);
  if (a->device != LACOS_CPU || b->device != LACOS_CPU) return fail(LACOS_EUNSUPPORTED, "sts_cosine: tensors must be on the CPU");
  if ((a->flags | b->flags) & LACOS_TENSOR_RELEASED) return fail(LACOS_ESTATE, "sts_cosine: tensor was freed");
  int dts[2] = { a->dtype, b->dtype };
  for (int k = 0; k < 2; k++)
    if (dts[k] != LACOS_F32 && dts[k] != LACOS_F64 && dts[k] != LACOS_F16 && dts[k] != LACOS_BF16)
      return fail(LACOS_EINVAL, "sts_cosine: embeddings must be a float dtype, got %s", lacos_dtype_name(dts[k]));
  int64_t n = a->shape[0], d = a->shape[1];
  TRY(lacos_tensor_new(out, LACOS_F64, LACOS_CPU, 1, &n));
  double *o = (double *)(*out)->data;
  for (int64_t i = 0; i < n; i++) {
    double aa = 0, bb = 0, ab = 0;
    for (int64_t j = 0; j < d; j++) {
      double x = dtype_load(a->data, i * a->stride[0] + j * a->stride[1], a->dtype);
      double y = dtype_load(b->data, i * b->stride[0] + j * b->stride[1], b->dtype);
      aa += x * x;
      bb += y * y;
      ab += x * y;
    }
    double na = sqrt(aa), nb = sqrt(bb);
    /* torch.nn.functional.normalize divides by max(norm, 1e-12) */
    o[i] = ab / ((na > 1e-12 ? na : 1e-12) * (nb > 1e-12 ? nb : 1e-12));
  }
  return LACOS_OK;
}
