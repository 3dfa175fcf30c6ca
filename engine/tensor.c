/* tensor.c: the tensor type: dtype traits, creation, strided views over
   reference-counted storage, copies and conversions, and .npy files.

   Shapes always have four slots; slots past ndim hold size 1 and stride 0,
   so every loop in the engine can walk four nested dimensions.

   A tensor on "cuda" has storage in the CUDA backend's memory (backend.h):
   views and copies between devices work, element access and the CPU ops
   fail cleanly until the tensor is brought back with :to("cpu"). */
#include "backend.h"
#include <math.h>
#include <stdatomic.h>

/* ---- storage and headers ---- */

static void storage_release(lacos_storage *s) {
  if (!s) return;
  if (atomic_fetch_sub((_Atomic int *)&s->refcount, 1) != 1) return;
  if (s->release) s->release(s->ctx);
  else s->be->free(s->data, s->bytes);
  mem_free(s);
}

static void storage_retain(lacos_storage *s) { if (s) atomic_fetch_add((_Atomic int *)&s->refcount, 1); }

static int shape_check(int ndim, const int64_t *shape, size_t elem, size_t *bytes) {
  if (ndim < 0 || ndim > 4) return fail(LACOS_EINVAL, "tensors have 0 to 4 dimensions, got %d", ndim);
  size_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0) return fail(LACOS_EINVAL, "dimension %d has negative size %lld", d, (long long)shape[d]);
    if (!size_mul(n, (size_t)shape[d], &n)) return fail(LACOS_ELIMIT, "tensor shape overflows");
  }
  if (!size_mul(n, elem, bytes) || *bytes > ((size_t)1 << 46))
    return fail(LACOS_ELIMIT, "tensor of %zu elements is too large", n);
  return LACOS_OK;
}

static int header_new(lacos_tensor **out) {
  TRY(meta_calloc(out, 1, sizeof **out, "tensor header"));
  for (int d = 0; d < 4; d++) { (*out)->shape[d] = 1; (*out)->stride[d] = 0; }
  return LACOS_OK;
}

/* A header and a storage record, or neither. */
static int header_and_storage(lacos_tensor **t, lacos_storage **s) {
  TRY(header_new(t));
  int st = meta_calloc(s, 1, sizeof **s, "tensor storage");
  if (st) { mem_free(*t); *t = NULL; }
  return st;
}

static void set_contiguous(lacos_tensor *t, int ndim, const int64_t *shape) {
  t->ndim = ndim;
  int64_t s = 1;
  for (int d = 3; d >= 0; d--) {
    t->shape[d] = d < ndim ? shape[d] : 1;
    t->stride[d] = d < ndim ? s : 0;
    if (d < ndim) s *= t->shape[d];
  }
}

int lacos_tensor_empty(lacos_tensor **out, int dtype, int device, int ndim, const int64_t *shape) {
  *out = NULL;
  if (!lacos_dtype_size(dtype)) return fail(LACOS_EINVAL, "unknown dtype %d", dtype);
  if (device != LACOS_CPU && device != LACOS_CUDA) return fail(LACOS_EINVAL, "unknown device %d", device);
  size_t bytes;
  TRY(shape_check(ndim, shape, (size_t)lacos_dtype_size(dtype), &bytes));
  const backend *be;
  TRY(backend_get(&be, device));
  lacos_tensor *t;
  lacos_storage *s;
  TRY(header_and_storage(&t, &s));
  void *data;
  int st = be->alloc(&data, bytes ? bytes : 1, "tensor");
  if (st) { mem_free(t); mem_free(s); return st; }
  s->data = data; s->bytes = bytes ? bytes : 1; s->device = device; s->refcount = 1; s->be = be;
  t->storage = s; t->data = data; t->dtype = dtype; t->device = device;
  set_contiguous(t, ndim, shape);
  *out = t;
  return LACOS_OK;
}

int lacos_tensor_new(lacos_tensor **out, int dtype, int device, int ndim, const int64_t *shape) {
  TRY(lacos_tensor_empty(out, dtype, device, ndim, shape));
  int s = (*out)->storage->be->zero((*out)->data, (*out)->storage->bytes);
  if (s) { lacos_tensor_free(*out); *out = NULL; }
  return s;
}

int tensor_wrap(lacos_tensor **out, void *data, int dtype, int ndim, const int64_t *shape,
                void (*release)(void *ctx), void *ctx) {
  return tensor_wrap_on(out, data, dtype, LACOS_CPU, ndim, shape, release, ctx);
}

int tensor_wrap_on(lacos_tensor **out, void *data, int dtype, int device, int ndim, const int64_t *shape,
                   void (*release)(void *ctx), void *ctx) {
  *out = NULL;
  size_t bytes;
  TRY(shape_check(ndim, shape, (size_t)lacos_dtype_size(dtype), &bytes));
  lacos_tensor *t;
  lacos_storage *s;
  TRY(header_and_storage(&t, &s));
  s->data = data; s->bytes = bytes; s->device = device; s->refcount = 1;
  s->release = release; s->ctx = ctx;
  t->storage = s; t->data = data; t->dtype = dtype; t->device = device;
  set_contiguous(t, ndim, shape);
  *out = t;
  return LACOS_OK;
}

static void release_nothing(void *ctx) { (void)ctx; }

int tensor_borrow(lacos_tensor **out, void *data, int dtype, int ndim, const int64_t *shape) {
  return tensor_wrap(out, data, dtype, ndim, shape, release_nothing, NULL);
}

int tensor_borrow_on(lacos_tensor **out, void *data, int dtype, int device, int ndim, const int64_t *shape) {
  return tensor_wrap_on(out, data, dtype, device, ndim, shape, release_nothing, NULL);
}

void lacos_tensor_free(lacos_tensor *t) {
  if (!t) return;
  storage_release(t->storage);
  mem_free(t);
}

void lacos_tensor_release(lacos_tensor *t) {
  if (!t || (t->flags & LACOS_TENSOR_RELEASED)) return;
  storage_release(t->storage);
  t->storage = NULL;
  t->data = NULL;
  t->ndim = 1;
  for (int d = 0; d < 4; d++) { t->shape[d] = d == 0 ? 0 : 1; t->stride[d] = 0; }
  t->flags |= LACOS_TENSOR_RELEASED;
}

int64_t lacos_tensor_numel(const lacos_tensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
  return n;
}

int lacos_tensor_is_contiguous(const lacos_tensor *t) {
  int64_t s = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->shape[d] != 1 && t->stride[d] != s) return 0;
    s *= t->shape[d];
  }
  return 1;
}

bool floats_finite(const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) if (!isfinite(x[i])) return false;
  return true;
}

int lacos_tensor_count_nonfinite(const lacos_tensor *t, double *count) {
  if (!t || !count) return fail(LACOS_EINVAL, "tensor_count_nonfinite: NULL argument");
  *count = 0;
  TRY(tensor_on_cpu(t, "tensor_count_nonfinite"));
  if (t->dtype != LACOS_F32 && t->dtype != LACOS_F16 && t->dtype != LACOS_BF16 && t->dtype != LACOS_F64) return LACOS_OK;
  int64_t n = lacos_tensor_numel(t), idx[4] = {0, 0, 0, 0}, bad = 0;
  for (int64_t k = 0; k < n; k++) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    if (!isfinite(dtype_load(t->data, off, t->dtype))) bad++;
    for (int d = t->ndim - 1; d >= 0; d--) {   /* the next index, last dimension fastest */
      if (++idx[d] < t->shape[d]) break;
      idx[d] = 0;
    }
  }
  *count = (double)bad;
  return LACOS_OK;
}

double lacos_tensor_nbytes(const lacos_tensor *t) {
  return (double)lacos_tensor_numel(t) * lacos_dtype_size(t->dtype);
}

void tensor_shape_str(const lacos_tensor *t, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "(");
  for (int d = 0; d < t->ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
  if (k < n) snprintf(buf + k, n - k, ")");
}

int tensor_check(const lacos_tensor *t, const char *name, int dtype, int ndim) {
  if (!t) return fail(LACOS_EINVAL, "%s: tensor is missing", name);
  if (t->flags & LACOS_TENSOR_RELEASED) return fail(LACOS_ESTATE, "%s: tensor was freed", name);
  if (dtype >= 0 && t->dtype != dtype)
    return fail(LACOS_EINVAL, "%s: expected dtype %s, got %s", name, lacos_dtype_name(dtype), lacos_dtype_name(t->dtype));
  if (ndim >= 0 && t->ndim != ndim)
    return fail(LACOS_EINVAL, "%s: expected %d dimensions, got %d", name, ndim, t->ndim);
  return tensor_on_cpu(t, name);
}

/* ---- views ---- */

static int view_of(lacos_tensor **out, const lacos_tensor *t) {
  if (t->flags & LACOS_TENSOR_RELEASED) return fail(LACOS_ESTATE, "tensor was freed");
  lacos_tensor *v;
  TRY(header_new(&v));
  *v = *t;
  storage_retain(v->storage);
  *out = v;
  return LACOS_OK;
}

static int dim_ok(const lacos_tensor *t, int *dim, int extra) {
  int n = t->ndim + extra;
  if (*dim < 0) *dim += n;
  if (*dim < 0 || *dim >= n) return fail(LACOS_EINVAL, "dimension %d out of range for a %d-d tensor", *dim, t->ndim);
  return LACOS_OK;
}

int lacos_tensor_view(lacos_tensor **out, const lacos_tensor *t, int ndim, const int64_t *shape) {
  *out = NULL;
  if (ndim < 0 || ndim > 4) return fail(LACOS_EINVAL, "tensors have 0 to 4 dimensions, got %d", ndim);
  int64_t sh[4], known = 1, numel = lacos_tensor_numel(t);
  int infer = -1;
  for (int d = 0; d < ndim; d++) {
    sh[d] = shape[d];
    if (sh[d] == -1) {
      if (infer >= 0) return fail(LACOS_EINVAL, "view: only one dimension may be -1");
      infer = d;
    } else if (sh[d] < 0) return fail(LACOS_EINVAL, "view: negative size %lld", (long long)sh[d]);
    else known *= sh[d];
  }
  if (infer >= 0) {
    if (known == 0 || numel % known) return fail(LACOS_EINVAL, "view: cannot infer a dimension for %lld elements", (long long)numel);
    sh[infer] = numel / known;
    known = numel;
  }
  if (known != numel) return fail(LACOS_EINVAL, "view: shape has %lld elements, tensor has %lld", (long long)known, (long long)numel);
  if (!lacos_tensor_is_contiguous(t)) return fail(LACOS_EINVAL, "view: tensor is not contiguous (call :contiguous() first)");
  TRY(view_of(out, t));
  set_contiguous(*out, ndim, sh);
  return LACOS_OK;
}

int lacos_tensor_slice(lacos_tensor **out, const lacos_tensor *t, int dim, int64_t start, int64_t stop, int64_t step) {
  *out = NULL;
  TRY(dim_ok(t, &dim, 0));
  int64_t n = t->shape[dim];
  if (step <= 0) return fail(LACOS_EINVAL, "slice: step must be positive, got %lld", (long long)step);
  if (start < 0) start += n;
  if (stop < 0) stop += n;
  if (start < 0) start = 0;
  if (stop > n) stop = n;
  if (start > n) start = n;
  int64_t len = stop > start ? (stop - start + step - 1) / step : 0;
  TRY(view_of(out, t));
  lacos_tensor *v = *out;
  v->data = (char *)t->data + start * t->stride[dim] * lacos_dtype_size(t->dtype);
  v->shape[dim] = len;
  v->stride[dim] = t->stride[dim] * step;
  return LACOS_OK;
}

int lacos_tensor_select(lacos_tensor **out, const lacos_tensor *t, int dim, int64_t index) {
  *out = NULL;
  TRY(dim_ok(t, &dim, 0));
  if (index < 0) index += t->shape[dim];
  if (index < 0 || index >= t->shape[dim])
    return fail(LACOS_EINVAL, "index %lld out of range for dimension %d of size %lld",
                (long long)index, dim, (long long)t->shape[dim]);
  TRY(view_of(out, t));
  lacos_tensor *v = *out;
  v->data = (char *)t->data + index * t->stride[dim] * lacos_dtype_size(t->dtype);
  for (int d = dim; d < 3; d++) { v->shape[d] = v->shape[d + 1]; v->stride[d] = v->stride[d + 1]; }
  v->ndim--;
  v->shape[v->ndim] = 1; v->stride[v->ndim] = 0;
  for (int d = v->ndim; d < 4; d++) { v->shape[d] = 1; v->stride[d] = 0; }
  return LACOS_OK;
}

int lacos_tensor_transpose(lacos_tensor **out, const lacos_tensor *t, int d0, int d1) {
  *out = NULL;
  TRY(dim_ok(t, &d0, 0));
  TRY(dim_ok(t, &d1, 0));
  TRY(view_of(out, t));
  lacos_tensor *v = *out;
  int64_t s = v->shape[d0]; v->shape[d0] = v->shape[d1]; v->shape[d1] = s;
  s = v->stride[d0]; v->stride[d0] = v->stride[d1]; v->stride[d1] = s;
  return LACOS_OK;
}

int lacos_tensor_unsqueeze(lacos_tensor **out, const lacos_tensor *t, int dim) {
  *out = NULL;
  if (t->ndim >= 4) return fail(LACOS_EINVAL, "unsqueeze: tensor already has 4 dimensions");
  TRY(dim_ok(t, &dim, 1));
  TRY(view_of(out, t));
  lacos_tensor *v = *out;
  for (int d = 3; d > dim; d--) { v->shape[d] = v->shape[d - 1]; v->stride[d] = v->stride[d - 1]; }
  v->shape[dim] = 1;
  v->stride[dim] = dim < t->ndim ? t->stride[dim] * t->shape[dim] : 1;   /* any value works for size 1 */
  v->ndim++;
  return LACOS_OK;
}

/* Strides that present t with `shape` under NumPy broadcasting (0 stride on
   broadcast dimensions). */
static int broadcast_strides(const lacos_tensor *t, int ndim, const int64_t *shape, int64_t *stride) {
  if (t->ndim > ndim) return fail(LACOS_EINVAL, "cannot broadcast a %d-d tensor to %d dimensions", t->ndim, ndim);
  int off = ndim - t->ndim;
  for (int d = 0; d < 4; d++) stride[d] = 0;
  for (int d = 0; d < ndim; d++) {
    if (d < off) { stride[d] = 0; continue; }
    int64_t ts = t->shape[d - off];
    if (ts == shape[d]) stride[d] = t->stride[d - off];
    else if (ts == 1) stride[d] = 0;
    else {
      char have[96], want[96];
      lacos_tensor target = {.ndim = ndim};
      for (int k = 0; k < ndim; k++) target.shape[k] = shape[k];
      tensor_shape_str(t, have, sizeof have);
      tensor_shape_str(&target, want, sizeof want);
      return fail(LACOS_EINVAL, "a tensor of shape %s does not broadcast to %s", have, want);
    }
  }
  return LACOS_OK;
}

int lacos_tensor_expand(lacos_tensor **out, const lacos_tensor *t, int ndim, const int64_t *shape) {
  *out = NULL;
  int64_t st[4];
  if (ndim < 0 || ndim > 4) return fail(LACOS_EINVAL, "tensors have 0 to 4 dimensions, got %d", ndim);
  TRY(broadcast_strides(t, ndim, shape, st));
  TRY(view_of(out, t));
  lacos_tensor *v = *out;
  v->ndim = ndim;
  for (int d = 0; d < 4; d++) { v->shape[d] = d < ndim ? shape[d] : 1; v->stride[d] = d < ndim ? st[d] : 0; }
  return LACOS_OK;
}

/* ---- element get/set ---- */

static int index_offset(const lacos_tensor *t, const int64_t *index, int64_t *off) {
  int64_t o = 0;
  for (int d = 0; d < t->ndim; d++) {
    int64_t i = index[d];
    if (i < 0) i += t->shape[d];
    if (i < 0 || i >= t->shape[d])
      return fail(LACOS_EINVAL, "index %lld out of range for dimension %d of size %lld",
                  (long long)index[d], d, (long long)t->shape[d]);
    o += i * t->stride[d];
  }
  *off = o;
  return LACOS_OK;
}

int lacos_tensor_get(const lacos_tensor *t, const int64_t *index, double *value) {
  int64_t o;
  TRY(tensor_on_cpu(t, "get"));
  TRY(index_offset(t, index, &o));
  *value = dtype_load(t->data, o, t->dtype);
  return LACOS_OK;
}

int lacos_tensor_set(lacos_tensor *t, const int64_t *index, double value) {
  int64_t o;
  TRY(tensor_on_cpu(t, "set"));
  TRY(index_offset(t, index, &o));
  dtype_store(t->data, o, t->dtype, value);
  return LACOS_OK;
}

/* ---- copies ---- */

/* dst[i] = convert(src[i]) over dst's shape, src given by strides `ss`. */
static void strided_copy(lacos_tensor *dst, const void *src, int sdtype, const int64_t *ss) {
  const int64_t *sh = dst->shape, *ds = dst->stride;
  int dsz = lacos_dtype_size(dst->dtype), ssz = lacos_dtype_size(sdtype);
  int64_t rows = sh[0] * sh[1] * sh[2];
  bool same = dst->dtype == sdtype;
  #pragma omp parallel for if (rows * sh[3] > 65536) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t i0 = r / (sh[1] * sh[2]), i1 = (r / sh[2]) % sh[1], i2 = r % sh[2];
    char *d = (char *)dst->data + (i0 * ds[0] + i1 * ds[1] + i2 * ds[2]) * dsz;
    const char *s = (const char *)src + (i0 * ss[0] + i1 * ss[1] + i2 * ss[2]) * ssz;
    if (same && ds[3] == 1 && ss[3] == 1) { memcpy(d, s, (size_t)(sh[3] * dsz)); continue; }
    if (dst->dtype == LACOS_F32 && sdtype == LACOS_F32) {
      float *df = (float *)d; const float *sf = (const float *)s;
      for (int64_t j = 0; j < sh[3]; j++) df[j * ds[3]] = sf[j * ss[3]];
      continue;
    }
    for (int64_t j = 0; j < sh[3]; j++)
      dtype_store(d, j * ds[3], dst->dtype, dtype_load(s, j * ss[3], sdtype));
  }
}

/* A copy that involves the GPU: same dtype and shape, both contiguous (the
   bytes move as they are; conversions and broadcasts happen on the CPU). */
static int device_copy(lacos_tensor *dst, const lacos_tensor *src) {
  bool same = dst->dtype == src->dtype && dst->ndim == src->ndim;
  for (int d = 0; same && d < dst->ndim; d++) same = dst->shape[d] == src->shape[d];
  if (!same || !lacos_tensor_is_contiguous(dst) || !lacos_tensor_is_contiguous(src))
    return fail(LACOS_EDEVICE, "copy: a tensor is on cuda; copies to or from the GPU need the same dtype and shape, "
                               "both contiguous (call :to('cpu') to convert on the CPU)");
  size_t bytes = (size_t)lacos_tensor_nbytes(dst);
  const backend *be;
  TRY(backend_get(&be, LACOS_CUDA));
  if (dst->device == LACOS_CUDA && src->device == LACOS_CUDA) return be->copy(dst->data, src->data, bytes);
  if (dst->device == LACOS_CUDA) return be->upload(dst->data, src->data, bytes);
  return be->download(dst->data, src->data, bytes);
}

int lacos_tensor_copy(lacos_tensor *dst, const lacos_tensor *src) {
  if ((dst->flags | src->flags) & LACOS_TENSOR_RELEASED) return fail(LACOS_ESTATE, "tensor was freed");
  if (dst->device != LACOS_CPU || src->device != LACOS_CPU) return device_copy(dst, src);
  int64_t ss[4];
  TRY(broadcast_strides(src, dst->ndim, dst->shape, ss));
  if (lacos_tensor_is_contiguous(dst) && lacos_tensor_is_contiguous(src) && src->ndim == dst->ndim &&
      lacos_tensor_numel(src) == lacos_tensor_numel(dst)) {
    dtype_convert(dst->data, dst->dtype, src->data, src->dtype, lacos_tensor_numel(dst));
    return LACOS_OK;
  }
  strided_copy(dst, src->data, src->dtype, ss);
  return LACOS_OK;
}

int lacos_tensor_to_dtype(lacos_tensor **out, const lacos_tensor *t, int dtype) {
  *out = NULL;
  TRY(lacos_tensor_empty(out, dtype, t->device, t->ndim, t->shape));
  int s = lacos_tensor_copy(*out, t);
  if (s) { lacos_tensor_free(*out); *out = NULL; }
  return s;
}

int lacos_tensor_clone(lacos_tensor **out, const lacos_tensor *t) { return lacos_tensor_to_dtype(out, t, t->dtype); }

int lacos_tensor_contiguous(lacos_tensor **out, const lacos_tensor *t) {
  if (lacos_tensor_is_contiguous(t)) return view_of(out, t);
  return lacos_tensor_clone(out, t);
}

int lacos_tensor_to_device(lacos_tensor **out, const lacos_tensor *t, int device) {
  *out = NULL;
  if (device != LACOS_CPU && device != LACOS_CUDA) return fail(LACOS_EINVAL, "unknown device %d", device);
  if (t->flags & LACOS_TENSOR_RELEASED) return fail(LACOS_ESTATE, "tensor was freed");
  if (device == t->device) return view_of(out, t);
  const backend *be;
  if (backend_get(&be, LACOS_CUDA)) return fail_context("tensor:to('%s')", device == LACOS_CUDA ? "cuda" : "cpu");
  if (device == LACOS_CUDA) {
    lacos_tensor *c;
    TRY(lacos_tensor_contiguous(&c, t));
    int s = lacos_tensor_empty(out, t->dtype, LACOS_CUDA, t->ndim, t->shape);
    if (!s) s = be->upload((*out)->data, c->data, (size_t)lacos_tensor_nbytes(c));
    lacos_tensor_free(c);
    if (s) { lacos_tensor_free(*out); *out = NULL; }
    return s;
  }
  /* To the CPU: the bytes the view spans, then the view's strides on the host. */
  TRY(lacos_tensor_empty(out, t->dtype, LACOS_CPU, t->ndim, t->shape));
  int64_t span = 1;
  bool empty = false;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] == 0) empty = true;
    else span += (t->shape[d] - 1) * t->stride[d];
  }
  if (empty) return LACOS_OK;
  int s;
  if (lacos_tensor_is_contiguous(t)) {
    s = be->download((*out)->data, t->data, (size_t)lacos_tensor_nbytes(t));
  } else {
    size_t bytes = (size_t)span * (size_t)lacos_dtype_size(t->dtype);
    void *host;
    s = mem_alloc(&host, bytes, "download");
    if (!s) s = be->download(host, t->data, bytes);
    if (!s) {
      lacos_tensor view = *t;   /* header only: t's strides over the host copy */
      view.data = host;
      view.device = LACOS_CPU;
      view.storage = NULL;
      s = lacos_tensor_copy(*out, &view);
    }
    mem_free(host);
  }
  if (s) { lacos_tensor_free(*out); *out = NULL; }
  return s;
}

int lacos_tensor_fill(lacos_tensor *t, double value) {
  if (t->device == LACOS_CUDA && value == 0 && lacos_tensor_is_contiguous(t) && !(t->flags & LACOS_TENSOR_RELEASED)) {
    const backend *be;   /* zero(): the one fill a device tensor needs */
    TRY(backend_get(&be, LACOS_CUDA));
    return be->zero(t->data, (size_t)lacos_tensor_nbytes(t));
  }
  lacos_tensor *scalar;   /* 0-d: it broadcasts to every shape, a 0-d tensor included */
  int64_t one = 1;
  TRY(lacos_tensor_empty(&scalar, LACOS_F64, LACOS_CPU, 0, &one));
  ((double *)scalar->data)[0] = value;
  int s = lacos_tensor_copy(t, scalar);
  lacos_tensor_free(scalar);
  return s;
}

int lacos_tensor_full(lacos_tensor **out, int dtype, int ndim, const int64_t *shape, double value) {
  TRY(lacos_tensor_empty(out, dtype, LACOS_CPU, ndim, shape));
  return lacos_tensor_fill(*out, value);
}

int lacos_tensor_rand(lacos_tensor **out, int dtype, int ndim, const int64_t *shape,
                      double seed, int dist, double a, double b) {
  if (dist != 0 && dist != 1) return fail(LACOS_EINVAL, "rand: distribution must be 0 (uniform) or 1 (normal)");
  TRY(lacos_tensor_empty(out, dtype, LACOS_CPU, ndim, shape));
  lacos_tensor *t = *out;
  int64_t n = lacos_tensor_numel(t);
  uint64_t s = (uint64_t)seed;
  #pragma omp parallel for if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    double v = dist == 0 ? a + (b - a) * rng_uniform(s, (uint64_t)i) : a + b * rng_normal(s, (uint64_t)i);
    dtype_store(t->data, i, dtype, v);
  }
  return LACOS_OK;
}

int lacos_tensor_arange(lacos_tensor **out, int dtype, double start, double stop, double step) {
  *out = NULL;
  if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
    return fail(LACOS_EINVAL, "arange: step must be non-zero and bounds finite");
  double count = ceil((stop - start) / step);
  int64_t n = count > 0 ? (int64_t)count : 0;
  TRY(lacos_tensor_empty(out, dtype, LACOS_CPU, 1, &n));
  for (int64_t i = 0; i < n; i++) dtype_store((*out)->data, i, dtype, start + (double)i * step);
  return LACOS_OK;
}

int lacos_tensor_from_buffer(lacos_tensor **out, int dtype, int ndim, const int64_t *shape,
                             const void *src, int src_dtype) {
  if (!lacos_dtype_size(src_dtype)) return fail(LACOS_EINVAL, "unknown source dtype %d", src_dtype);
  TRY(lacos_tensor_empty(out, dtype, LACOS_CPU, ndim, shape));
  dtype_convert((*out)->data, dtype, src, src_dtype, lacos_tensor_numel(*out));
  return LACOS_OK;
}

static int read_as(const lacos_tensor *t, void *dst, int dtype, int64_t n) {
  TRY(tensor_on_cpu(t, "read"));
  if (n != lacos_tensor_numel(t))
    return fail(LACOS_EINVAL, "read: buffer holds %lld elements, tensor has %lld", (long long)n, (long long)lacos_tensor_numel(t));
  lacos_tensor borrowed = {.data = dst, .dtype = dtype, .device = LACOS_CPU};   /* header only, no storage */
  set_contiguous(&borrowed, t->ndim, t->shape);
  return lacos_tensor_copy(&borrowed, t);
}

int lacos_tensor_read_f64(const lacos_tensor *t, double *dst, int64_t n) { return read_as(t, dst, LACOS_F64, n); }
int lacos_tensor_read_f32(const lacos_tensor *t, float *dst, int64_t n) { return read_as(t, dst, LACOS_F32, n); }

int lacos_tensor_cat(lacos_tensor **out, lacos_tensor *const *parts, int n, int dim) {
  *out = NULL;
  if (n < 1) return fail(LACOS_EINVAL, "cat: no tensors given");
  const lacos_tensor *p0 = parts[0];
  TRY(dim_ok(p0, &dim, 0));
  int64_t shape[4];
  memcpy(shape, p0->shape, sizeof shape);
  shape[dim] = 0;
  int dtype = p0->dtype;
  for (int i = 0; i < n; i++) {
    const lacos_tensor *p = parts[i];
    if (p->ndim != p0->ndim) return fail(LACOS_EINVAL, "cat: tensor %d has %d dimensions, expected %d", i + 1, p->ndim, p0->ndim);
    for (int d = 0; d < p0->ndim; d++)
      if (d != dim && p->shape[d] != p0->shape[d])
        return fail(LACOS_EINVAL, "cat: tensor %d has size %lld in dimension %d, expected %lld",
                    i + 1, (long long)p->shape[d], d, (long long)p0->shape[d]);
    shape[dim] += p->shape[dim];
  }
  TRY(lacos_tensor_empty(out, dtype, LACOS_CPU, p0->ndim, shape));
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    lacos_tensor *dst;
    int s = lacos_tensor_slice(&dst, *out, dim, at, at + parts[i]->shape[dim], 1);
    if (!s) s = lacos_tensor_copy(dst, parts[i]);
    lacos_tensor_free(dst);
    if (s) { lacos_tensor_free(*out); *out = NULL; return s; }
    at += parts[i]->shape[dim];
  }
  return LACOS_OK;
}
