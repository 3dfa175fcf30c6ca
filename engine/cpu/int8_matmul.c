/* int8_matmul.c: the int8 products of linear.c through oneDNN's matmul
   primitive, on weight codes packed once at load (int8_pack.c).

   VNNI multiplies u8 by s8. Activations come quantised to the usual s8
   codes plus 128 (u8, exact), and the extra 128·Σ_k W[n,k] of every output
   column is subtracted by the caller (int8_packed's offsets, computed once
   per weight at packing); the products stay exact int32, as with the plain
   GEMM.

   The input gradient needs the transposed product, B = W (out,in). Its
   packed layout is the same tiles transposed (a 4×4 byte transpose per 16
   bytes); it is rebuilt into the caller's scratch on each call (training
   only) rather than kept, so the model holds one copy of its weights.

   Primitives are cached per shape (M, K, N, layout, thread count): the
   brgemm primitive of oneDNN 2.x takes no runtime dimensions and bakes the
   thread count in. Their scratchpad is the caller's scratch (user
   scratchpad mode), sized by int8_matmul_scratch from the same cached
   primitive; nothing here allocates. */
#include "int8_packed.h"
#include <pthread.h>

/* ------------------------------------------------------------- engine */

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static int engine_status = -1;   /* -1 not tried, else a dnnl_status_t */
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void engine_init(void) {
  dnnl_status_t s = dnnl_engine_create(&engine, dnnl_cpu, 0);
  if (s == dnnl_success) s = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
  engine_status = (int)s;
}

static bool engine_ready(void) {
  pthread_once(&engine_once, engine_init);
  return engine_status == dnnl_success;
}

/* A (M,K) u8 row-major · B (K,N) s8 in layout b → C (M,N) s32 row-major. */
static dnnl_status_t matmul_desc(dnnl_primitive_desc_t *pd, int64_t M, int64_t K, int64_t N,
                                 const dnnl_memory_desc_t *b) {
  dnnl_memory_desc_t a_md, c_md;
  dnnl_dims_t ad = {M, K}, cd = {M, N};
  dnnl_status_t s = dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dnnl_u8, dnnl_ab);
  if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_s32, dnnl_ab);
  dnnl_matmul_desc_t md;
  if (s == dnnl_success) s = dnnl_matmul_desc_init(&md, &a_md, b, NULL, &c_md);
  dnnl_primitive_attr_t attr = NULL;
  if (s == dnnl_success) s = dnnl_primitive_attr_create(&attr);
  if (s == dnnl_success) s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  if (s == dnnl_success) s = dnnl_primitive_desc_create(pd, &md, attr, engine, NULL);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return s;
}

/* ------------------------------------------------------------- layouts */

/* Is md exactly BA16a64b4a over (K, N), both multiples of 64, no padding,
   no extra (compensation) data? */
static bool is_vnni_tiles(const dnnl_memory_desc_t *md, int64_t K, int64_t N) {
  if (md->format_kind != dnnl_blocked || md->ndims != 2 || md->dims[0] != K || md->dims[1] != N) return false;
  if (K % TILE || N % TILE || md->offset0 != 0 || md->extra.flags != 0) return false;
  const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
  return b->inner_nblks == 3 && b->inner_blks[0] == 16 && b->inner_idxs[0] == 0 && b->inner_blks[1] == 64 &&
         b->inner_idxs[1] == 1 && b->inner_blks[2] == 4 && b->inner_idxs[2] == 0 && b->strides[0] == TILE_BYTES &&
         b->strides[1] == TILE * K && dnnl_memory_desc_get_size(md) == (size_t)(K * N);
}

/* The answers per (K, N): asking oneDNN means creating a primitive
   descriptor, too slow for the scratch queries of every batch. */
typedef struct layout_entry { int64_t K, N; bool ok; dnnl_memory_desc_t md; } layout_entry;
enum { LAYOUTS = 64 };
static layout_entry layouts[LAYOUTS];
static int nlayouts;
static pthread_mutex_t layout_lock = PTHREAD_MUTEX_INITIALIZER;

static bool ask_layout(dnnl_memory_desc_t *out, int64_t K, int64_t N) {
  if (!engine_ready() || K % TILE || N % TILE) return false;
  dnnl_memory_desc_t any;
  dnnl_dims_t bd = {K, N};
  if (dnnl_memory_desc_init_by_tag(&any, 2, bd, dnnl_s8, dnnl_format_tag_any) != dnnl_success) return false;
  dnnl_primitive_desc_t pd;
  if (matmul_desc(&pd, 256, K, N, &any) != dnnl_success) return false;
  const char *impl = "";
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  *out = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  bool ok = strncmp(impl, "brg", 3) == 0 && is_vnni_tiles(out, K, N);
  dnnl_primitive_desc_destroy(pd);
  return ok;
}

bool int8_packed_layout(dnnl_memory_desc_t *out, int64_t K, int64_t N) {
  pthread_mutex_lock(&layout_lock);
  for (int i = 0; i < nlayouts; i++)
    if (layouts[i].K == K && layouts[i].N == N) {
      bool ok = layouts[i].ok;
      *out = layouts[i].md;
      pthread_mutex_unlock(&layout_lock);
      return ok;
    }
  layout_entry e = {.K = K, .N = N};
  e.ok = ask_layout(&e.md, K, N);
  layouts[nlayouts < LAYOUTS ? nlayouts++ : (int)((K + N) % LAYOUTS)] = e;   /* full: replace one */
  *out = e.md;
  pthread_mutex_unlock(&layout_lock);
  return e.ok;
}

bool int8_packing_available(int in, int out) {
  dnnl_memory_desc_t f, b;
  return int8_packed_layout(&f, in, out) && int8_packed_layout(&b, out, in);
}

/* ------------------------------------------------------------- primitives */

typedef struct mm_entry {
  int64_t M, K, N;
  dnnl_memory_desc_t b;
  int threads;
  dnnl_primitive_t prim;
  dnnl_memory_desc_t scratch_md;
  size_t scratch;
  uint64_t used;
} mm_entry;

enum { CACHE = 256 };
static mm_entry cache[CACHE];
static uint64_t cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* The primitive for (M,K,N) on B in layout b; cache_lock held. */
static int primitive_for(mm_entry **out, int64_t M, int64_t K, int64_t N, const dnnl_memory_desc_t *b) {
  if (!engine_ready()) return fail(LACOS_EUNSUPPORTED, "oneDNN CPU engine unavailable (status %d)", engine_status);
  int threads = threads_count();
  mm_entry *lru = &cache[0];
  for (int i = 0; i < CACHE; i++) {
    mm_entry *e = &cache[i];
    if (e->prim && e->M == M && e->K == K && e->N == N && e->threads == threads && dnnl_memory_desc_equal(&e->b, b)) {
      e->used = ++cache_clock;
      *out = e;
      return LACOS_OK;
    }
    if (!e->prim || (lru->prim && e->used < lru->used)) lru = e;
  }
  dnnl_primitive_desc_t pd;
  dnnl_status_t s = matmul_desc(&pd, M, K, N, b);
  if (s != dnnl_success) return fail(LACOS_EUNSUPPORTED, "oneDNN int8 matmul %lldx%lldx%lld: no implementation (status %d)",
                                     (long long)M, (long long)K, (long long)N, (int)s);
  dnnl_primitive_t prim;
  s = dnnl_primitive_create(&prim, pd);
  dnnl_memory_desc_t scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  dnnl_primitive_desc_destroy(pd);
  if (s != dnnl_success) return fail(LACOS_EUNSUPPORTED, "oneDNN int8 matmul %lldx%lldx%lld: creation failed (status %d)",
                                     (long long)M, (long long)K, (long long)N, (int)s);
  if (lru->prim) dnnl_primitive_destroy(lru->prim);
  *lru = (mm_entry){.M = M, .K = K, .N = N, .b = *b, .threads = threads, .prim = prim, .scratch_md = scratch_md,
                    .scratch = dnnl_memory_desc_get_size(&scratch_md), .used = ++cache_clock};
  *out = lru;
  return LACOS_OK;
}

/* The bytes of oneDNN's scratchpad for (M,K,N) on layout b, 0 on failure
   (the product itself then reports why). */
static size_t scratchpad_of(int64_t M, int64_t K, int64_t N, const dnnl_memory_desc_t *b) {
  pthread_mutex_lock(&cache_lock);
  mm_entry *e = NULL;
  size_t bytes = 0;
  if (primitive_for(&e, M, K, N, b) == LACOS_OK) bytes = e->scratch;
  else lacos_error_clear();
  pthread_mutex_unlock(&cache_lock);
  return bytes;
}

static size_t piece(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

static int run(int32_t *c, const uint8_t *a, const int8_t *b, const dnnl_memory_desc_t *b_md, int64_t M, int64_t K,
               int64_t N, scratch ws) {
  pthread_mutex_lock(&cache_lock);
  mm_entry *e = NULL;
  int st = primitive_for(&e, M, K, N, b_md);
  if (!st && e->scratch > ws.bytes)
    st = fail(LACOS_ELIMIT, "int8 matmul %lldx%lldx%lld: oneDNN's scratchpad of %zu bytes does not fit the %zu given",
              (long long)M, (long long)K, (long long)N, e->scratch, ws.bytes);
  if (st) { pthread_mutex_unlock(&cache_lock); return st; }
  dnnl_memory_desc_t a_md, c_md;
  dnnl_dims_t ad = {M, K}, cd = {M, N};
  dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dnnl_u8, dnnl_ab);
  dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_s32, dnnl_ab);
  dnnl_memory_t am = NULL, bm = NULL, cm = NULL, spm = NULL;
  dnnl_status_t ds = dnnl_memory_create(&am, &a_md, engine, (void *)a);
  if (ds == dnnl_success) ds = dnnl_memory_create(&bm, b_md, engine, (void *)b);
  if (ds == dnnl_success) ds = dnnl_memory_create(&cm, &c_md, engine, c);
  if (ds == dnnl_success) ds = dnnl_memory_create(&spm, &e->scratch_md, engine, ws.p);
  if (ds == dnnl_success) {
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, spm}};
    ds = dnnl_primitive_execute(e->prim, stream, e->scratch ? 4 : 3, args);
    if (ds == dnnl_success) ds = dnnl_stream_wait(stream);
  }
  dnnl_memory_destroy(am);
  dnnl_memory_destroy(bm);
  dnnl_memory_destroy(cm);
  dnnl_memory_destroy(spm);
  pthread_mutex_unlock(&cache_lock);
  if (ds != dnnl_success) return fail(LACOS_EUNSUPPORTED, "oneDNN int8 matmul %lldx%lldx%lld failed (status %d)",
                                      (long long)M, (long long)K, (long long)N, (int)ds);
  return LACOS_OK;
}

// wt: the packed layout of B = W (out, in) for the input gradient, from l's packed Wᵀ
static void transpose_packed(int8_t *wt, const linear *l) {
  int K = l->in, N = l->out;
  /* Forward tile (kb over in, nb over out) holds [i/4][o][i%4]; backward
     tile (kb' = nb, nb' = kb) holds [o/4][i][o%4]. A 16-byte run of the
     first (i/4 = gi, o = 4go..4go+3) is a 4×4 byte matrix [o%4][i%4]; its
     transpose is the run of the second at (o/4 = go, i = 4gi..4gi+3). */
  #pragma omp parallel for collapse(2) schedule(static)
  for (int nb = 0; nb < N / TILE; nb++)
    for (int kb = 0; kb < K / TILE; kb++) {
      const int8_t *src = l->q + (size_t)nb * TILE * K + (size_t)kb * TILE_BYTES;
      int8_t *dst = wt + (size_t)kb * TILE * N + (size_t)nb * TILE_BYTES;
      for (int gi = 0; gi < TILE / 4; gi++)
        for (int go = 0; go < TILE / 4; go++) {
          const int8_t *s = src + gi * 256 + go * 16;
          int8_t *d = dst + go * 256 + gi * 16;
          for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) d[c * 4 + r] = s[r * 4 + c];
        }
    }
}

// c (M,out) = a (M,in) u8 · Wᵀ: the activations' codes + 128 against the packed codes
int int8_matmul_forward(int32_t *c, const uint8_t *a, int64_t M, const linear *l, scratch ws) {
  return run(c, a, l->q, &l->packed->fwd, M, l->in, l->out, ws);
}

// c (M,in) = a (M,out) u8 · W: the gradients' codes + 128 against W rebuilt at the start of ws
int int8_matmul_backward(int32_t *c, const uint8_t *a, int64_t M, const linear *l, scratch ws) {
  size_t wt_bytes = piece((size_t)l->in * (size_t)l->out);
  if (ws.bytes < wt_bytes)
    return fail(LACOS_ELIMIT, "int8 matmul: the transposed weights (%zu bytes) do not fit the %zu bytes of scratch given",
                wt_bytes, ws.bytes);
  int8_t *wt = ws.p;
  transpose_packed(wt, l);
  return run(c, a, wt, &l->packed->bwd, M, l->out, l->in, (scratch){ (char *)ws.p + wt_bytes, ws.bytes - wt_bytes });
}

size_t int8_matmul_scratch(int64_t M, int in, int out, bool backward) {
  dnnl_memory_desc_t f, b;
  if (M <= 0 || !int8_packed_layout(&f, in, out) || !int8_packed_layout(&b, out, in)) return 0;
  if (!backward) return piece(scratchpad_of(M, in, out, &f));
  return piece((size_t)in * (size_t)out) + piece(scratchpad_of(M, out, in, &b));
}
