/* int8_rows.c: linear.c's packed int8 products (int8_matmul.c), forward and
   input gradient, in one parallel region per call.

   The threads go through the rows ROWS at a time: quantise them, multiply
   them (oneDNN on the thread alone), and dequantise the products while
   they are still in its cache, with what follows the product in a block
   (fc1's GELU, the residual additions after dense and fc2). Done as three
   steps over all rows (quantise, one product across the threads,
   dequantise) the same work costs three regions: at every end of one a
   thread that finished first spins until the other catches up (on a
   shared machine, until the other is scheduled again), the int32 products
   of every row go out to memory and come back, and oneDNN's own threads
   split each product anew. Here the one barrier is the region's end.

   The rows go in pieces of ROWS, the last few of TAIL (at most two product
   shapes per linear and direction: oneDNN's brgemm takes no runtime sizes,
   and each shape is a primitive made once); a last piece with fewer rows
   runs on codes padded with zeros, whose products are not read. Threads
   take pieces as they come free: on a shared machine a thread that lost
   its core for a while finds the other has taken its share, where fixed
   bands would have made the other wait at the end. The numbers are those
   of the three steps: the same codes, the same exact int32 sums, the same
   dequantisation.

   The input gradient multiplies by W's tiles transposed, rebuilt on every
   call (int8_matmul.c). While the whole transposed copy stays in the
   shared cache (up to WHOLE_BYTES; bloom-560m's linears, bloom-1b7's
   dense), all threads write it at the start and the rows go in pieces as
   above. A larger one would be written out to memory and read back by
   every piece's product; there the gradient rows are quantised first (a
   chunk of them, all threads), and each thread then takes a block of dx's
   columns: it transposes that block's tiles into its own buffer, small
   enough to stay in its L2 cache, multiplies every row of the chunk by it
   (GROUP rows a product, the rest in pieces of ROWS and TAIL), and
   dequantises into dx. The weights are read once per chunk, and the
   quantised rows, a few MiB, from the shared cache. Either way the numbers
   are the same: the same codes, exact int32 sums, the same dequantisation;
   only the order of the work changes. */
#include "int8_packed.h"

enum { ROWS = 64, TAIL = 16 };

/* The input gradient: the whole transposed copy up to WHOLE_BYTES (on
   this machine's 32 MiB shared cache, 1-4 MiB copies ran faster whole, 12
   and 16 MiB ones by blocks), else by blocks: GROUP rows a product; a
   thread's transposed weight columns within BLOCK_BYTES and at most
   BLOCK_COLS of them (several blocks, for the threads to share); the
   quantised rows in chunks of at least CHUNK_ROWS and CHUNK_BYTES (each
   chunk transposes the weights anew; every block reads its rows' codes
   again). PREFETCH_ROWS: how far ahead the dequantisation asks for dx. */
enum { WHOLE_BYTES = 8 << 20, GROUP = 256, BLOCK_BYTES = 512 << 10, BLOCK_COLS = 256, CHUNK_ROWS = 1024,
       CHUNK_BYTES = 4 << 20, PREFETCH_ROWS = 4 };

/* The pieces of N rows: whole ROWS ones, then TAIL ones for the rest. */
static int64_t pieces_of(int64_t N) { return N / ROWS + (N % ROWS + TAIL - 1) / TAIL; }

/* Piece j: its first row, the rows its product takes, and how many of them are real. */
static int64_t piece_rows(int64_t j, int64_t N, int *m, int *real) {
  int64_t full = N / ROWS, i = j < full ? j * ROWS : full * ROWS + (j - full) * TAIL;
  *m = j < full ? ROWS : TAIL;
  *real = N - i < *m ? (int)(N - i) : *m;
  return i;
}

static size_t piece(size_t bytes) { return (bytes + 63) & ~(size_t)63; }
static size_t larger(size_t a, size_t b) { return a > b ? a : b; }

/* One thread's pieces for products of K_a-wide codes into K_c-wide sums:
   codes (ROWS,K_a) u8, row scales (ROWS), sums (ROWS,K_c) int32, then
   oneDNN's scratchpad for either product shape. */
static size_t per_thread(int K_a, int K_c, int in, int out, bool backward) {
  return piece((size_t)ROWS * (size_t)K_a) + piece(4 * (size_t)ROWS) + piece(4 * (size_t)ROWS * (size_t)K_c) +
         larger(int8_matmul_scratch(ROWS, in, out, backward), int8_matmul_scratch(TAIL, in, out, backward));
}

typedef struct thread_ws { uint8_t *a; float *rs; int32_t *c; scratch dnnl; } thread_ws;

static thread_ws thread_pieces(char *p, size_t each, int K_a, int K_c) {
  thread_ws w;
  w.a = (uint8_t *)p;
  p += piece((size_t)ROWS * (size_t)K_a);
  w.rs = (float *)p;
  p += piece(4 * (size_t)ROWS);
  w.c = (int32_t *)p;
  p += piece(4 * (size_t)ROWS * (size_t)K_c);
  size_t used = piece((size_t)ROWS * (size_t)K_a) + piece(4 * (size_t)ROWS) + piece(4 * (size_t)ROWS * (size_t)K_c);
  w.dnnl = (scratch){ p, each - used };
  return w;
}

/* The threads a call runs on: OpenMP's, no more than the scratch serves or
   than there are pieces. */
static int threads_for(int64_t N, size_t shared, size_t each, scratch ws) {
  int nt = ws.bytes > shared ? scratch_threads((scratch){ (char *)ws.p + shared, ws.bytes - shared }, each) : 0;
  int64_t n = pieces_of(N);
  return n < nt ? (int)n : nt;
}

/* A failure inside the region: the first one's status and message, handed
   to the calling thread (messages are per thread). */
typedef struct region_error { int status; char message[512]; } region_error;

static void region_fail(region_error *e, int status) {
  #pragma omp critical(int8_rows_error)
  if (!e->status) {
    e->status = status;
    snprintf(e->message, sizeof e->message, "%s", lacos_last_error());
  }
}

static int region_status(const region_error *e) {
  return e->status ? lacos_error_set(e->status, e->message) : LACOS_OK;
}

int int8_rows_forward(float *out, const float *inp, const linear *l, int64_t N, float threshold, const int *cols,
                      int nc, const float *bias, const linear_epilogue *ep, scratch ws) {
  int K_in = l->in, K_out = l->out;
  size_t each = per_thread(K_in, K_out, K_in, K_out, false);
  int nt = threads_for(N, 0, each, ws);
  if (nt < 1)
    return fail(LACOS_ELIMIT, "int8 linear: the packed product's %zu bytes per thread do not fit the %zu bytes of "
                "scratch given", each, ws.bytes);
  const int32_t *off = int8_packed_offsets(l, false);   /* 128·Σ_k W[n,k]: what the u8 codes add */
  bool zero_cols = nc > 0 && N > 1;
  int gelu = ep ? ep->gelu : -1;
  const float *residual = ep ? ep->residual : NULL;
  float *ln = ep ? ep->ln : NULL;
  region_error err = {0};
  #pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num();
    thread_ws w = thread_pieces((char *)ws.p + (size_t)t * each, each, K_in, K_out);
    bool failed = false;
    #pragma omp for schedule(dynamic) nowait
    for (int64_t j = 0; j < pieces_of(N); j++) {
      if (failed) continue;
      int m, real;
      int64_t i = piece_rows(j, N, &m, &real);
      for (int r = 0; r < real; r++) {
        uint8_t *q = w.a + (size_t)r * K_in;
        w.rs[r] = quantize_row(q, inp + (i + r) * K_in, NULL, K_in, threshold, 128);
        if (zero_cols)
          for (int c = 0; c < nc; c++) q[cols[c]] = 128;
      }
      if (real < m) memset(w.a + (size_t)real * K_in, 128, (size_t)(m - real) * K_in);
      int st = int8_matmul_forward(w.c, w.a, m, l, w.dnnl);
      if (st) { region_fail(&err, st); failed = true; continue; }
      for (int r = 0; r < real; r++) {
        int64_t at = (i + r) * K_out;
        float *o = out + at, *y = gelu >= 0 && ep->pre ? ep->pre + at : o;
        dequantize_row(y, w.c + (size_t)r * K_out, off, w.rs[r] * INT8_DEQ, l->scale, bias, K_out);
        if (gelu >= 0) gelu_row(o, y, K_out, gelu);
        if (residual) add_row(o, residual + at, K_out);
        if (ln)
          layernorm_row(ln + at, ep->ln_mean ? ep->ln_mean + i + r : NULL, ep->ln_rstd ? ep->ln_rstd + i + r : NULL, o,
                        ep->ln_w, ep->ln_b, K_out, ep->ln_eps);
      }
    }
  }
  return region_status(&err);
}

static bool whole_copy(int in, int out) { return (size_t)in * (size_t)out <= WHOLE_BYTES; }

/* Whole: the transposed copy shared, every thread the pieces of int8_rows_forward. */
static int backward_whole(float *dinp, const float *dout, const linear *l, int64_t N, scratch ws) {
  int K_in = l->in, K_out = l->out;
  size_t each = per_thread(K_out, K_in, K_in, K_out, true), shared = piece((size_t)K_in * (size_t)K_out);
  int nt = threads_for(N, shared, each, ws);
  if (nt < 1)
    return fail(LACOS_ELIMIT, "int8 matmul: the transposed weights (%zu bytes) and the packed product's %zu bytes "
                "per thread do not fit the %zu bytes of scratch given", shared, each, ws.bytes);
  const int32_t *off = int8_packed_offsets(l, true);   /* 128·Σ_n W[n,k] */
  int8_t *wt = ws.p;
  region_error err = {0};
  #pragma omp parallel num_threads(nt)
  {
    /* the whole copy, 64 columns a share: a block's tiles lie at its first column times K_out */
    #pragma omp for schedule(static)
    for (int n0 = 0; n0 < K_in; n0 += TILE) int8_matmul_transpose_cols(wt + (size_t)n0 * K_out, l, n0, TILE);
    int t = omp_get_thread_num();
    thread_ws w = thread_pieces((char *)ws.p + shared + (size_t)t * each, each, K_out, K_in);
    bool failed = false;
    #pragma omp for schedule(dynamic) nowait
    for (int64_t j = 0; j < pieces_of(N); j++) {
      if (failed) continue;
      int m, real;
      int64_t i = piece_rows(j, N, &m, &real);
      /* the weight row scales folded into the gradient columns, inside the quantisation */
      for (int r = 0; r < real; r++)
        w.rs[r] = quantize_row(w.a + (size_t)r * K_out, dout + (i + r) * K_out, l->scale, K_out, 0, 128);
      if (real < m) memset(w.a + (size_t)real * K_out, 128, (size_t)(m - real) * K_out);
      int st = int8_matmul_backward(w.c, w.a, m, l, wt, K_in, w.dnnl);
      if (st) { region_fail(&err, st); failed = true; continue; }
      for (int r = 0; r < real; r++)
        dequantize_row_add(dinp + (i + r) * K_in, w.c + (size_t)r * K_in, off, w.rs[r] * INT8_DEQ, K_in);
    }
  }
  return region_status(&err);
}

/* By blocks: dx's columns per block, a multiple of 64 that divides in,
   within BLOCK_BYTES of out-wide columns and BLOCK_COLS. */
static int block_cols(int in, int out) {
  int tiles = in / TILE, d = 1;
  for (int k = 1; k <= tiles; k++)
    if (tiles % k == 0 && k * TILE <= BLOCK_COLS && (size_t)k * TILE * (size_t)out <= BLOCK_BYTES) d = k;
  return d * TILE;
}

/* Rows per chunk: a multiple of GROUP; all N (rounded up to TAIL) when fewer. */
static int64_t chunk_rows(int64_t N, int out) {
  int64_t ch = (int64_t)CHUNK_BYTES / out / GROUP * GROUP;
  if (ch < CHUNK_ROWS) ch = CHUNK_ROWS;
  int64_t all = (N + TAIL - 1) / TAIL * TAIL;
  return all < ch ? all : ch;
}

/* The product of a chunk's n rows from row i on: GROUP of them, or ROWS,
   or TAIL (the last padded); *m the rows it takes, *real how many of them
   are the chunk's. */
static void product_rows(int64_t i, int64_t n, int *m, int *real) {
  int64_t left = n - i;
  *m = left >= GROUP ? GROUP : left >= ROWS ? ROWS : TAIL;
  *real = left < *m ? (int)left : *m;
}

/* Shared: the chunk's codes (u8, out wide) and row scales. Per thread: the
   transposed block, the block's sums for GROUP rows, oneDNN's scratchpad. */
static size_t blocks_shared(int64_t N, int out) {
  size_t ch = (size_t)chunk_rows(N, out);
  return piece(ch * (size_t)out) + piece(4 * ch);
}

static size_t blocks_each(int in, int out) {
  int nb = block_cols(in, out);
  size_t dnnl = larger(int8_matmul_scratch(GROUP, nb, out, true),
                       larger(int8_matmul_scratch(ROWS, nb, out, true), int8_matmul_scratch(TAIL, nb, out, true)));
  return piece((size_t)nb * (size_t)out) + piece(4 * (size_t)GROUP * (size_t)nb) + dnnl;
}

static int backward_blocks(float *dinp, const float *dout, const linear *l, int64_t N, scratch ws) {
  int K_in = l->in, K_out = l->out, nb = block_cols(K_in, K_out), blocks = K_in / nb;
  int64_t ch = chunk_rows(N, K_out);
  size_t shared = blocks_shared(N, K_out), each = blocks_each(K_in, K_out);
  int nt = ws.bytes > shared ? scratch_threads((scratch){ (char *)ws.p + shared, ws.bytes - shared }, each) : 0;
  if (nt > blocks) nt = blocks;
  if (nt < 1)
    return fail(LACOS_ELIMIT, "int8 matmul: the quantised gradient rows (%zu bytes) and the input gradient's %zu "
                "bytes per thread do not fit the %zu bytes of scratch given", shared, each, ws.bytes);
  const int32_t *off = int8_packed_offsets(l, true);   /* 128·Σ_n W[n,k] */
  uint8_t *codes = ws.p;
  float *rs = (float *)((char *)ws.p + piece((size_t)ch * (size_t)K_out));
  region_error err = {0};
  #pragma omp parallel num_threads(nt)
  {
    char *mine = (char *)ws.p + shared + (size_t)omp_get_thread_num() * each;
    int8_t *wt = (int8_t *)mine;
    int32_t *c = (int32_t *)(mine + piece((size_t)nb * (size_t)K_out));
    size_t used = piece((size_t)nb * (size_t)K_out) + piece(4 * (size_t)GROUP * (size_t)nb);
    scratch dnnl = { mine + used, each - used };
    bool failed = false;
    for (int64_t c0 = 0; c0 < N; c0 += ch) {
      int64_t n = N - c0 < ch ? N - c0 : ch, padded = (n + TAIL - 1) / TAIL * TAIL;
      /* the weight row scales folded into the gradient columns, inside the quantisation */
      #pragma omp for schedule(dynamic, 16)
      for (int64_t r = 0; r < padded; r++) {
        uint8_t *q = codes + (size_t)r * K_out;
        if (r < n) rs[r] = quantize_row(q, dout + (c0 + r) * K_out, l->scale, K_out, 0, 128);
        else memset(q, 128, (size_t)K_out);
      }
      #pragma omp for schedule(dynamic)
      for (int b = 0; b < blocks; b++) {
        if (failed) continue;
        int n0 = b * nb;
        int8_matmul_transpose_cols(wt, l, n0, nb);
        for (int64_t i = 0; i < n;) {
          int m, real;
          product_rows(i, n, &m, &real);
          int st = int8_matmul_backward(c, codes + (size_t)i * K_out, m, l, wt, nb, dnnl);
          if (st) { region_fail(&err, st); failed = true; break; }
          for (int r = 0; r < real; r++) {
            float *d = dinp + (c0 + i + r) * K_in + n0;
            /* each row's part of dx is short: too short for the hardware's prefetch to run ahead */
            if (r + PREFETCH_ROWS < real)
              for (int k = 0; k < nb; k += 16) __builtin_prefetch(d + (size_t)PREFETCH_ROWS * K_in + k, 1);
            dequantize_row_add(d, c + (size_t)r * nb, off + n0, rs[i + r] * INT8_DEQ, nb);
          }
          i += real;
        }
      }
    }
  }
  return region_status(&err);
}

size_t int8_rows_scratch(int64_t N, int in, int out, bool backward) {
  if (N <= 0) return 0;
  size_t nt = (size_t)threads_count();
  if (!backward) return per_thread(in, out, in, out, false) * nt;
  if (whole_copy(in, out)) return piece((size_t)in * (size_t)out) + per_thread(out, in, in, out, true) * nt;
  return blocks_shared(N, out) + blocks_each(in, out) * nt;
}

int int8_rows_backward(float *dinp, const float *dout, const linear *l, int64_t N, scratch ws) {
  return whole_copy(l->in, l->out) ? backward_whole(dinp, dout, l, N, ws) : backward_blocks(dinp, dout, l, N, ws);
}
