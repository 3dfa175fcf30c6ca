/* int8_matmul.c: the int8 products of linear.c through oneDNN's matmul
   primitive, on weight codes packed once at load (int8_pack.c).

   VNNI multiplies u8 by s8. Activations come quantised to the usual s8
   codes plus 128 (u8, exact), and the extra 128·Σ_k W[n,k] of every output
   column is subtracted by the caller (int8_packed's offsets, computed once
   per weight at packing); the products stay exact int32, as with the plain
   GEMM.

   The input gradient needs the transposed product, B = W (out,in). Its
   packed layout is the same tiles transposed (a 4×4 byte transpose per 16
   bytes); it is rebuilt on each call (training only), whole or a block of
   columns at a time (int8_rows.c), rather than kept, so the model holds
   one copy of its weights.

   Primitives are cached per shape (M, K, N, layout, thread count): the
   brgemm primitive of oneDNN 2.x takes no runtime dimensions and bakes the
   thread count in. linear.c calls the products from inside its own parallel
   regions, one band of rows per thread, where OpenMP's thread count is 1:
   those primitives run on the calling thread alone, concurrently, each
   thread on its own stream and with its own scratchpad (user scratchpad
   mode, the caller's scratch, sized by int8_matmul_scratch from the same
   cached primitive); nothing here allocates per call. */
#include "int8_packed.h"
#include <pthread.h>

/* ------------------------------------------------------------- engine */

static dnnl_engine_t engine;
static int engine_status = -1;   /* -1 not tried, else a dnnl_status_t */
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void engine_init(void) { engine_status = (int)dnnl_engine_create(&engine, dnnl_cpu, 0); }

static bool engine_ready(void) {
  pthread_once(&engine_once, engine_init);
  return engine_status == dnnl_success;
}

/* A stream per OpenMP thread number: a oneDNN stream is not meant to be
   shared by threads executing at the same time. Made on first use, kept
   for the process (a handful of small objects). Each has a lock, held
   while a product runs on it: threads of one parallel region never contend
   for it, but two threads of the program outside any region both count as
   thread 0. */
enum { STREAMS = 256 };
static struct { dnnl_stream_t s; pthread_mutex_t lock; } streams[STREAMS];
static pthread_once_t streams_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t streams_make = PTHREAD_MUTEX_INITIALIZER;

static void streams_init(void) {
  for (int i = 0; i < STREAMS; i++) pthread_mutex_init(&streams[i].lock, NULL);
}

// *t: the slot of this thread's stream, returned locked
static int stream_take(int *t) {
  pthread_once(&streams_once, streams_init);
  int i = omp_get_thread_num();
  if (i >= STREAMS) return fail(LACOS_ELIMIT, "int8 matmul: thread %d is past the %d oneDNN streams kept", i, STREAMS);
  pthread_mutex_lock(&streams_make);
  dnnl_status_t s = streams[i].s ? dnnl_success : dnnl_stream_create(&streams[i].s, engine, dnnl_stream_default_flags);
  pthread_mutex_unlock(&streams_make);
  if (s != dnnl_success) return fail(LACOS_EUNSUPPORTED, "oneDNN stream for thread %d: creation failed (status %d)", i, (int)s);
  pthread_mutex_lock(&streams[i].lock);
  *t = i;
  return LACOS_OK;
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
  dnnl_primitive_t prim;
  dnnl_memory_desc_t scratch_md;
  size_t scratch;
  uint64_t used;
  int busy;   /* products running on it now: never the one replaced */
} mm_entry;

enum { CACHE = 256 };
static mm_entry cache[CACHE];
static uint64_t cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* oneDNN sizes a primitive's work split by OpenMP's thread count when it is
   created; every product here runs on one thread (linear.c gives each
   thread its own rows), so they are created with a count of 1. */
static dnnl_status_t create_one_thread(dnnl_primitive_t *prim, dnnl_memory_desc_t *scratch_md, int64_t M, int64_t K,
                                       int64_t N, const dnnl_memory_desc_t *b) {
  int was = omp_get_max_threads();
  if (was != 1) omp_set_num_threads(1);
  dnnl_primitive_desc_t pd;
  dnnl_status_t s = matmul_desc(&pd, M, K, N, b);
  if (s == dnnl_success) {
    s = dnnl_primitive_create(prim, pd);
    *scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    dnnl_primitive_desc_destroy(pd);
  }
  if (was != 1) omp_set_num_threads(was);
  return s;
}

/* The primitive for (M,K,N) on B in layout b; cache_lock held. */
static int primitive_for(mm_entry **out, int64_t M, int64_t K, int64_t N, const dnnl_memory_desc_t *b) {
  if (!engine_ready()) return fail(LACOS_EUNSUPPORTED, "oneDNN CPU engine unavailable (status %d)", engine_status);
  mm_entry *lru = NULL;
  for (int i = 0; i < CACHE; i++) {
    mm_entry *e = &cache[i];
    if (e->prim && e->M == M && e->K == K && e->N == N && dnnl_memory_desc_equal(&e->b, b)) {
      e->used = ++cache_clock;
      *out = e;
      return LACOS_OK;
    }
    if (!e->busy && (!lru || !e->prim || (lru->prim && e->used < lru->used))) lru = e;
  }
  if (!lru) return fail(LACOS_ELIMIT, "int8 matmul: all %d cached oneDNN primitives are in use", CACHE);
  dnnl_primitive_t prim;
  dnnl_memory_desc_t scratch_md;
  dnnl_status_t s = create_one_thread(&prim, &scratch_md, M, K, N, b);
  if (s != dnnl_success) return fail(LACOS_EUNSUPPORTED, "oneDNN int8 matmul %lldx%lldx%lld: no implementation (status %d)",
                                     (long long)M, (long long)K, (long long)N, (int)s);
  if (lru->prim) dnnl_primitive_destroy(lru->prim);
  *lru = (mm_entry){.M = M, .K = K, .N = N, .b = *b, .prim = prim, .scratch_md = scratch_md,
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

/* One product on the calling thread. The cache lock is held only to find
   (or make) the primitive; threads run their products at the same time. */
static int run(int32_t *c, const uint8_t *a, const int8_t *b, const dnnl_memory_desc_t *b_md, int64_t M, int64_t K,
               int64_t N, scratch ws) {
  pthread_mutex_lock(&cache_lock);
  mm_entry *e = NULL;
  int st = primitive_for(&e, M, K, N, b_md);
  if (!st && e->scratch > ws.bytes)
    st = fail(LACOS_ELIMIT, "int8 matmul %lldx%lldx%lld: oneDNN's scratchpad of %zu bytes does not fit the %zu given",
              (long long)M, (long long)K, (long long)N, e->scratch, ws.bytes);
  if (!st) e->busy++;
  pthread_mutex_unlock(&cache_lock);
  if (st) return st;
  int t = 0;
  st = stream_take(&t);
  dnnl_status_t ds = dnnl_success;
  if (!st) {
    dnnl_memory_desc_t a_md, c_md;
    dnnl_dims_t ad = {M, K}, cd = {M, N};
    dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dnnl_u8, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_s32, dnnl_ab);
    dnnl_memory_t am = NULL, bm = NULL, cm = NULL, spm = NULL;
    ds = dnnl_memory_create(&am, &a_md, engine, (void *)a);
    if (ds == dnnl_success) ds = dnnl_memory_create(&bm, b_md, engine, (void *)b);
    if (ds == dnnl_success) ds = dnnl_memory_create(&cm, &c_md, engine, c);
    if (ds == dnnl_success) ds = dnnl_memory_create(&spm, &e->scratch_md, engine, ws.p);
    if (ds == dnnl_success) {
      dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, spm}};
      ds = dnnl_primitive_execute(e->prim, streams[t].s, e->scratch ? 4 : 3, args);
      if (ds == dnnl_success) ds = dnnl_stream_wait(streams[t].s);
    }
    dnnl_memory_destroy(am);
    dnnl_memory_destroy(bm);
    dnnl_memory_destroy(cm);
    dnnl_memory_destroy(spm);
    pthread_mutex_unlock(&streams[t].lock);
  }
  pthread_mutex_lock(&cache_lock);
  e->busy--;
  pthread_mutex_unlock(&cache_lock);
  if (st) return st;
  if (ds != dnnl_success) return fail(LACOS_EUNSUPPORTED, "oneDNN int8 matmul %lldx%lldx%lld failed (status %d)",
                                      (long long)M, (long long)K, (long long)N, (int)ds);
  return LACOS_OK;
}

/* One tile transposed: the forward tile src holds [i/4][o][i%4], the
   backward tile dst [o/4][i][o%4]. A 16-byte run of src (i/4 = gi, o =
   4go..4go+3) is a 4×4 byte matrix [o%4][i%4]; its transpose is the run of
   dst at (o/4 = go, i = 4gi..4gi+3). So a tile is a 16×16 matrix of runs,
   transposed, each run transposed within itself: one byte shuffle per run
   (the same mask in every 16 bytes), and the runs moved as whole 16-byte
   lanes. With AVX-512 four rows of four runs go through registers at once
   (a 4×4 transpose of 128-bit lanes), with AVX2 two of two; without either
   the bytes move one at a time. The bytes are the same either way. */
#if defined(__AVX512BW__) || defined(__AVX2__)
#include <immintrin.h>
#endif

static void tile_transpose(int8_t *restrict dst, const int8_t *restrict src) {
#if defined(__AVX512BW__)
  const __m512i runs = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
  for (int gi = 0; gi < TILE / 4; gi += 4)
    for (int go = 0; go < TILE / 4; go += 4) {
      __m512i r[4];   /* r[a] lane b: the run (gi + a, go + b), transposed */
      for (int a = 0; a < 4; a++)
        r[a] = _mm512_shuffle_epi8(_mm512_loadu_si512(src + (gi + a) * 256 + go * 16), runs);
      __m512i t0 = _mm512_shuffle_i64x2(r[0], r[1], 0x44), t1 = _mm512_shuffle_i64x2(r[0], r[1], 0xEE);
      __m512i t2 = _mm512_shuffle_i64x2(r[2], r[3], 0x44), t3 = _mm512_shuffle_i64x2(r[2], r[3], 0xEE);
      _mm512_storeu_si512(dst + (go + 0) * 256 + gi * 16, _mm512_shuffle_i64x2(t0, t2, 0x88));
      _mm512_storeu_si512(dst + (go + 1) * 256 + gi * 16, _mm512_shuffle_i64x2(t0, t2, 0xDD));
      _mm512_storeu_si512(dst + (go + 2) * 256 + gi * 16, _mm512_shuffle_i64x2(t1, t3, 0x88));
      _mm512_storeu_si512(dst + (go + 3) * 256 + gi * 16, _mm512_shuffle_i64x2(t1, t3, 0xDD));
    }
#elif defined(__AVX2__)
  const __m256i runs = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                        0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (int gi = 0; gi < TILE / 4; gi += 2)
    for (int go = 0; go < TILE / 4; go += 2) {
      __m256i r0 = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(src + gi * 256 + go * 16)), runs);
      __m256i r1 = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(src + (gi + 1) * 256 + go * 16)), runs);
      _mm256_storeu_si256((__m256i *)(dst + go * 256 + gi * 16), _mm256_permute2x128_si256(r0, r1, 0x20));
      _mm256_storeu_si256((__m256i *)(dst + (go + 1) * 256 + gi * 16), _mm256_permute2x128_si256(r0, r1, 0x31));
    }
#else
  for (int gi = 0; gi < TILE / 4; gi++)
    for (int go = 0; go < TILE / 4; go++) {
      const int8_t *s = src + gi * 256 + go * 16;
      int8_t *d = dst + go * 256 + gi * 16;
      for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) d[c * 4 + r] = s[r * 4 + c];
    }
#endif
}

/* wt: columns [n0, n0 + cols) of B = W (out, in), the input gradient's
   weights, in their packed layout (out, cols), from l's packed Wᵀ: forward
   tile (kb over in, nb over out) becomes backward tile (kb' = nb, nb' =
   kb). The columns of a block lie together in the whole matrix's layout
   too: block n0 of it starts at n0·out. */
void int8_matmul_transpose_cols(int8_t *wt, const linear *l, int n0, int cols) {
  int K = l->in, N = l->out;
  for (int kb = n0 / TILE; kb < (n0 + cols) / TILE; kb++)
    for (int nb = 0; nb < N / TILE; nb++)
      tile_transpose(wt + (size_t)(kb - n0 / TILE) * TILE * N + (size_t)nb * TILE_BYTES,
                     l->q + (size_t)nb * TILE * K + (size_t)kb * TILE_BYTES);
}

// c (M,out) = a (M,in) u8 · Wᵀ: the activations' codes + 128 against the packed codes
int int8_matmul_forward(int32_t *c, const uint8_t *a, int64_t M, const linear *l, scratch ws) {
  return run(c, a, l->q, &l->packed->fwd, M, l->in, l->out, ws);
}

// c (M,cols) = a (M,out) u8 · W's columns [n0, n0 + cols): the gradients' codes + 128 against wt, their tiles from int8_matmul_transpose_cols
int int8_matmul_backward(int32_t *c, const uint8_t *a, int64_t M, const linear *l, const int8_t *wt, int cols,
                         scratch ws) {
  dnnl_memory_desc_t b;
  if (!int8_packed_layout(&b, l->out, cols))
    return fail(LACOS_EUNSUPPORTED, "int8 matmul: no packed layout for the input gradient's %dx%d weight columns",
                l->out, cols);
  return run(c, a, wt, &b, M, l->out, cols, ws);
}

size_t int8_matmul_scratch(int64_t M, int in, int out, bool backward) {
  dnnl_memory_desc_t b;
  if (M <= 0) return 0;
  if (backward) return int8_packed_layout(&b, out, in) ? piece(scratchpad_of(M, out, in, &b)) : 0;
  return int8_packed_layout(&b, in, out) ? piece(scratchpad_of(M, in, out, &b)) : 0;
}
