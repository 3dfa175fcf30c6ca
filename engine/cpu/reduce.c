/* reduce.c: sums, means, extrema, norms and variances over one dimension or
   the whole tensor. Accumulation is in double and each output element is
   reduced by one thread in index order, so results are deterministic. */
#include "../engine.h"
#include <math.h>

int lacos_tensor_reduce(lacos_tensor **out, const lacos_tensor *t, int op, int dim, int keepdim) {
  *out = NULL;
  if (op < LACOS_SUM || op > LACOS_STD) return fail(LACOS_EINVAL, "unknown reduction %d", op);
  TRY(tensor_on_cpu(t, "reduction"));
  lacos_tensor *c;
  TRY(lacos_tensor_contiguous(&c, t));
  int64_t outer, len, inner;
  int64_t oshape[4];
  int ondim;
  if (dim == -1 && !keepdim) {
    outer = 1; inner = 1; len = lacos_tensor_numel(c); ondim = 0;
  } else {
    if (dim < 0) dim += t->ndim;
    if (dim < 0 || dim >= t->ndim) { lacos_tensor_free(c); return fail(LACOS_EINVAL, "reduce: dimension out of range"); }
    outer = 1; inner = 1;
    for (int d = 0; d < dim; d++) outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) inner *= t->shape[d];
    len = t->shape[dim];
    ondim = 0;
    for (int d = 0; d < t->ndim; d++) {
      if (d == dim) { if (keepdim) oshape[ondim++] = 1; }
      else oshape[ondim++] = t->shape[d];
    }
  }
  if (len == 0 && op != LACOS_SUM && op != LACOS_NORM2) {
    lacos_tensor_free(c);
    return fail(LACOS_EINVAL, "reduce: cannot take this reduction of an empty dimension");
  }
  bool is_index = op == LACOS_ARGMAX || op == LACOS_ARGMIN;
  int rd = is_index ? LACOS_I64 : (t->dtype == LACOS_F64 ? LACOS_F64 : LACOS_F32);
  int s = lacos_tensor_empty(out, rd, LACOS_CPU, ondim, oshape);
  if (s) { lacos_tensor_free(c); return s; }
  const void *x = c->data;
  int xd = c->dtype;
  int64_t total = outer * inner;
  #pragma omp parallel for if (total * len > 65536) schedule(static)
  for (int64_t oi = 0; oi < total; oi++) {
    int64_t o = oi / inner, in = oi % inner, base = o * len * inner + in;
    double acc = 0, best = 0, mean = 0;
    int64_t besti = 0;
    if (op == LACOS_VAR || op == LACOS_STD) {
      for (int64_t k = 0; k < len; k++) mean += dtype_load(x, base + k * inner, xd);
      mean /= (double)len;
    }
    for (int64_t k = 0; k < len; k++) {
      double v = dtype_load(x, base + k * inner, xd);
      switch (op) {
      case LACOS_SUM: case LACOS_MEAN: acc += v; break;
      case LACOS_NORM2: acc += v * v; break;
      case LACOS_VAR: case LACOS_STD: acc += (v - mean) * (v - mean); break;
      case LACOS_RMAX: case LACOS_ARGMAX:
        if (k == 0 || v > best || isnan(v)) { if (!(k > 0 && isnan(best))) { best = v; besti = k; } } break;
      case LACOS_RMIN: case LACOS_ARGMIN:
        if (k == 0 || v < best || isnan(v)) { if (!(k > 0 && isnan(best))) { best = v; besti = k; } } break;
      }
    }
    double r;
    switch (op) {
    case LACOS_SUM: r = acc; break;
    case LACOS_MEAN: r = acc / (double)len; break;
    case LACOS_NORM2: r = sqrt(acc); break;
    case LACOS_VAR: r = len > 1 ? acc / (double)(len - 1) : NAN; break;
    case LACOS_STD: r = len > 1 ? sqrt(acc / (double)(len - 1)) : NAN; break;
    case LACOS_ARGMAX: case LACOS_ARGMIN: r = (double)besti; break;
    default: r = best;
    }
    dtype_store((*out)->data, oi, rd, r);
  }
  lacos_tensor_free(c);
  return LACOS_OK;
}
