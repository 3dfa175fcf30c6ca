/* int8_packed.h: the packed layout of int8 weight codes shared by
   int8_pack.c (packing at load) and int8_matmul.c (the products).

   oneDNN's matmul (brgemm kernels: AVX-512 VNNI vpdpbusd, or AMX) reads its
   weight operand B (K,N) fastest in a blocked layout, BA16a64b4a: 64×64
   tiles, N-block outermost, and inside a tile [k/4][n][k%4] so that one
   32-bit lane holds the 4 consecutive k of one n that a VNNI instruction
   multiplies. Tile (kb, nb) starts at nb·64·K + kb·64·64. */
#ifndef LACOS_INT8_PACKED_H
#define LACOS_INT8_PACKED_H
#include "layers.h"
#include <oneapi/dnnl/dnnl.h>

enum { TILE = 64, TILE_BYTES = TILE * TILE };

typedef struct int8_packed {
  dnnl_memory_desc_t fwd;   /* B = Wᵀ (in, out): the layout of l->q after packing */
  dnnl_memory_desc_t bwd;   /* B = W (out, in): the layout the input gradient rebuilds */
  int32_t *off_fwd;         /* (out) 128·Σ_k W[n,k]: what u8 activation codes add to output n */
  int32_t *off_bwd;         /* (in)  128·Σ_n W[n,k]: the same for the input gradient's column k */
} int8_packed;

/* Element (k, n) of a tile, as a byte offset inside it. */
static inline size_t tile_offset(int k, int n) { return (size_t)((k % TILE) / 4 * 256 + (n % TILE) * 4 + k % 4); }

/* The layout oneDNN's int8 matmul picks for B (K,N) when it is the VNNI
   tiles (brgemm kernels); false otherwise (no VNNI, ONEDNN_MAX_CPU_ISA
   below it, shapes not multiples of 64). Answers are remembered per shape. */
bool int8_packed_layout(dnnl_memory_desc_t *out, int64_t K, int64_t N);
#endif
