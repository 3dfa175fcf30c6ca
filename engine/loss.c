/* loss.c: the contrastive and classification objectives of
   sentence-transformers (losses/MultipleNegativesRankingLoss.py,
   MultipleNegativesSymmetricRankingLoss.py, CoSENTLoss.py, SoftmaxLoss.py),
   each with its gradient with respect to the embeddings. The arithmetic is
   in double: these matrices are small (batch × batch) and the result feeds
   a whole backward pass. cos_sim normalises with F.normalize (eps 1e-12).
   MNRL's similarity matrix and its gradient are three double GEMMs (BLAS):
   with a global batch gathered from many ranks (every rank computes the
   whole loss) they are B·M·d products each, 0.8 G at B = 256, d = 4096. */
#include "engine.h"
#include <math.h>
#include <cblas.h>

static int check_emb(const lacos_tensor *t, const char *name) {
  TRY(tensor_check(t, name, LACOS_F32, 2));
  if (!lacos_tensor_is_contiguous(t)) return fail(LACOS_EINVAL, "%s must be contiguous", name);
  return LACOS_OK;
}

static int check_grad(lacos_tensor *g, const lacos_tensor *like, const char *name) {
  if (!g) return LACOS_OK;
  TRY(check_emb(g, name));
  for (int d = 0; d < 2; d++)
    if (g->shape[d] != like->shape[d]) return fail(LACOS_EINVAL, "%s has the wrong shape", name);
  return LACOS_OK;
}

/* Row-normalised copy (n,d) in double and the row norms. */
static int normalized(const lacos_tensor *t, double **out, double **norms) {
  int64_t n = t->shape[0], d = t->shape[1];
  double *y;
  TRY(mem_alloc(&y, sizeof(double) * (size_t)(n * d + n), "normalised embeddings"));
  double *nr = y + n * d;
  const float *x = t->data;
  for (int64_t i = 0; i < n; i++) {
    double s = 0;
    for (int64_t k = 0; k < d; k++) s += (double)x[i * d + k] * x[i * d + k];
    nr[i] = sqrt(s);
    double den = nr[i] > 1e-12 ? nr[i] : 1e-12;
    for (int64_t k = 0; k < d; k++) y[i * d + k] = x[i * d + k] / den;
  }
  *norms = nr;
  *out = y;
  return LACOS_OK;
}

/* Through y = x / max(|x|, eps): dx = (dy − y·(y·dy)) / |x|, or dy/eps below eps. */
static void normalize_backward(float *dx, const double *dy, const double *y, const double *norms, int64_t n, int64_t d) {
  for (int64_t i = 0; i < n; i++) {
    const double *yi = y + i * d, *gi = dy + i * d;
    if (norms[i] <= 1e-12) { for (int64_t k = 0; k < d; k++) dx[i * d + k] = (float)(gi[k] / 1e-12); continue; }
    double p = 0;
    for (int64_t k = 0; k < d; k++) p += yi[k] * gi[k];
    for (int64_t k = 0; k < d; k++) dx[i * d + k] = (float)((gi[k] - yi[k] * p) / norms[i]);
  }
}

/* Cross-entropy of the rows of S (rows × cols) against target column target(i);
   adds the loss/rows and writes dS = (softmax − onehot)·weight. */
static double ce_rows(const double *S, int64_t rows, int64_t cols, int64_t stride, int64_t col_stride,
                      double *dS, double weight) {
  double total = 0;
  for (int64_t i = 0; i < rows; i++) {
    const double *s = S + i * stride;
    double m = -INFINITY;
    for (int64_t j = 0; j < cols; j++) m = fmax(m, s[j * col_stride]);
    double z = 0;
    for (int64_t j = 0; j < cols; j++) z += exp(s[j * col_stride] - m);
    double lse = m + log(z);
    total += lse - s[i * col_stride];
    for (int64_t j = 0; j < cols; j++)
      dS[i * stride + j * col_stride] += weight * (exp(s[j * col_stride] - lse) - (i == j ? 1.0 : 0.0));
  }
  return total;
}

int lacos_loss_mnrl(const lacos_tensor *A, const lacos_tensor *Cand, double scale, int symmetric,
                    double *loss, lacos_tensor *dA, lacos_tensor *dC) {
  TRY(check_emb(A, "anchors"));
  TRY(check_emb(Cand, "candidates"));
  int64_t B = A->shape[0], M = Cand->shape[0], d = A->shape[1];
  if (Cand->shape[1] != d) return fail(LACOS_EINVAL, "anchors and candidates differ in dimension (%lld vs %lld)", (long long)d, (long long)Cand->shape[1]);
  if (B < 1 || M < B || M % B) return fail(LACOS_EINVAL, "MNRL needs B anchors and B·(1+k) candidates, got %lld and %lld", (long long)B, (long long)M);
  if (!(scale > 0) || !isfinite(scale)) return fail(LACOS_EINVAL, "MNRL scale must be positive, got %g", scale);
  TRY(check_grad(dA, A, "anchor gradient"));
  TRY(check_grad(dC, Cand, "candidate gradient"));
  double *na, *nc, *an = NULL, *cn = NULL, *S = NULL, *g = NULL;
  int st = normalized(A, &an, &na);
  if (!st) st = normalized(Cand, &cn, &nc);
  if (!st) st = mem_calloc(&S, (size_t)(2 * B * M), sizeof(double), "MNRL scores");
  if (!st) st = mem_calloc(&g, (size_t)((B + M) * d), sizeof(double), "MNRL gradients");
  if (st) { mem_free(an); mem_free(cn); mem_free(S); return st; }
  double *dS = S + B * M;
  /* S (B,M) = scale · an (B,d) · cnᵀ */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)M, (int)d, scale, an, (int)d, cn, (int)d, 0.0, S, (int)M);
  /* forward direction: each anchor against every candidate */
  double w = symmetric ? 0.5 / (double)B : 1.0 / (double)B;
  double L = ce_rows(S, B, M, M, 1, dS, w) * w;
  if (symmetric) {
    /* positive → anchor: column i of the first B columns against row i */
    L += ce_rows(S, B, B, 1, M, dS, w) * w;
  }
  *loss = L;
  /* dS → normalised embeddings → raw embeddings */
  double *ga = g, *gc = g + B * d;
  /* ga (B,d) = scale · dS · cn;  gc (M,d) = scale · dSᵀ · an */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)d, (int)M, scale, dS, (int)M, cn, (int)d, 0.0, ga, (int)d);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)d, (int)B, scale, dS, (int)M, an, (int)d, 0.0, gc, (int)d);
  if (dA) normalize_backward(dA->data, ga, an, na, B, d);
  if (dC) normalize_backward(dC->data, gc, cn, nc, M, d);
  mem_free(g); mem_free(an); mem_free(cn); mem_free(S);
  return isfinite(L) ? LACOS_OK : fail(LACOS_ENUMERIC, "MNRL loss is not finite");
}

int lacos_loss_cosent(const lacos_tensor *U, const lacos_tensor *V, const lacos_tensor *labels, double scale,
                      double *loss, lacos_tensor *dU, lacos_tensor *dV) {
  TRY(check_emb(U, "u"));
  TRY(check_emb(V, "v"));
  int64_t n = U->shape[0], d = U->shape[1];
  if (V->shape[0] != n || V->shape[1] != d) return fail(LACOS_EINVAL, "u and v must have the same shape");
  if (!labels || lacos_tensor_numel(labels) != n) return fail(LACOS_EINVAL, "CoSENT needs one label per pair");
  if (!(scale > 0) || !isfinite(scale)) return fail(LACOS_EINVAL, "CoSENT scale must be positive, got %g", scale);
  TRY(check_grad(dU, U, "u gradient"));
  TRY(check_grad(dV, V, "v gradient"));
  double *lab = NULL, *nu_, *nv_, *un = NULL, *vn = NULL, *cs = NULL, *g = NULL;
  int st = mem_alloc(&lab, sizeof(double) * (size_t)n, "CoSENT labels");
  if (!st) st = lacos_tensor_read_f64(labels, lab, n);
  if (!st) st = normalized(U, &un, &nu_);
  if (!st) st = normalized(V, &vn, &nv_);
  if (!st) st = mem_calloc(&cs, (size_t)(2 * n), sizeof(double), "CoSENT scores");
  if (!st) st = mem_calloc(&g, (size_t)(2 * n * d), sizeof(double), "CoSENT gradients");
  if (st) { mem_free(lab); mem_free(un); mem_free(vn); mem_free(cs); return st; }
  double *dcs = cs + n;
  for (int64_t i = 0; i < n; i++) {
    double s = 0;
    for (int64_t k = 0; k < d; k++) s += un[i * d + k] * vn[i * d + k];
    cs[i] = scale * s;
  }
  /* logsumexp over {0} ∪ {s_i − s_j : label_i < label_j} */
  double m = 0;
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++)
      if (lab[i] < lab[j]) m = fmax(m, cs[i] - cs[j]);
  double z = exp(-m);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++)
      if (lab[i] < lab[j]) z += exp(cs[i] - cs[j] - m);
  double lse = m + log(z);
  *loss = lse;
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++)
      if (lab[i] < lab[j]) {
        double p = exp(cs[i] - cs[j] - lse);
        dcs[i] += p;
        dcs[j] -= p;
      }
  double *gu = g, *gv = g + n * d;
  for (int64_t i = 0; i < n; i++)
    for (int64_t k = 0; k < d; k++) {
      gu[i * d + k] = scale * dcs[i] * vn[i * d + k];
      gv[i * d + k] = scale * dcs[i] * un[i * d + k];
    }
  if (dU) normalize_backward(dU->data, gu, un, nu_, n, d);
  if (dV) normalize_backward(dV->data, gv, vn, nv_, n, d);
  mem_free(g); mem_free(lab); mem_free(un); mem_free(vn); mem_free(cs);
  return isfinite(lse) ? LACOS_OK : fail(LACOS_ENUMERIC, "CoSENT loss is not finite");
}

int lacos_loss_softmax(const lacos_tensor *U, const lacos_tensor *V, const lacos_tensor *labels,
                       const lacos_tensor *W, const lacos_tensor *bias, double *loss,
                       lacos_tensor *dU, lacos_tensor *dV, lacos_tensor *dW, lacos_tensor *db) {
  TRY(check_emb(U, "u"));
  TRY(check_emb(V, "v"));
  TRY(check_emb(W, "classifier weight"));
  int64_t n = U->shape[0], d = U->shape[1], K = W->shape[0];
  if (V->shape[0] != n || V->shape[1] != d) return fail(LACOS_EINVAL, "u and v must have the same shape");
  if (W->shape[1] != 3 * d) return fail(LACOS_EINVAL, "classifier weight must be (labels, 3·%lld)", (long long)d);
  if (!bias || lacos_tensor_numel(bias) != K || bias->dtype != LACOS_F32) return fail(LACOS_EINVAL, "classifier bias must be f32 with %lld entries", (long long)K);
  TRY(tensor_check(labels, "labels", LACOS_I32, 1));
  if (labels->shape[0] != n) return fail(LACOS_EINVAL, "need one label per pair");
  TRY(check_grad(dU, U, "u gradient"));
  TRY(check_grad(dV, V, "v gradient"));
  TRY(check_grad(dW, W, "classifier weight gradient"));
  const float *u = U->data, *v = V->data, *w = W->data, *bb = bias->data;
  const int32_t *lab = labels->data;
  for (int64_t i = 0; i < n; i++)
    if (lab[i] < 0 || lab[i] >= K) return fail(LACOS_EINVAL, "label %d of pair %lld is outside 0..%lld", lab[i], (long long)i, (long long)K - 1);
  double *feat;
  TRY(mem_alloc(&feat, sizeof(double) * (size_t)(3 * d + 2 * K + 3 * d), "softmax features"));
  double *logit = feat + 3 * d, *dl = logit + K, *df = dl + K;
  if (dU) memset(dU->data, 0, sizeof(float) * (size_t)(n * d));
  if (dV) memset(dV->data, 0, sizeof(float) * (size_t)(n * d));
  if (dW) memset(dW->data, 0, sizeof(float) * (size_t)(K * 3 * d));
  if (db) memset(db->data, 0, sizeof(float) * (size_t)K);
  double L = 0;
  for (int64_t i = 0; i < n; i++) {
    for (int64_t k = 0; k < d; k++) {
      feat[k] = u[i * d + k];
      feat[d + k] = v[i * d + k];
      feat[2 * d + k] = fabs((double)u[i * d + k] - v[i * d + k]);
    }
    double m = -INFINITY;
    for (int64_t c = 0; c < K; c++) {
      double s = bb[c];
      for (int64_t k = 0; k < 3 * d; k++) s += w[c * 3 * d + k] * feat[k];
      logit[c] = s;
      m = fmax(m, s);
    }
    double z = 0;
    for (int64_t c = 0; c < K; c++) z += exp(logit[c] - m);
    double lse = m + log(z);
    L += lse - logit[lab[i]];
    for (int64_t c = 0; c < K; c++) dl[c] = (exp(logit[c] - lse) - (c == lab[i])) / (double)n;
    for (int64_t k = 0; k < 3 * d; k++) {
      double s = 0;
      for (int64_t c = 0; c < K; c++) s += dl[c] * w[c * 3 * d + k];
      df[k] = s;
    }
    if (dW) for (int64_t c = 0; c < K; c++) for (int64_t k = 0; k < 3 * d; k++) ((float *)dW->data)[c * 3 * d + k] += (float)(dl[c] * feat[k]);
    if (db) for (int64_t c = 0; c < K; c++) ((float *)db->data)[c] += (float)dl[c];
    for (int64_t k = 0; k < d; k++) {
      double diff = (double)u[i * d + k] - v[i * d + k];
      double sg = diff > 0 ? 1.0 : diff < 0 ? -1.0 : 0.0;   /* torch.abs' subgradient at 0 is 0 */
      if (dU) ((float *)dU->data)[i * d + k] = (float)(df[k] + sg * df[2 * d + k]);
      if (dV) ((float *)dV->data)[i * d + k] = (float)(df[d + k] - sg * df[2 * d + k]);
    }
  }
  mem_free(feat);
  *loss = L / (double)n;
  return isfinite(*loss) ? LACOS_OK : fail(LACOS_ENUMERIC, "softmax loss is not finite");
}
