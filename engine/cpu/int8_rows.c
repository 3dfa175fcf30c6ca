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
   dequantisation. */
#include "int8_packed.h"

enum { ROWS = 64, TAIL = 16 };

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

size_t int8_rows_scratch(int64_t N, int in, int out, bool backward) {
  if (N <= 0) return 0;
  size_t each = backward ? per_thread(out, in, in, out, true) : per_thread(in, out, in, out, false);
  size_t shared = backward ? piece((size_t)in * (size_t)out) : 0;   /* the transposed tiles */
  return shared + each * (size_t)threads_count();
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

int int8_rows_backward(float *dinp, const float *dout, const linear *l, int64_t N, scratch ws) {
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
    int8_matmul_transpose(wt, l);   /* shared by the threads, who meet at its end */
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
      int st = int8_matmul_backward(w.c, w.a, m, l, wt, w.dnnl);
      if (st) { region_fail(&err, st); failed = true; continue; }
      for (int r = 0; r < real; r++)
        dequantize_row_add(dinp + (i + r) * K_in, w.c + (size_t)r * K_in, off, w.rs[r] * INT8_DEQ, K_in);
    }
  }
  return region_status(&err);
}
