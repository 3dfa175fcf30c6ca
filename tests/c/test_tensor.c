/* test_tensor.c: the tensor core: creation, views, copies and conversions,
   broadcasting arithmetic, reductions, matmul, .npy round trips, error paths
   and memory accounting. */
#include "test.h"

static lacos_tensor *mk(int ndim, const int64_t *shape, const float *vals) {
  lacos_tensor *t = NULL;
  if (lacos_tensor_from_buffer(&t, LACOS_F32, ndim, shape, vals, LACOS_F32)) return NULL;
  return t;
}

static void creation_and_accounting(void) {
  double before = lacos_memory_allocated(LACOS_CPU);
  int64_t shape[2] = {3, 5};
  lacos_tensor *t;
  CHECK_OK(lacos_tensor_new(&t, LACOS_F32, LACOS_CPU, 2, shape));
  CHECK(lacos_tensor_numel(t) == 15);
  CHECK(lacos_tensor_is_contiguous(t));
  CHECK(t->stride[0] == 5 && t->stride[1] == 1 && t->shape[2] == 1 && t->stride[2] == 0);
  CHECK(lacos_memory_allocated(LACOS_CPU) >= before + 60);
  for (int i = 0; i < 15; i++) CHECK(((float *)t->data)[i] == 0.0f);
  lacos_tensor_free(t);
  CHECK_NEAR(lacos_memory_allocated(LACOS_CPU), before, 0);
  CHECK(lacos_memory_peak(LACOS_CPU) >= before + 60);
}

static void bad_shapes(void) {
  lacos_tensor *t;
  int64_t neg[1] = {-2}, huge[4] = {1LL << 20, 1LL << 20, 1LL << 20, 1LL << 20}, ok[5] = {1, 1, 1, 1, 1};
  CHECK_FAIL(lacos_tensor_new(&t, LACOS_F32, LACOS_CPU, 1, neg), LACOS_EINVAL, "negative size");
  CHECK_FAIL(lacos_tensor_new(&t, LACOS_F32, LACOS_CPU, 4, huge), LACOS_ELIMIT, NULL);
  CHECK_FAIL(lacos_tensor_new(&t, LACOS_F32, LACOS_CPU, 5, ok), LACOS_EINVAL, "0 to 4 dimensions");
  CHECK_FAIL(lacos_tensor_new(&t, 99, LACOS_CPU, 1, ok), LACOS_EINVAL, "dtype");
  CHECK_FAIL(lacos_tensor_new(&t, LACOS_F32, LACOS_CUDA, 1, ok), LACOS_EDEVICE, NULL);
}

static void memory_limit(void) {
  lacos_tensor *t;
  int64_t shape[1] = {1 << 20};
  lacos_memory_set_limit(LACOS_CPU, lacos_memory_allocated(LACOS_CPU) + 1024 * 1024);
  CHECK_FAIL(lacos_tensor_new(&t, LACOS_F32, LACOS_CPU, 1, shape), LACOS_ELIMIT, "memory limit");
  lacos_memory_set_limit(LACOS_CPU, 0);
  CHECK_OK(lacos_tensor_new(&t, LACOS_F32, LACOS_CPU, 1, shape));
  lacos_tensor_free(t);
}

static void views_share_storage(void) {
  float v[6] = {1, 2, 3, 4, 5, 6};
  int64_t shape[2] = {2, 3};
  lacos_tensor *t = mk(2, shape, v), *tr, *row, *col, *sl;
  CHECK_OK(lacos_tensor_transpose(&tr, t, 0, 1));
  CHECK(tr->shape[0] == 3 && tr->shape[1] == 2 && !lacos_tensor_is_contiguous(tr));
  double x;
  int64_t idx[2] = {2, 1};
  CHECK_OK(lacos_tensor_get(tr, idx, &x));
  CHECK(x == 6);
  CHECK_OK(lacos_tensor_select(&row, t, 0, 1));
  CHECK(row->ndim == 1 && row->shape[0] == 3);
  CHECK_OK(lacos_tensor_select(&col, t, 1, -1));
  CHECK(col->ndim == 1 && col->shape[0] == 2 && col->stride[0] == 3);
  CHECK_OK(lacos_tensor_slice(&sl, t, 1, 0, 3, 2));
  CHECK(sl->shape[1] == 2);
  int64_t i2[2] = {1, 1};
  CHECK_OK(lacos_tensor_get(sl, i2, &x));
  CHECK(x == 6);
  /* writing through a view changes the base */
  int64_t i0[1] = {0};
  CHECK_OK(lacos_tensor_set(row, i0, 40));
  CHECK(((float *)t->data)[3] == 40);
  /* the storage outlives the base header */
  lacos_tensor_free(t);
  CHECK_OK(lacos_tensor_get(row, i0, &x));
  CHECK(x == 40);
  lacos_tensor *c;
  CHECK_OK(lacos_tensor_contiguous(&c, tr));
  CHECK(lacos_tensor_is_contiguous(c));
  CHECK_OK(lacos_tensor_get(c, idx, &x));
  CHECK(x == 6);
  int64_t bad[1] = {7};
  CHECK_FAIL(lacos_tensor_get(row, bad, &x), LACOS_EINVAL, "out of range");
  lacos_tensor *vw;
  int64_t flat[1] = {6};
  CHECK_FAIL(lacos_tensor_view(&vw, tr, 1, flat), LACOS_EINVAL, "not contiguous");
  lacos_tensor_free(c); lacos_tensor_free(tr); lacos_tensor_free(row); lacos_tensor_free(col); lacos_tensor_free(sl);
}

static void release_is_safe(void) {
  int64_t shape[1] = {4};
  lacos_tensor *t, *v;
  CHECK_OK(lacos_tensor_new(&t, LACOS_F32, LACOS_CPU, 1, shape));
  lacos_tensor_release(t);
  CHECK(lacos_tensor_numel(t) == 0);
  CHECK_FAIL(lacos_tensor_clone(&v, t), LACOS_ESTATE, "freed");
  lacos_tensor_release(t);   /* twice is harmless */
  lacos_tensor_free(t);
}

static void dtype_round_trips(void) {
  /* f16/bf16 conversions round to nearest even and keep specials. */
  CHECK(f16_to_f32(f32_to_f16(1.0f)) == 1.0f);
  CHECK(f32_to_f16(65520.0f) == 0x7c00);              /* overflow to inf */
  CHECK(f16_to_f32(0x0001) == 5.9604644775390625e-08f); /* smallest subnormal */
  CHECK(f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);     /* tie rounds to even */
  CHECK(f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);
  CHECK(bf16_to_f32(f32_to_bf16(3.140625f)) == 3.140625f);
  CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))));
  float v[4] = {-1.5f, 2.5f, 300.0f, -300.0f};
  int64_t shape[1] = {4};
  lacos_tensor *t = mk(1, shape, v), *q;
  CHECK_OK(lacos_tensor_to_dtype(&q, t, LACOS_I8));
  int8_t *qi = q->data;
  CHECK(qi[0] == -2 && qi[1] == 2 && qi[2] == 127 && qi[3] == -128);   /* half-even, saturating */
  lacos_tensor_free(q);
  CHECK_OK(lacos_tensor_to_dtype(&q, t, LACOS_BF16));
  double x;
  int64_t i1[1] = {1};
  CHECK_OK(lacos_tensor_get(q, i1, &x));
  CHECK(x == 2.5);
  lacos_tensor_free(q);
  lacos_tensor_free(t);
  CHECK(lacos_dtype_from_name("bf16") == LACOS_BF16 && lacos_dtype_from_name("nope") == -1);
}

static void broadcasting_arithmetic(void) {
  float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30};
  int64_t sa[2] = {2, 3}, sb[1] = {3};
  lacos_tensor *A = mk(2, sa, a), *B = mk(1, sb, b), *C;
  CHECK_OK(lacos_tensor_binary(&C, A, B, LACOS_ADD));
  float *c = C->data;
  CHECK(c[0] == 11 && c[5] == 36);
  lacos_tensor_free(C);
  CHECK_OK(lacos_tensor_scalar(&C, A, 1, LACOS_SUB, 1));   /* 1 - A */
  CHECK(((float *)C->data)[5] == -5);
  lacos_tensor_free(C);
  int64_t sbad[1] = {2};
  lacos_tensor *Bad = mk(1, sbad, b);
  CHECK_FAIL(lacos_tensor_binary(&C, A, Bad, LACOS_MUL), LACOS_EINVAL, "broadcast");
  CHECK_OK(lacos_tensor_unary(&C, A, LACOS_GELU_TANH));
  CHECK_NEAR(((float *)C->data)[0], 0.5 * (1 + tanh(0.79788456 * (1 + 0.044715))), 1e-6);
  lacos_tensor_free(C);
  CHECK_OK(lacos_tensor_binary_(A, B, LACOS_MUL));
  CHECK(((float *)A->data)[4] == 100);
  lacos_tensor_free(A); lacos_tensor_free(B); lacos_tensor_free(Bad);
}

static void reductions(void) {
  float a[6] = {1, 5, 3, 4, 2, 6};
  int64_t sa[2] = {2, 3};
  lacos_tensor *A = mk(2, sa, a), *R;
  CHECK_OK(lacos_tensor_reduce(&R, A, LACOS_SUM, -1, 0));
  CHECK(R->ndim == 0 && ((float *)R->data)[0] == 21);
  lacos_tensor_free(R);
  CHECK_OK(lacos_tensor_reduce(&R, A, LACOS_SUM, 0, 0));
  CHECK(R->shape[0] == 3 && ((float *)R->data)[1] == 7);
  lacos_tensor_free(R);
  CHECK_OK(lacos_tensor_reduce(&R, A, LACOS_ARGMAX, 1, 1));
  CHECK(R->dtype == LACOS_I64 && R->shape[0] == 2 && R->shape[1] == 1);
  CHECK(((int64_t *)R->data)[0] == 1 && ((int64_t *)R->data)[1] == 2);
  lacos_tensor_free(R);
  CHECK_OK(lacos_tensor_reduce(&R, A, LACOS_STD, -1, 0));
  CHECK_NEAR(((float *)R->data)[0], 1.8708287, 1e-6);
  lacos_tensor_free(R);
  lacos_tensor_free(A);
}

static void matmul_and_cosine(void) {
  float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
  int64_t sa[2] = {2, 3}, sb[2] = {3, 2};
  lacos_tensor *A = mk(2, sa, a), *B = mk(2, sb, b), *C;
  CHECK_OK(lacos_tensor_matmul(&C, A, B));
  float *c = C->data;
  CHECK(c[0] == 58 && c[1] == 64 && c[2] == 139 && c[3] == 154);
  lacos_tensor_free(C);
  CHECK_FAIL(lacos_tensor_matmul(&C, A, A), LACOS_EINVAL, "inner sizes");
  CHECK_OK(lacos_tensor_cosine(&C, A, A));
  CHECK_NEAR(((float *)C->data)[0], 1.0, 1e-6);
  CHECK_NEAR(((float *)C->data)[1], 32.0 / sqrt(14.0 * 77.0), 1e-6);
  lacos_tensor_free(C);
  lacos_tensor_free(A); lacos_tensor_free(B);
}

static void random_is_thread_independent(void) {
  int64_t shape[1] = {100000};
  lacos_tensor *a, *b;
  lacos_threads_set(1);
  CHECK_OK(lacos_tensor_rand(&a, LACOS_F32, 1, shape, 42, 1, 0, 1));
  lacos_threads_set(2);
  CHECK_OK(lacos_tensor_rand(&b, LACOS_F32, 1, shape, 42, 1, 0, 1));
  CHECK(memcmp(a->data, b->data, 400000) == 0);
  lacos_tensor *m;
  CHECK_OK(lacos_tensor_reduce(&m, a, LACOS_MEAN, -1, 0));
  CHECK_NEAR(((float *)m->data)[0], 0.0, 0.02);
  lacos_tensor_free(m);
  CHECK_OK(lacos_tensor_reduce(&m, a, LACOS_STD, -1, 0));
  CHECK_NEAR(((float *)m->data)[0], 1.0, 0.02);
  lacos_tensor_free(m); lacos_tensor_free(a); lacos_tensor_free(b);
}

static void npy_round_trip(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/t.npy", test_tmpdir());
  float v[6] = {1, 2, 3, 4, 5, 6};
  int64_t shape[2] = {2, 3};
  lacos_tensor *t = mk(2, shape, v), *u;
  CHECK_OK(lacos_tensor_save_npy(t, path));
  CHECK_OK(lacos_tensor_load_npy(&u, path));
  CHECK(u && u->ndim == 2 && u->shape[1] == 3 && memcmp(u->data, v, sizeof v) == 0);
  lacos_tensor_free(u);
  /* the header is 64-byte aligned as NumPy writes it */
  FILE *f = fopen(path, "rb");
  unsigned char pre[10];
  CHECK(f && fread(pre, 1, 10, f) == 10);
  if (f) fclose(f);
  CHECK((10 + (pre[8] | pre[9] << 8)) % 64 == 0);
  /* truncated data */
  f = fopen(path, "r+b");
  if (f) { CHECK(ftruncate(fileno(f), 130) == 0); fclose(f); }
  CHECK_FAIL(lacos_tensor_load_npy(&u, path), LACOS_EFORMAT, "shorter than its header");
  snprintf(path, sizeof path, "%s/nonexistent.npy", test_tmpdir());
  CHECK_FAIL(lacos_tensor_load_npy(&u, path), LACOS_ENOTFOUND, "nonexistent.npy");
  lacos_tensor_free(t);
}

static void cat_along_dims(void) {
  float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
  int64_t sa[2] = {2, 2}, sb[2] = {1, 2};
  lacos_tensor *A = mk(2, sa, a), *B = mk(2, sb, b), *C;
  lacos_tensor *parts[2] = {A, B};
  CHECK_OK(lacos_tensor_cat(&C, parts, 2, 0));
  CHECK(C->shape[0] == 3 && ((float *)C->data)[5] == 6);
  lacos_tensor_free(C);
  CHECK_FAIL(lacos_tensor_cat(&C, parts, 2, 1), LACOS_EINVAL, "size");
  lacos_tensor_free(A); lacos_tensor_free(B);
}

int main(void) {
  RUN(creation_and_accounting);
  RUN(bad_shapes);
  RUN(memory_limit);
  RUN(views_share_storage);
  RUN(release_is_safe);
  RUN(dtype_round_trips);
  RUN(broadcasting_arithmetic);
  RUN(reductions);
  RUN(matmul_and_cosine);
  RUN(random_is_thread_independent);
  RUN(npy_round_trip);
  RUN(cat_along_dims);
  TEST_EXIT();
}
