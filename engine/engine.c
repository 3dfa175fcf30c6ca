/* engine.c: version, build description, the worker-thread count and the
   interruption flag that long loops poll (set from signal handlers). */
#include "engine.h"
#include <signal.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

volatile int lacos_interrupt_flag;
static int thread_count;

const char *lacos_version(void) { return LACOS_VERSION; }

const char *lacos_build_info(void) {
  static char info[512];
  if (!info[0]) {
    snprintf(info, sizeof info, "lacos %s; %s %s; %s%s%s; OpenMP %s; BLAS OpenBLAS; int8 GEMM oneDNN; CUDA %s",
             LACOS_VERSION,
#if defined(__clang__)
             "clang", __clang_version__,
#else
             "gcc", __VERSION__,
#endif
#if defined(__AVX512F__)
             "AVX-512",
#elif defined(__AVX2__)
             "AVX2",
#else
             "SSE",
#endif
#if defined(__AVX512VNNI__)
             "+VNNI",
#else
             "",
#endif
#if defined(__F16C__)
             "+F16C",
#else
             "",
#endif
#ifdef _OPENMP
             "on",
#else
             "off",
#endif
#ifdef LACOS_HAVE_CUDA
             "compiled in"
#else
             "not built"
#endif
    );
  }
  return info;
}

/* Threads OpenBLAS holds a 128 MiB buffer for (it never frees one): the
   OpenMP default it started with, then the most ever set. */
static int blas_threads;
static int blas_threads_now(void) {
#ifdef _OPENMP
  if (!blas_threads) blas_threads = omp_get_max_threads();
#endif
  return blas_threads > 0 ? blas_threads : 1;
}

int threads_count(void) {
  if (thread_count <= 0) {
    const char *env = getenv("LACOS_THREADS");
    long n = env ? strtol(env, NULL, 10) : 0;
    /* OMP_NUM_THREADS: the user's, or what main.c left room for under ulimit -v */
    const char *omp = getenv("OMP_NUM_THREADS");
    if (n <= 0 && omp) n = strtol(omp, NULL, 10);
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    int cap = address_space_thread_cap(blas_threads_now());
    if (n > cap) n = cap;
    thread_count = n > 0 ? (int)n : 1;
    if (thread_count > blas_threads) blas_threads = thread_count;
#ifdef _OPENMP
    omp_set_num_threads(thread_count);
#endif
    openblas_set_num_threads(thread_count);
  }
  return thread_count;
}

int lacos_threads_get(void) { return threads_count(); }

int lacos_threads_set(int n) {
  if (n < 1 || n > 4096) return fail(LACOS_EINVAL, "thread count must be between 1 and 4096, got %d", n);
  int cap = address_space_thread_cap(blas_threads_now());
  if (n > cap)
    return fail(LACOS_ELIMIT, "%d threads do not fit under the address-space limit (ulimit -v) of %.0f MiB: each needs "
                "a 128 MiB BLAS buffer, and there is room for %d", n, lacos_memory_address_limit() / 1048576, cap);
  thread_count = n;
  if (n > blas_threads) blas_threads = n;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  openblas_set_num_threads(n);
  return LACOS_OK;
}

/* While held, a request waits in interrupt_kept (see lacos.h): the ranks of a
   job stop together at a step boundary, never one of them inside a step. */
static volatile int interrupt_holding, interrupt_kept;
void lacos_interrupt_request(int level) {
  if (interrupt_holding) interrupt_kept = level > 0 ? level : 1;
  else lacos_interrupt_flag = level > 0 ? level : 1;
}
int lacos_interrupt_pending(void) { return lacos_interrupt_flag; }
/* Here rather than in system.c: a sleep that an interrupt cuts short reads
   the interrupt flag, and system.c sits below this file. */
int lacos_sleep(double seconds) {
  double end = lacos_clock_monotonic() + (seconds > 0 ? seconds : 0);
  for (;;) {
    if (lacos_interrupt_pending()) return 1;
    double left = end - lacos_clock_monotonic();
    if (left <= 0) return 0;
    if (left > 0.05) left = 0.05;
    struct timespec ts = { 0, (long)(left * 1e9) };
    nanosleep(&ts, NULL);
  }
}
void lacos_interrupt_clear(void) { lacos_interrupt_flag = 0; interrupt_kept = 0; }
void lacos_interrupt_hold(int on) {
  if (on) {
    if (lacos_interrupt_flag) interrupt_kept = lacos_interrupt_flag;
    lacos_interrupt_flag = 0;
    interrupt_holding = 1;
  } else {
    interrupt_holding = 0;
    if (interrupt_kept) lacos_interrupt_flag = interrupt_kept;
    interrupt_kept = 0;
  }
}
int lacos_interrupt_held(void) { return interrupt_kept; }
