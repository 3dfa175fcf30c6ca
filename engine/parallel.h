/* parallel.h: OpenMP's thread queries, also in a build without OpenMP
   (NO_OMP=1: one thread), for code that gives each thread its own slice of
   a buffer allocated before the parallel region. */
#ifndef LACOS_PARALLEL_H
#define LACOS_PARALLEL_H
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_in_parallel(void) { return 0; }
static inline void omp_set_num_threads(int n) { (void)n; }
#endif
#endif
