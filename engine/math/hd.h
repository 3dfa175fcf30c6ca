/* hd.h: LACOS_HD marks a function of the shared math (engine/math/) that
   the C engine and the CUDA kernels both compile: __host__ __device__ under
   nvcc, a plain static inline function in C. Both sides build without float
   contraction (C: ISO rules; nvcc: -fmad=false), so the same expression
   gives the same bits on either side. */
#ifndef LACOS_MATH_HD_H
#define LACOS_MATH_HD_H
#ifdef __CUDACC__
#define LACOS_HD __host__ __device__ static inline
#else
#define LACOS_HD static inline
#endif
#endif
