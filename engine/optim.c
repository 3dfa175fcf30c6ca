/* optim.c: AdamW and 8-bit blockwise Adam over f32 parameters.

   Which semantics, and why
   ------------------------
   LACOS_OPTIM_ADAM8BIT follows bitsandbytes' CUDA kernel
   kOptimizerStatic8bit2StateBlockwise (bitsandbytes-foundation/bitsandbytes:
   csrc/kernels.cu), not its CPU fallback (bitsandbytes/backends/cpu/ops.py,
   _optimizer_update_8bit_blockwise_cpu). The kernel is what GPU users of
   Adam8bit run and what lacos' CUDA twin will run, so CPU and GPU share one
   definition. Per block of 256 elements, in float32, in this order:
     1. m = qmap1[c1]*absmax1, v = qmap2[c2]*absmax2 (signed / unsigned map);
     2. finite g: v = v*b2 + ((1-b2)*g)*g, m = m*b1 + (1-b1)*g;
        g NaN or infinite: m = v = 0 and the element's parameter is not touched;
     3. absmax1, absmax2 = max |m|, max |v| over the block;
     4. p = p + step_size * (m / (sqrt(v) + c2*eps)), step_size = (-lr*c2)/c1,
        c1 = 1 - b1^t, c2 = sqrt(1 - b2^t)  (= Adam's m̂/(sqrt(v̂) + eps));
     5. then, if wd > 0, p = p * (1 - lr*wd): decoupled decay AFTER the update;
     6. codes = nearest code to m*(1/absmax1), v*(1/absmax2);
     7. momentum never flips sign: if the code's sign differs from m's, move
        one code towards m (the kernel's sign fix).
   The CPU fallback differs: decay before the update, a 65,536-entry lookup
   table instead of the nearest code, no sign fix, NaN gradients poison the
   whole block. Tests compare with both where they agree.
   Where lacos pins down what the kernel leaves loose:
   - scalars c1, c2 are computed in double from the float-rounded betas and
     rounded to float (the kernel uses __powf); lr, betas, eps, wd are
     float-rounded as the kernel receives them;
   - the state is scaled by 1/absmax, one IEEE division per block (the kernel
     approximates a division with __fdividef; bitsandbytes' quantize_blockwise
     multiplies by 1/absmax as here), and the nearest code is found on the
     code midpoints (c[i]+c[i+1])*0.5f with a tie going to the lower code
     (bucketize; the kernel's binary search breaks ties by search path);
   - an all-zero block (absmax 0) stores the code of 0 (the kernel divides
     0/0 and stores code 255 for m, 0 for v: the same value, 0);
   - absmax is taken over the block's real elements (the kernel's padding
     lanes of a partial last block contribute |qmap1[128]*absmax1*b1|).
   Tensors under min_8bit_size elements keep f32 states and follow
   kOptimizer32bit2State (v = v*b2 + (1-b2)*(g*g), same eps placement and
   decay order) plus the non-finite rule above (the 32-bit kernel would write
   NaN into p, m and v).

   LACOS_OPTIM_ADAMW follows torch.optim.AdamW's single-tensor CPU path
   (pytorch/pytorch: torch/optim/adam.py, _single_tensor_adam with
   decoupled_weight_decay): p *= 1 - lr*wd; m = lerp(m, g, 1-b1);
   v = v*b2 + (1-b2)*g*g; p += -(lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps),
   scalars in double as Python computes them. Non-finite gradient elements
   get the rule above instead of torch's NaN propagation, so both optimizers
   treat them alike.

   State layout: one allocation per class of state (all m codes, all v codes,
   all absmax values, all f32 moments), each a refcounted tensor so exported
   views stay valid. Work is split into fixed items (one 256-block of an
   8-bit tensor, or 4,096 elements of an f32-state tensor) processed in
   parallel with no shared accumulators, so results do not depend on the
   thread count. Float contraction is off: every product and sum is rounded
   as written, which the NumPy model in tests/reference/make_optim.py
   reproduces bit for bit.

   This file is the optimizer object: parameters, state, the work list and
   the step's scalars. The update itself is the backend's (backend.h):
   engine/cpu/optim.c and, for parameters on "cuda" (a device model's LoRA
   tensors, whose state then lives on the device too), kernels/optim.cu,
   over the same work list with the same scalars and the per-element
   arithmetic of math/optim_math.h. */
#include "backend.h"
#include "cpu/layers.h"
#include <math.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

enum { BLOCK = 256, F32_ITEM = 4096, DEFAULT_MIN_8BIT = 4096, NAME_MAX_LEN = 400 };

/* ---- standalone blockwise quantisation ---- */

static int block_size_ok(int b) {
  if (b < 64 || b > 4096 || (b & (b - 1)))
    return fail(LACOS_EINVAL, "block size must be a power of two from 64 to 4096, got %d", b);
  return LACOS_OK;
}

// codes (n) u8, absmax (ceil(n/block)) f32, x (n) f32
/* A parameter or gradient: contiguous, of dtype, on the optimizer's device
   (the first parameter's: all live on one device). */
static int param_tensor_ok(const lacos_tensor *t, const char *what, int device) {
  if (!t) return fail(LACOS_EINVAL, "%s: tensor is missing", what);
  if (t->flags & LACOS_TENSOR_RELEASED) return fail(LACOS_ESTATE, "%s: tensor was freed", what);
  if (t->dtype != LACOS_F32) return fail(LACOS_EINVAL, "%s: expected dtype f32, got %s", what, lacos_dtype_name(t->dtype));
  if (device >= 0 && t->device != device)
    return fail(LACOS_EDEVICE, "%s: the optimizer's tensors are on %s, this one is on %s", what,
                device == LACOS_CUDA ? "cuda" : "cpu", t->device == LACOS_CUDA ? "cuda" : "cpu");
  if (t->device != LACOS_CPU && t->device != LACOS_CUDA) return fail(LACOS_EDEVICE, "%s: unknown device %d", what, t->device);
  if (!lacos_tensor_is_contiguous(t)) return fail(LACOS_EINVAL, "%s: tensor is not contiguous", what);
  return LACOS_OK;
}

static int cpu_contiguous(const lacos_tensor *t, const char *what, int dtype) {
  TRY(tensor_check(t, what, dtype, -1));
  if (t->device != LACOS_CPU) return fail(LACOS_EDEVICE, "%s: the optimizer runs on CPU tensors", what);
  if (!lacos_tensor_is_contiguous(t)) return fail(LACOS_EINVAL, "%s: tensor is not contiguous", what);
  return LACOS_OK;
}

int lacos_optim_quantize(lacos_tensor **codes, lacos_tensor **absmax, const lacos_tensor *x, int is_signed,
                         int block_size) {
  *codes = *absmax = NULL;
  TRY(cpu_contiguous(x, "quantize input", LACOS_F32));
  TRY(block_size_ok(block_size));
  int64_t n = lacos_tensor_numel(x), nb = (n + block_size - 1) / block_size;
  TRY(lacos_tensor_empty(codes, LACOS_U8, LACOS_CPU, x->ndim, x->shape));
  int s = lacos_tensor_empty(absmax, LACOS_F32, LACOS_CPU, 1, &nb);
  if (s) { lacos_tensor_free(*codes); *codes = NULL; return s; }
  quantize_blockwise((*codes)->data, (*absmax)->data, x->data, n, is_signed != 0, block_size);
  return LACOS_OK;
}

int lacos_optim_dequantize(lacos_tensor **x, const lacos_tensor *codes, const lacos_tensor *absmax, int is_signed,
                           int block_size) {
  *x = NULL;
  TRY(cpu_contiguous(codes, "dequantize codes", LACOS_U8));
  TRY(cpu_contiguous(absmax, "dequantize absmax", LACOS_F32));
  TRY(block_size_ok(block_size));
  int64_t n = lacos_tensor_numel(codes), nb = (n + block_size - 1) / block_size;
  if (lacos_tensor_numel(absmax) != nb)
    return fail(LACOS_EINVAL, "dequantize: %lld codes in blocks of %d need %lld absmax values, got %lld",
                (long long)n, block_size, (long long)nb, (long long)lacos_tensor_numel(absmax));
  TRY(lacos_tensor_empty(x, LACOS_F32, LACOS_CPU, codes->ndim, codes->shape));
  dequantize_blockwise((*x)->data, codes->data, absmax->data, n, is_signed != 0, block_size);
  return LACOS_OK;
}

/* ---- the optimizer object ---- */

typedef struct optim_param {
  char *name;
  lacos_tensor *p, *g;      /* our views: the storages stay referenced */
  int64_t n;
  int eight_bit;
  int64_t off;              /* into the code buffers (8-bit) or the f32 moments */
  int64_t boff, nblocks;    /* into the absmax buffer (8-bit) */
} optim_param;

struct lacos_optim {
  lacos_optim_config cfg;
  optim_param *params;
  int nparams, cap;
  int64_t n8, nf, nblocks, numel;
  /* One tensor per class of state, allocated on first use. */
  lacos_tensor *codes1, *codes2;   /* u8 (n8) */
  lacos_tensor *absmax;            /* f32 (2*nblocks): absmax1 then absmax2 */
  lacos_tensor *moments;           /* f32 (2*nf): m then v */
  char **state_names;
  int nstate;
  int step;
  double nonfinite;
  int ready;
  int device;                      /* of every parameter; -1 before the first */
  const backend *be;               /* the parameters' device's */
  /* The work list (one item per 256-block or 4,096 f32-state elements) and
     the gradient norm's chunks of 4,096 elements, in the backend's memory
     (host arrays on the CPU), with a host array for the norm's partial sums. */
  optim_item *items, *chunks;
  int64_t nitems, nchunks;
  double *partials;
  workspace ws;                    /* the backend's scratch for a step */
};

void lacos_optim_config_init(lacos_optim_config *c, int kind) {
  memset(c, 0, sizeof *c);
  c->lr = 1e-3;
  c->beta1 = 0.9;
  c->beta2 = 0.999;
  c->eps = 1e-8;
  if (kind == LACOS_OPTIM_ADAM8BIT) {
    c->kind = kind;
    c->block_size = BLOCK;
    c->min_8bit_size = DEFAULT_MIN_8BIT;
  } else if (kind == LACOS_OPTIM_ADAMW) {
    c->kind = kind;
    c->weight_decay = 0.01;
  } else {
    c->kind = -1;
  }
}

static int config_check(const lacos_optim_config *c) {
  if (c->kind != LACOS_OPTIM_ADAMW && c->kind != LACOS_OPTIM_ADAM8BIT)
    return fail(LACOS_EINVAL, "optimizer kind must be %d (AdamW) or %d (Adam8bit), got %d", LACOS_OPTIM_ADAMW,
                LACOS_OPTIM_ADAM8BIT, c->kind);
  if (!isfinite(c->lr) || c->lr < 0) return fail(LACOS_EINVAL, "invalid learning rate %g (must be >= 0)", c->lr);
  if (!isfinite(c->eps) || c->eps < 0) return fail(LACOS_EINVAL, "invalid eps %g (must be >= 0)", c->eps);
  if (!(c->beta1 >= 0 && c->beta1 < 1)) return fail(LACOS_EINVAL, "invalid beta1 %g (must be in [0, 1))", c->beta1);
  if (!(c->beta2 >= 0 && c->beta2 < 1)) return fail(LACOS_EINVAL, "invalid beta2 %g (must be in [0, 1))", c->beta2);
  if (!isfinite(c->weight_decay) || c->weight_decay < 0)
    return fail(LACOS_EINVAL, "invalid weight_decay %g (must be >= 0)", c->weight_decay);
  if (c->kind == LACOS_OPTIM_ADAM8BIT) {
    if (c->block_size != BLOCK)
      return fail(LACOS_EINVAL, "Adam8bit quantises its states in blocks of %d (bitsandbytes' block size), got block_size %d",
                  BLOCK, c->block_size);
    if (c->min_8bit_size < 0) return fail(LACOS_EINVAL, "min_8bit_size must be >= 0, got %d", c->min_8bit_size);
  } else {
    if (c->block_size != 0) return fail(LACOS_EINVAL, "block_size applies to Adam8bit only (AdamW keeps f32 states)");
    if (c->min_8bit_size != 0) return fail(LACOS_EINVAL, "min_8bit_size applies to Adam8bit only (AdamW keeps f32 states)");
  }
  return LACOS_OK;
}

int lacos_optim_new(lacos_optim **out, const lacos_optim_config *cfg) {
  *out = NULL;
  if (!cfg) return fail(LACOS_EINVAL, "optimizer config is missing");
  TRY(config_check(cfg));
  lacos_optim *o;
  TRY(meta_calloc(&o, 1, sizeof *o, "optimizer"));
  o->cfg = *cfg;
  o->device = -1;
  *out = o;
  return LACOS_OK;
}

/* The work lists in the backend's memory (the host lists themselves on the CPU). */
static void lists_free(lacos_optim *o) {
  if (o->be && !o->be->host_memory) {
    o->be->free(o->items, sizeof(optim_item) * (size_t)o->nitems);
    o->be->free(o->chunks, sizeof(optim_item) * (size_t)o->nchunks);
  } else {
    mem_free(o->items);
    mem_free(o->chunks);
  }
  mem_free(o->partials);
  if (o->be) workspace_free(o->be, &o->ws);
  o->items = o->chunks = NULL;
  o->partials = NULL;
  o->nitems = o->nchunks = 0;
}

void lacos_optim_free(lacos_optim *o) {
  if (!o) return;
  for (int i = 0; i < o->nparams; i++) {
    mem_free(o->params[i].name);
    lacos_tensor_free(o->params[i].p);
    lacos_tensor_free(o->params[i].g);
  }
  mem_free(o->params);
  lacos_tensor_free(o->codes1);
  lacos_tensor_free(o->codes2);
  lacos_tensor_free(o->absmax);
  lacos_tensor_free(o->moments);
  lists_free(o);
  if (o->state_names)
    for (int i = 0; i < o->nstate; i++) mem_free(o->state_names[i]);
  mem_free(o->state_names);
  mem_free(o);
}

int lacos_optim_get_config(const lacos_optim *o, lacos_optim_config *cfg) {
  if (!o || !cfg) return fail(LACOS_EINVAL, "optimizer or config is missing");
  *cfg = o->cfg;
  return LACOS_OK;
}

static int ranges_overlap(const lacos_tensor *a, const lacos_tensor *b) {
  const char *a0 = a->data, *b0 = b->data;
  const char *a1 = a0 + (size_t)lacos_tensor_nbytes(a), *b1 = b0 + (size_t)lacos_tensor_nbytes(b);
  return a0 < b1 && b0 < a1;
}

static optim_param *param_named(const lacos_optim *o, const char *name) {
  for (int i = 0; i < o->nparams; i++)
    if (!strcmp(o->params[i].name, name)) return &o->params[i];
  return NULL;
}

int lacos_optim_add(lacos_optim *o, const char *name, const lacos_tensor *param, const lacos_tensor *grad) {
  if (!o) return fail(LACOS_EINVAL, "optimizer is missing");
  if (!name || !name[0]) return fail(LACOS_EINVAL, "optimizer parameter needs a non-empty name");
  if (strlen(name) > NAME_MAX_LEN) return fail(LACOS_EINVAL, "optimizer parameter name is longer than %d bytes", NAME_MAX_LEN);
  if (o->ready)
    return fail(LACOS_ESTATE, "%s: parameters can only be added before the optimizer's first step or state access", name);
  if (param_named(o, name)) return fail(LACOS_EINVAL, "%s: a parameter of this name is already registered", name);
  int s = param_tensor_ok(param, "parameter", o->device);
  if (!s) s = param_tensor_ok(grad, "gradient", param->device);
  if (s) return fail_context("%s", name);
  int64_t n = lacos_tensor_numel(param);
  if (n < 1) return fail(LACOS_EINVAL, "%s: parameter has no elements", name);
  bool same = param->ndim == grad->ndim;
  for (int d = 0; same && d < param->ndim; d++) same = param->shape[d] == grad->shape[d];
  if (!same) {
    char ps[64], gs[64];
    tensor_shape_str(param, ps, sizeof ps);
    tensor_shape_str(grad, gs, sizeof gs);
    return fail(LACOS_EINVAL, "%s: gradient shape %s differs from the parameter's %s", name, gs, ps);
  }
  if (ranges_overlap(param, grad)) return fail(LACOS_EINVAL, "%s: parameter and gradient share memory", name);
  for (int i = 0; i < o->nparams; i++) {
    const optim_param *q = &o->params[i];
    if (ranges_overlap(param, q->p) || ranges_overlap(param, q->g) || ranges_overlap(grad, q->p) ||
        ranges_overlap(grad, q->g))
      return fail(LACOS_EINVAL, "%s: memory overlaps the registered parameter %s or its gradient", name, q->name);
  }
  if (o->nparams == o->cap) {
    int cap = o->cap ? o->cap * 2 : 16;
    if (meta_realloc(&o->params, (size_t)cap * sizeof *o->params, "optimizer parameters"))
      return fail_context("registering %s", name);
    o->cap = cap;
  }
  optim_param *q = &o->params[o->nparams];
  memset(q, 0, sizeof *q);
  if (meta_strdup(&q->name, name, "optimizer parameter name")) return fail_context("registering %s", name);
  if ((s = lacos_tensor_view(&q->p, param, param->ndim, param->shape)) != LACOS_OK ||
      (s = lacos_tensor_view(&q->g, grad, grad->ndim, grad->shape)) != LACOS_OK) {
    lacos_tensor_free(q->p);
    mem_free(q->name);
    return fail_context("%s", name);
  }
  q->n = n;
  q->eight_bit = o->cfg.kind == LACOS_OPTIM_ADAM8BIT && n >= o->cfg.min_8bit_size;
  if (q->eight_bit) {
    q->off = o->n8;
    q->nblocks = (n + BLOCK - 1) / BLOCK;
    q->boff = o->nblocks;
    o->n8 += n;
    o->nblocks += q->nblocks;
  } else {
    q->off = o->nf;
    o->nf += n;
  }
  o->numel += n;
  o->nparams++;
  o->device = param->device;
  return LACOS_OK;
}

int lacos_optim_param_count(const lacos_optim *o) { return o ? o->nparams : 0; }
double lacos_optim_numel(const lacos_optim *o) { return o ? (double)o->numel : 0; }
int lacos_optim_step_count(const lacos_optim *o) { return o ? o->step : 0; }
double lacos_optim_nonfinite(const lacos_optim *o) { return o ? o->nonfinite : 0; }

double lacos_optim_state_bytes(const lacos_optim *o) {
  if (!o) return 0;
  return 2.0 * (double)o->n8 + 2.0 * 4.0 * (double)o->nblocks + 2.0 * 4.0 * (double)o->nf;
}

static const char *state_suffix[4] = { ".state1", ".state2", ".absmax1", ".absmax2" };

static int state_alloc(lacos_tensor **t, int dtype, int device, int64_t n, const char *what) {
  if (n == 0) return LACOS_OK;
  if (lacos_tensor_new(t, dtype, device, 1, &n)) return fail_context("optimizer state (%s)", what);
  return LACOS_OK;
}

/* The work list (one item per 8-bit block or f32 stretch) and the
   gradient-norm chunks, built on the host with pointers into the
   parameters' memory, then given to the backend. */
static int lists_new(lacos_optim *o) {
  int64_t nwork = 0, nchunks = 0;
  for (int i = 0; i < o->nparams; i++) {
    const optim_param *q = &o->params[i];
    nwork += q->eight_bit ? q->nblocks : (q->n + F32_ITEM - 1) / F32_ITEM;
    nchunks += (q->n + F32_ITEM - 1) / F32_ITEM;
  }
  optim_item *items = NULL, *chunks = NULL;
  int s = meta_calloc(&items, (size_t)nwork, sizeof *items, "optimizer work list");
  if (!s) s = meta_calloc(&chunks, (size_t)nchunks, sizeof *chunks, "optimizer norm chunks");
  if (!s) s = meta_calloc(&o->partials, (size_t)(nchunks ? nchunks : 1), sizeof *o->partials, "gradient norm partials");
  if (s) { mem_free(items); mem_free(chunks); return s; }
  int64_t w = 0, c = 0;
  for (int i = 0; i < o->nparams; i++) {
    const optim_param *q = &o->params[i];
    float *p = q->p->data;
    const float *g = q->g->data;
    int64_t item = q->eight_bit ? BLOCK : F32_ITEM;
    for (int64_t st = 0; st < q->n; st += item)
      items[w++] = (optim_item){ p + st, g + st, q->off + st, q->eight_bit ? q->boff + st / BLOCK : 0,
                                 (int32_t)(q->n - st < item ? q->n - st : item), q->eight_bit };
    for (int64_t st = 0; st < q->n; st += F32_ITEM)
      chunks[c++] = (optim_item){ p + st, g + st, 0, 0, (int32_t)(q->n - st < F32_ITEM ? q->n - st : F32_ITEM), 0 };
  }
  const backend *be = o->be;
  s = workspace_reserve(be, &o->ws, be->optim_scratch(nwork > nchunks ? nwork : nchunks), "optimizer scratch");
  if (!s && be->host_memory) {
    o->items = items; o->nitems = nwork;
    o->chunks = chunks; o->nchunks = nchunks;
    return LACOS_OK;
  }
  size_t ib = sizeof(optim_item) * (size_t)nwork, cb = sizeof(optim_item) * (size_t)nchunks;
  if (!s && !(s = be->alloc((void **)&o->items, ib, "optimizer work list"))) {
    o->nitems = nwork;
    s = be->upload(o->items, items, ib);
  }
  if (!s && !(s = be->alloc((void **)&o->chunks, cb, "optimizer norm chunks"))) {
    o->nchunks = nchunks;
    s = be->upload(o->chunks, chunks, cb);
  }
  mem_free(items);
  mem_free(chunks);
  return s;
}

static int state_names_new(lacos_optim *o) {
  int nstate = 1;
  for (int i = 0; i < o->nparams; i++) nstate += o->params[i].eight_bit ? 4 : 2;
  TRY(meta_calloc(&o->state_names, (size_t)nstate, sizeof *o->state_names, "optimizer state names"));
  o->nstate = nstate;
  int k = 0;
  for (int i = 0; i < o->nparams; i++) {
    const optim_param *q = &o->params[i];
    for (int j = 0; j < (q->eight_bit ? 4 : 2); j++) {
      size_t len = strlen(q->name) + strlen(state_suffix[j]) + 1;
      TRY(meta_alloc(&o->state_names[k], len, "optimizer state names"));
      snprintf(o->state_names[k++], len, "%s%s", q->name, state_suffix[j]);
    }
  }
  return meta_strdup(&o->state_names[k], "step", "optimizer state names");
}

/* Allocates the state and the work list once the parameter set is final. */
static int optim_ready(lacos_optim *o) {
  if (o->ready) return LACOS_OK;
  if (o->nparams == 0) return fail(LACOS_ESTATE, "the optimizer has no parameters (add them with lacos_optim_add)");
  int dev = o->device;
  int s = backend_get(&o->be, dev);
  if (!s) s = state_names_new(o);
  if (!s) s = state_alloc(&o->codes1, LACOS_U8, dev, o->n8, "first-moment codes");
  if (!s) s = state_alloc(&o->codes2, LACOS_U8, dev, o->n8, "second-moment codes");
  if (!s) s = state_alloc(&o->absmax, LACOS_F32, dev, 2 * o->nblocks, "block absmax");
  if (!s) s = state_alloc(&o->moments, LACOS_F32, dev, 2 * o->nf, "f32 moments");
  if (!s) s = lists_new(o);
  if (s) {
    lists_free(o);
    lacos_tensor_free(o->codes1); lacos_tensor_free(o->codes2);
    lacos_tensor_free(o->absmax); lacos_tensor_free(o->moments);
    o->codes1 = o->codes2 = o->absmax = o->moments = NULL;
    for (int i = 0; o->state_names && i < o->nstate; i++) mem_free(o->state_names[i]);
    mem_free(o->state_names);
    o->state_names = NULL;
    o->nstate = 0;
    return s;
  }
  o->ready = 1;
  return LACOS_OK;
}

/* ---- the update ---- */

/* The step's scalars (math/optim_math.h's optim_consts): for the 8-bit and
   32-bit kernels float-rounded inputs, as bitsandbytes passes them; for
   AdamW, Python doubles rounded where they meet float tensors. */
static void consts_init(optim_consts *k, const lacos_optim_config *c, double lr, int t) {
  float lrf = (float)lr, b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps, wd = (float)c->weight_decay;
  float c1 = (float)(1.0 - pow((double)b1, t));
  float c2 = (float)sqrt(1.0 - pow((double)b2, t));
  k->b1 = b1;
  k->b2 = b2;
  k->omb1 = 1.0f - b1;
  k->omb2 = 1.0f - b2;
  k->step_size = (-lrf * c2) / c1;
  k->eps_c2 = c2 * eps;
  k->decay = 1.0f - lrf * wd;
  k->decay_on = wd > 0.0f;
  double bc1 = 1.0 - pow(c->beta1, t), bc2 = 1.0 - pow(c->beta2, t);
  k->w_b2 = (float)c->beta2;
  k->w_omb1 = (float)(1.0 - c->beta1);
  k->w_omb2 = (float)(1.0 - c->beta2);
  k->w_decay = (float)(1.0 - lr * c->weight_decay);
  k->w_decay_on = c->weight_decay != 0;
  k->w_neg_step = (float)(-(lr / bc1));
  k->w_bc2_sqrt = (float)sqrt(bc2);
  k->w_eps = (float)c->eps;
}

static scratch ws_of(const lacos_optim *o) { return (scratch){ o->ws.p, o->ws.bytes }; }

int lacos_optim_step(lacos_optim *o, double lr) {
  if (!o) return fail(LACOS_EINVAL, "optimizer is missing");
  if (isnan(lr) || isinf(lr)) return fail(LACOS_EINVAL, "optimizer step: learning rate %g is not finite", lr);
  if (lr < 0) lr = o->cfg.lr;
  if (o->step == INT32_MAX) return fail(LACOS_ELIMIT, "optimizer step count would overflow");
  TRY(optim_ready(o));
  int t = o->step + 1;
  optim_consts k;
  consts_init(&k, &o->cfg, lr, t);
  uint8_t *codes1 = o->codes1 ? o->codes1->data : NULL, *codes2 = o->codes2 ? o->codes2->data : NULL;
  float *absmax1 = o->absmax ? o->absmax->data : NULL, *absmax2 = absmax1 ? absmax1 + o->nblocks : NULL;
  float *mom_m = o->moments ? o->moments->data : NULL, *mom_v = mom_m ? mom_m + o->nf : NULL;
  double bad = 0;
  TRY(o->be->optim_step(o->items, o->nitems, &k, o->cfg.kind, codes1, codes2, absmax1, absmax2, mom_m, mom_v, ws_of(o),
                        &bad));
  o->nonfinite = bad;
  o->step = t;
  return LACOS_OK;
}

int lacos_optim_zero_grad(lacos_optim *o) {
  if (!o) return fail(LACOS_EINVAL, "optimizer is missing");
  if (o->nparams == 0) return LACOS_OK;
  const backend *be;
  TRY(backend_get(&be, o->device));
  for (int i = 0; i < o->nparams; i++) TRY(be->zero(o->params[i].g->data, (size_t)o->params[i].n * sizeof(float)));
  return LACOS_OK;
}

/* Sum of squares per fixed chunk, then the chunks in order: the same bits
   whatever the thread count or device. */
int lacos_optim_grad_norm(lacos_optim *o, double *norm) {
  if (!o || !norm) return fail(LACOS_EINVAL, "optimizer or norm is missing");
  *norm = 0;
  TRY(optim_ready(o));
  TRY(o->be->optim_sumsq(o->partials, o->chunks, o->nchunks, ws_of(o)));
  double total = 0;
  for (int64_t w = 0; w < o->nchunks; w++) total += o->partials[w];
  *norm = sqrt(total);
  return LACOS_OK;
}

int lacos_optim_clip_grad_norm(lacos_optim *o, double max_norm, double *norm_before) {
  if (!o || !norm_before) return fail(LACOS_EINVAL, "optimizer or norm is missing");
  if (!(max_norm > 0))
    return fail(LACOS_EINVAL, "clip_grad_norm: max_norm must be a positive number (inf only measures the norm), got %g",
                max_norm);
  TRY(lacos_optim_grad_norm(o, norm_before));
  double norm = *norm_before;
  if (!isfinite(norm)) return LACOS_OK;
  double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return LACOS_OK;
  float cf = (float)coef;
  for (int i = 0; i < o->nparams; i++) TRY(o->be->scale(o->params[i].g->data, o->params[i].n, cf));
  return LACOS_OK;
}

/* ---- state export and import ---- */

typedef struct state_ref {
  int kind;             /* 0..3 = state1, state2, absmax1, absmax2; 4 = step */
  optim_param *q;
} state_ref;

static state_ref state_at(lacos_optim *o, int i) {
  int k = 0;
  for (int j = 0; j < o->nparams; j++) {
    int per = o->params[j].eight_bit ? 4 : 2;
    if (i < k + per) return (state_ref){ i - k, &o->params[j] };
    k += per;
  }
  return (state_ref){ 4, NULL };
}

int lacos_optim_state_count(lacos_optim *o, int *count) {
  if (!o || !count) return fail(LACOS_EINVAL, "optimizer or count is missing");
  *count = 0;
  TRY(optim_ready(o));
  *count = o->nstate;
  return LACOS_OK;
}

const char *lacos_optim_state_name(lacos_optim *o, int i) {
  if (!o || optim_ready(o) || i < 0 || i >= o->nstate) return NULL;
  return o->state_names[i];
}

/* A view of [off, off+n) of a flat state tensor, in the given shape. */
static int flat_view(lacos_tensor **out, lacos_tensor *flat, int64_t off, int64_t n, int ndim, const int64_t *shape) {
  lacos_tensor *s;
  TRY(lacos_tensor_slice(&s, flat, 0, off, off + n, 1));
  int st = lacos_tensor_view(out, s, ndim, shape);
  lacos_tensor_free(s);
  return st;
}

int lacos_optim_state_tensor(lacos_tensor **out, lacos_optim *o, int i) {
  *out = NULL;
  if (!o) return fail(LACOS_EINVAL, "optimizer is missing");
  TRY(optim_ready(o));
  if (i < 0 || i >= o->nstate) return fail(LACOS_EINVAL, "optimizer state index %d out of range (0..%d)", i, o->nstate - 1);
  state_ref r = state_at(o, i);
  if (r.kind == 4) {
    int64_t one = 1, step = o->step;
    return lacos_tensor_from_buffer(out, LACOS_I64, 1, &one, &step, LACOS_I64);
  }
  const optim_param *q = r.q;
  if (q->eight_bit) {
    switch (r.kind) {
    case 0: return flat_view(out, o->codes1, q->off, q->n, q->p->ndim, q->p->shape);
    case 1: return flat_view(out, o->codes2, q->off, q->n, q->p->ndim, q->p->shape);
    case 2: return flat_view(out, o->absmax, q->boff, q->nblocks, 1, &q->nblocks);
    default: return flat_view(out, o->absmax, o->nblocks + q->boff, q->nblocks, 1, &q->nblocks);
    }
  }
  return flat_view(out, o->moments, (r.kind == 0 ? 0 : o->nf) + q->off, q->n, q->p->ndim, q->p->shape);
}

static int check_values(const lacos_tensor *t, const char *name, bool nonneg) {
  int64_t n = lacos_tensor_numel(t);
  for (int64_t j = 0; j < n; j++) {
    int64_t idx[4] = { 0, 0, 0, 0 }, rest = j;
    for (int d = t->ndim - 1; d >= 0; d--) { idx[d] = rest % t->shape[d]; rest /= t->shape[d]; }
    const char *base = t->data;
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    double x = dtype_load(base, off, t->dtype);
    if (!isfinite(x)) return fail(LACOS_ENUMERIC, "optimizer state %s: element %lld is %g", name, (long long)j, x);
    if (nonneg && x < 0) return fail(LACOS_ENUMERIC, "optimizer state %s: element %lld is negative (%g)", name, (long long)j, x);
  }
  return LACOS_OK;
}

/* dtype and shape an entry must have */
static void state_expect(state_ref r, int *dtype, int *ndim, const int64_t **shape) {
  static const int64_t one = 1;
  if (r.kind == 4) { *dtype = LACOS_I64; *ndim = 1; *shape = &one; return; }
  if (r.q->eight_bit && r.kind >= 2) { *dtype = LACOS_F32; *ndim = 1; *shape = &r.q->nblocks; return; }
  *dtype = r.q->eight_bit ? LACOS_U8 : LACOS_F32;
  *ndim = r.q->p->ndim;
  *shape = r.q->p->shape;
}

static int state_entry_check(lacos_optim *o, int i, const lacos_tensor *t, int64_t *step) {
  const char *name = o->state_names[i];
  state_ref r = state_at(o, i);
  int dtype, ndim;
  const int64_t *shape;
  state_expect(r, &dtype, &ndim, &shape);
  TRY(tensor_check(t, name, dtype, -1));
  if (t->device != LACOS_CPU) return fail(LACOS_EDEVICE, "optimizer state %s: expected a CPU tensor", name);
  bool same = t->ndim == ndim;
  for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
  if (!same) {
    char got[64], want[64];
    tensor_shape_str(t, got, sizeof got);
    int len = snprintf(want, sizeof want, "(");
    for (int d = 0; d < ndim; d++) len += snprintf(want + len, sizeof want - (size_t)len, d ? ", %lld" : "%lld", (long long)shape[d]);
    snprintf(want + len, sizeof want - (size_t)len, ")");
    return fail(LACOS_EINVAL, "optimizer state %s: shape %s, expected %s", name, got, want);
  }
  if (r.kind == 4) {
    *step = (int64_t)dtype_load(t->data, 0, LACOS_I64);
    if (*step < 0 || *step >= INT32_MAX) return fail(LACOS_EINVAL, "optimizer state step: %lld is out of range", (long long)*step);
    return LACOS_OK;
  }
  if (dtype == LACOS_F32) return check_values(t, name, r.kind != 0);   /* m may be negative; v, absmax not */
  return LACOS_OK;
}

int lacos_optim_state_load(lacos_optim *o, int n, const char *const *names, lacos_tensor *const *tensors) {
  if (!o) return fail(LACOS_EINVAL, "optimizer is missing");
  if (n < 0 || (n > 0 && (!names || !tensors))) return fail(LACOS_EINVAL, "optimizer state: bad entry list");
  TRY(optim_ready(o));
  int *src;
  TRY(meta_alloc(&src, (size_t)o->nstate * sizeof *src, "optimizer state entries"));
  for (int i = 0; i < o->nstate; i++) src[i] = -1;
  int st = LACOS_OK;
  /* Validate everything before touching the state: first the names... */
  for (int k = 0; k < n && !st; k++) {
    if (!names[k]) { st = fail(LACOS_EINVAL, "optimizer state: entry %d has no name", k); break; }
    int i = 0;
    while (i < o->nstate && strcmp(o->state_names[i], names[k])) i++;
    if (i == o->nstate)
      st = fail(LACOS_EINVAL, "optimizer state: unknown entry '%s' (this optimizer expects %d entries, e.g. '%s')",
                names[k], o->nstate, o->state_names[0]);
    else if (src[i] >= 0)
      st = fail(LACOS_EINVAL, "optimizer state: entry '%s' given twice", names[k]);
    else
      src[i] = k;
  }
  for (int i = 0; i < o->nstate && !st; i++)
    if (src[i] < 0) st = fail(LACOS_ENOTFOUND, "optimizer state: entry '%s' is missing", o->state_names[i]);
  /* ...then each tensor's dtype, shape and values. */
  int64_t step = 0;
  for (int i = 0; i < o->nstate && !st; i++) st = state_entry_check(o, i, tensors[src[i]], &step);
  for (int i = 0; i < o->nstate && !st; i++) {
    if (state_at(o, i).kind == 4) continue;
    lacos_tensor *dst;
    if ((st = lacos_optim_state_tensor(&dst, o, i))) break;
    if (dst->data != tensors[src[i]]->data) st = lacos_tensor_copy(dst, tensors[src[i]]);
    lacos_tensor_free(dst);
  }
  if (!st) o->step = (int)step;
  mem_free(src);
  return st;
}

int lacos_optim_moments(lacos_tensor **m, lacos_tensor **v, lacos_optim *o, const char *name) {
  *m = *v = NULL;
  if (!o || !name) return fail(LACOS_EINVAL, "optimizer or parameter name is missing");
  optim_param *q = param_named(o, name);
  if (!q) return fail(LACOS_ENOTFOUND, "optimizer has no parameter '%s'", name);
  TRY(optim_ready(o));
  TRY(lacos_tensor_empty(m, LACOS_F32, LACOS_CPU, q->p->ndim, q->p->shape));
  int st = lacos_tensor_empty(v, LACOS_F32, LACOS_CPU, q->p->ndim, q->p->shape);
  if (st) { lacos_tensor_free(*m); *m = NULL; return st; }
  if (q->eight_bit) {
    const float *a1 = (const float *)o->absmax->data + q->boff, *a2 = (const float *)o->absmax->data + o->nblocks + q->boff;
    const uint8_t *c1 = (const uint8_t *)o->codes1->data + q->off, *c2 = (const uint8_t *)o->codes2->data + q->off;
    /* This parameter's codes and absmax come to the host first. */
    size_t cb = (size_t)q->n, ab = sizeof(float) * (size_t)q->nblocks;
    float *h;   /* absmax first: aligned */
    st = mem_alloc(&h, 2 * ab + 2 * cb, "optimizer state (host copy)");
    if (!st) {
      uint8_t *hc = (uint8_t *)(h + 2 * q->nblocks);
      st = o->be->download(h, a1, ab);
      if (!st) st = o->be->download(h + q->nblocks, a2, ab);
      if (!st) st = o->be->download(hc, c1, cb);
      if (!st) st = o->be->download(hc + cb, c2, cb);
      if (!st) {
        dequantize_blockwise((*m)->data, hc, h, q->n, 1, BLOCK);
        dequantize_blockwise((*v)->data, hc + cb, h + q->nblocks, q->n, 0, BLOCK);
      }
      mem_free(h);
    }
  } else {
    const float *mm = (const float *)o->moments->data + q->off;
    size_t bytes = (size_t)q->n * sizeof(float);
    st = o->be->download((*m)->data, mm, bytes);
    if (!st) st = o->be->download((*v)->data, mm + o->nf, bytes);
  }
  if (st) { lacos_tensor_free(*m); lacos_tensor_free(*v); *m = *v = NULL; }
  return st;
}
