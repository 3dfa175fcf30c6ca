/* int8_pack.c: the CPU backend's linear_prepare: int8 weight codes packed
   once, at load, into the tiles oneDNN's int8 matmul reads (int8_packed.h),
   where this CPU has those kernels (VNNI or AMX).

   The layout is asked of oneDNN (the weights memory descriptor of a
   primitive created with format "any"), checked to be exactly the VNNI
   tiles, and the codes are rewritten into it in place: the tiles of one
   N-block cover the same bytes as that block's 64 plain rows, so packing
   needs one block of scratch per thread, not a second copy of the model.
   Beside them it keeps the column sums the u8 activation codes need
   (int8_matmul.c). Load-time code: it allocates, through the counted
   allocator. */
#include "int8_packed.h"

int linear_prepare(linear *l) {
  if (l->kind != LINEAR_INT8 || l->packed) return LACOS_OK;
  int K = l->in, N = l->out;
  dnnl_memory_desc_t fwd, bwd;
  if (!int8_packed_layout(&fwd, K, N) || !int8_packed_layout(&bwd, N, K)) return LACOS_OK;   /* plain GEMM */
  size_t bytes = sizeof(int8_packed) + sizeof(int32_t) * ((size_t)N + (size_t)K);
  size_t block = (size_t)TILE * (size_t)K;
  int threads = threads_count();
  int8_packed *p = NULL;
  int8_t *rows_all = NULL;
  TRY(mem_alloc(&p, bytes, "packed int8 weights"));
  /* per-thread scratch, taken before any block moves: a failure leaves the codes as they were */
  int st = mem_alloc(&rows_all, block * (size_t)threads, "weight packing");
  if (st) { mem_free(p); return st; }
  p->fwd = fwd;
  p->bwd = bwd;
  p->off_fwd = (int32_t *)(p + 1);
  p->off_bwd = p->off_fwd + N;
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
  /* N-block by N-block, in place: its 64 rows → its K/64 tiles */
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (int nb = 0; nb < N / TILE; nb++) {
    int8_t *rows = rows_all + block * (size_t)omp_get_thread_num();
    int8_t *dst = l->q + (size_t)nb * block;
    memcpy(rows, dst, block);
    for (int kb = 0; kb < K / TILE; kb++) {
      int8_t *tile = dst + (size_t)kb * TILE_BYTES;
      for (int n = 0; n < TILE; n++)
        for (int k = 0; k < TILE; k++) tile[tile_offset(k, n)] = rows[(size_t)n * K + kb * TILE + k];
    }
  }
  mem_free(rows_all);
  l->packed = p;
  l->packed_bytes = bytes;
  return LACOS_OK;
}

void linear_release(linear *l) {
  if (!l->packed) return;
  mem_free(l->packed);
  l->packed = NULL;
  l->packed_bytes = 0;
}

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
