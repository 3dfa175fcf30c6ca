/* embedding.c: token-embedding lookup from a table kept in its checkpoint
   dtype (f32, f16 or bf16, possibly memory-mapped) or in int8 with one scale
   per row. Rows are converted to f32 as they are gathered, so a 250,880-row
   table is never expanded. The embeddings are frozen: no backward. */
#include "layers.h"

// out (N,C), ids (N), table (V,C)
int embedding_forward(float *out, const int32_t *ids, int64_t N, const void *table, int dtype,
                      const float *row_scale, int V, int C) {
  for (int64_t i = 0; i < N; i++)
    if (ids[i] < 0 || ids[i] >= V)
      return fail(LACOS_EINVAL, "token id %d at position %lld is outside the vocabulary of %d", ids[i], (long long)i, V);
  #pragma omp parallel for schedule(static) if (N * C > 65536)
  for (int64_t i = 0; i < N; i++) {
    int64_t r = ids[i];
    float *o = out + i * C;
    switch (dtype) {
    case LACOS_F32: memcpy(o, (const float *)table + r * C, sizeof(float) * (size_t)C); break;
    case LACOS_F16: { const uint16_t *s = (const uint16_t *)table + r * C; for (int c = 0; c < C; c++) o[c] = f16_to_f32(s[c]); break; }
    case LACOS_BF16: { const uint16_t *s = (const uint16_t *)table + r * C; for (int c = 0; c < C; c++) o[c] = bf16_to_f32(s[c]); break; }
    case LACOS_I8: {
      const int8_t *s = (const int8_t *)table + r * C;
      float k = row_scale[r] / 127.0f;
      for (int c = 0; c < C; c++) o[c] = s[c] * k;
      break;
    }
    }
  }
  return LACOS_OK;
}
