/* int8_matmul.c: the int8 products of linear.c through oneDNN's matmul
   primitive, with the weight codes packed once at model load.

   oneDNN's matmul (brgemm kernels: AVX-512 VNNI vpdpbusd, or AMX) reads its
   weight operand B (K,N) fastest in a blocked layout, BA16a64b4a: 64×64
   tiles, N-block outermost, and inside a tile [k/4][n][k%4] so that one
   32-bit lane holds the 4 consecutive k of one n that a VNNI instruction
   multiplies. The layout is asked of oneDNN (the weights memory descriptor
   of a primitive created with format "any"), checked to be exactly that,
   and the codes are rewritten into it in place: the tiles of one N-block
   cover the same bytes as that block's 64 plain rows, so packing needs one
   block of scratch, not a second copy of the model.

   VNNI multiplies u8 by s8. Activations are quantised to the usual s8 codes
   plus 128 (u8, exact), and the extra 128·Σ_k W[n,k] of every output column
   is subtracted afterwards, an offset per output computed here once per
   weight; the products stay exact int32, as with the plain GEMM.

   The input gradient needs the transposed product, B = W (out,in). Its
   packed layout is the same tiles transposed (a 4×4 byte transpose per 16
   bytes); it is rebuilt into scratch on each call (training only) rather
   than kept, so the model holds one copy of its weights.

   Primitives are cached per shape (M, K, N, layout, thread count) — the brgemm
   primitive of oneDNN 2.x takes no runtime dimensions and bakes the thread
   count in — and their scratchpad comes from the caller's int8_scratch, so
   the engine's allocator counts it. */
#include "layers.h"
#include <pthread.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <oneapi/dnnl/dnnl.h>

struct int8_packed {
  dnnl_memory_desc_t fwd;   /* B = Wᵀ (in, out): the layout of l->q after packing */
  dnnl_memory_desc_t bwd;   /* B = W (out, in): the layout the input gradient rebuilds */
  int32_t *off_fwd;         /* (out) 128·Σ_k W[n,k]: what u8 activation codes add to output n */
  int32_t *off_bwd;         /* (in)  128·Σ_n W[n,k]: the same for the input gradient's column k */
  size_t bytes;             /* this struct and the two sums, one allocation */
};

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

static int engine_get(void) {
  pthread_once(&engine_once, engine_init);
  if (engine_status != dnnl_success) return fail(LACOS_EUNSUPPORTED, "oneDNN CPU engine unavailable (status %d)", engine_status);
  return LACOS_OK;
}

/* ------------------------------------------------------------- layouts */

enum { TILE = 64, TILE_BYTES = TILE * TILE };

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

/* Is md exactly BA16a64b4a over (K, N), both multiples of 64, no padding,
   no extra (compensation) data? Then tile (kb, nb) starts at
   kb·strides[0] + nb·strides[1] and holds element (k, n) at
   (k%64/4)·256 + (n%64)·4 + k%4. */
static bool is_vnni_tiles(const dnnl_memory_desc_t *md, int64_t K, int64_t N) {
  if (md->format_kind != dnnl_blocked || md->ndims != 2 || md->dims[0] != K || md->dims[1] != N) return false;
  if (K % TILE || N % TILE || md->offset0 != 0 || md->extra.flags != 0) return false;
  const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
  return b->inner_nblks == 3 && b->inner_blks[0] == 16 && b->inner_idxs[0] == 0 && b->inner_blks[1] == 64 &&
         b->inner_idxs[1] == 1 && b->inner_blks[2] == 4 && b->inner_idxs[2] == 0 && b->strides[0] == TILE_BYTES &&
         b->strides[1] == TILE * K && dnnl_memory_desc_get_size(md) == (size_t)(K * N);
}

static inline size_t tile_offset(int k, int n) { return (size_t)((k % TILE) / 4 * 256 + (n % TILE) * 4 + k % 4); }

/* The layout oneDNN's int8 matmul wants for B (K,N) when free to choose,
   if it is the VNNI tiles (brgemm kernels); false on CPUs without them
   (before VNNI, or ONEDNN_MAX_CPU_ISA below it), where linear.c keeps the
   plain GEMM. */
static bool packed_layout(dnnl_memory_desc_t *out, int64_t K, int64_t N) {
  if (engine_get() != LACOS_OK) { lacos_error_clear(); return false; }
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

bool int8_packing_available(int in, int out) {
  dnnl_memory_desc_t f, b;
  return packed_layout(&f, in, out) && packed_layout(&b, out, in);
}

/* ------------------------------------------------------------- packing */

static int thread_index(void) {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int int8_pack(linear *l) {
  if (l->kind != LINEAR_INT8 || l->packed) return LACOS_OK;
  int K = l->in, N = l->out;
  dnnl_memory_desc_t fwd, bwd;
  if (!packed_layout(&fwd, K, N) || !packed_layout(&bwd, N, K)) return LACOS_OK;   /* plain GEMM */
  size_t bytes = sizeof(int8_packed) + sizeof(int32_t) * ((size_t)N + (size_t)K);
  int8_packed *p = mem_alloc(bytes, LACOS_CPU, "packed int8 weights");
  if (!p) return lacos_last_status();
  p->fwd = fwd;
  p->bwd = bwd;
  p->off_fwd = (int32_t *)(p + 1);
  p->off_bwd = p->off_fwd + N;
  p->bytes = bytes;
  /* N-block by N-block, in place: its 64 rows → its K/64 tiles, through
     one block of scratch per thread (allocated before any block moves) */
  size_t block = (size_t)TILE * (size_t)K;
  int threads = threads_count();
  int8_t *scratch = mem_alloc(block * (size_t)threads, LACOS_CPU, "weight packing");
  if (!scratch) { mem_free(p, bytes, LACOS_CPU); return lacos_last_status(); }
  /* the offsets, from the plain rows */
  #pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const int8_t *w = l->q + (int64_t)n * K;
    int32_t s = 0;
    for (int k = 0; k < K; k++) s += w[k];
    p->off_fwd[n] = 128 * s;
  }
  #pragma omp parallel for schedule(static)
  for (int k0 = 0; k0 < K; k0 += TILE) {
    int32_t *s = p->off_bwd + k0;
    for (int k = 0; k < TILE; k++) s[k] = 0;
    for (int n = 0; n < N; n++)
      for (int k = 0; k < TILE; k++) s[k] += l->q[(int64_t)n * K + k0 + k];
    for (int k = 0; k < TILE; k++) s[k] *= 128;
  }
  #pragma omp parallel for schedule(static)
  for (int nb = 0; nb < N / TILE; nb++) {
    int8_t *rows = scratch + block * (size_t)thread_index();
    int8_t *dst = l->q + (size_t)nb * block;
    memcpy(rows, dst, block);
    for (int kb = 0; kb < K / TILE; kb++) {
      int8_t *tile = dst + (size_t)kb * TILE_BYTES;
      for (int n = 0; n < TILE; n++)
        for (int k = 0; k < TILE; k++) tile[tile_offset(k, n)] = rows[(size_t)n * K + kb * TILE + k];
    }
  }
  mem_free(scratch, block * (size_t)threads, LACOS_CPU);
  l->packed = p;
  return LACOS_OK;
}

void int8_pack_free(linear *l) {
  if (!l->packed) return;
  mem_free(l->packed, l->packed->bytes, LACOS_CPU);
  l->packed = NULL;
}

double int8_packed_bytes(const linear *l) { return l->packed ? (double)l->packed->bytes : 0; }

const int32_t *int8_packed_offsets(const linear *l, bool backward) {
  return backward ? l->packed->off_bwd : l->packed->off_fwd;
}

// dst (in) = row r of W's codes · scale, from the packed tiles
void int8_packed_row(float *dst, const linear *l, int r, float scale) {
  int K = l->in;
  const int8_t *blk = l->q + (size_t)(r / TILE) * TILE * K;   /* the N-block of output r */
  for (int k = 0; k < K; k++) dst[k] = blk[(size_t)(k / TILE) * TILE_BYTES + tile_offset(k, r)] * scale;
}

int8_t int8_packed_code(const linear *l, int r, int c) {
  return l->q[(size_t)(r / TILE) * TILE * l->in + (size_t)(c / TILE) * TILE_BYTES + tile_offset(c, r)];
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

static int run(int32_t *c, const uint8_t *a, const int8_t *b, const dnnl_memory_desc_t *b_md, int64_t M, int64_t K,
               int64_t N, int8_scratch *s) {
  TRY(engine_get());
  pthread_mutex_lock(&cache_lock);
  mm_entry *e = NULL;
  int st = primitive_for(&e, M, K, N, b_md);
  if (!st) st = int8_scratch_grow(&s->sp, &s->sp_bytes, e->scratch ? e->scratch : 1, "oneDNN scratchpad");
  if (st) { pthread_mutex_unlock(&cache_lock); return st; }
  dnnl_memory_desc_t a_md, c_md;
  dnnl_dims_t ad = {M, K}, cd = {M, N};
  dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dnnl_u8, dnnl_ab);
  dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_s32, dnnl_ab);
  dnnl_memory_t am = NULL, bm = NULL, cm = NULL, spm = NULL;
  dnnl_status_t ds = dnnl_memory_create(&am, &a_md, engine, (void *)a);
  if (ds == dnnl_success) ds = dnnl_memory_create(&bm, b_md, engine, (void *)b);
  if (ds == dnnl_success) ds = dnnl_memory_create(&cm, &c_md, engine, c);
  if (ds == dnnl_success) ds = dnnl_memory_create(&spm, &e->scratch_md, engine, s->sp);
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

// c (M,out) = a (M,in) u8 · Wᵀ: the activations' codes + 128 against the packed codes
int int8_matmul_forward(int32_t *c, const uint8_t *a, int64_t M, const linear *l, int8_scratch *s) {
  return run(c, a, l->q, &l->packed->fwd, M, l->in, l->out, s);
}

// c (M,in) = a (M,out) u8 · W: the gradients' codes + 128 against W rebuilt in s->qt
int int8_matmul_backward(int32_t *c, const uint8_t *a, int64_t M, const linear *l, int8_scratch *s) {
  TRY(int8_scratch_grow((void **)&s->qt, &s->qt_bytes, (size_t)l->in * (size_t)l->out, "transposed int8 weights"));
  transpose_packed(s->qt, l);
  return run(c, a, s->qt, &l->packed->bwd, M, l->out, l->in, s);
}

/* The scratchpad bytes of the forward and backward products for M rows (for
   the memory planner); 0 where the products are not packed. */
double int8_matmul_scratchpad(int64_t M, int in, int out) {
  if (M <= 0 || !int8_packing_available(in, out)) return 0;
  double most = 0;
  for (int dir = 0; dir < 2; dir++) {
    dnnl_memory_desc_t b;
    int64_t K = dir ? out : in, N = dir ? in : out;
    if (!packed_layout(&b, K, N)) return 0;
    dnnl_primitive_desc_t pd;
    if (matmul_desc(&pd, M, K, N, &b) != dnnl_success) continue;
    double sz = (double)dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    dnnl_primitive_desc_destroy(pd);
    if (sz > most) most = sz;
  }
  return most;
}
