/* lacos.h: the public C API of the lacos engine.

   This file is read twice: by the C compiler (through engine.h, which includes
   <stdint.h>/<stddef.h> first) and verbatim by LuaJIT's ffi.cdef, which has no
   preprocessor. So: no #include, no #define, no macros; constants are enums.
   Enum values are stored in files and databases: only ever append to them.

   Conventions
   - Every function is lacos_<object>_<verb>.
   - Functions that can fail return an int status (LACOS_OK = 0) and write
     their results through out-parameters. On failure lacos_last_error()
     describes the cause (naming the file and line where there is one).
     The engine never aborts or longjmps on bad input.
   - Objects are opaque handles, created by the _new, _load and _open functions and
     released by the matching _free. lacos_tensor is the one exception: its header is visible so
     that Lua can index it without a call; treat its fields as read-only.
   - Byte counts crossing the API are doubles (exact below 2^53) so that
     LuaJIT does not box them. */

/* ===== status and errors (error.c) ===== */

typedef enum lacos_status {
  LACOS_OK = 0,
  LACOS_EINVAL = 1,        /* bad argument or option */
  LACOS_ENOMEM = 2,        /* allocation failed */
  LACOS_EIO = 3,           /* file system or network error */
  LACOS_EFORMAT = 4,       /* malformed file contents */
  LACOS_ENOTFOUND = 5,     /* missing file, tensor, key */
  LACOS_EUNSUPPORTED = 6,  /* valid but not supported here (dtype, device) */
  LACOS_EDEVICE = 7,       /* accelerator unavailable or failed */
  LACOS_EINTERRUPTED = 8,  /* stopped by a signal */
  LACOS_EDB = 9,           /* results database error */
  LACOS_ELIMIT = 10,       /* a resource limit would be exceeded */
  LACOS_ENUMERIC = 11,     /* non-finite values where finite ones are required */
  LACOS_ESTATE = 12        /* object used in the wrong state */
} lacos_status;

const char *lacos_last_error(void);
int lacos_last_status(void);
const char *lacos_status_name(int status);
void lacos_error_clear(void);
/* Lets a caller (the Lua layer, a test) report through the same channel. */
int lacos_error_set(int status, const char *message);

/* ===== build, threads and interruption (engine.c) ===== */

const char *lacos_version(void);
/* One line: compiler, CPU features, OpenMP, BLAS, oneDNN, CUDA. */
const char *lacos_build_info(void);
int lacos_threads_get(void);
int lacos_threads_set(int n);
/* Long loops poll this flag; a signal handler sets it with lacos_interrupt_request,
   which is async-signal-safe. */
void lacos_interrupt_request(int level);
int lacos_interrupt_pending(void);
void lacos_interrupt_clear(void);

/* ===== memory accounting (memory.c) ===== */

typedef enum lacos_device {
  LACOS_CPU = 0,
  LACOS_CUDA = 1
} lacos_device;

/* Bytes currently held by engine allocations on a device, and the peak since
   the last reset. Memory-mapped checkpoint files are counted separately. */
double lacos_memory_allocated(int device);
double lacos_memory_peak(int device);
void lacos_memory_reset_peak(int device);
double lacos_memory_mapped(void);
/* Process-wide peak resident set size in bytes (getrusage). */
double lacos_memory_peak_rss(void);
double lacos_memory_current_rss(void);
/* A soft cap on engine allocations per device (0 = none); allocations past
   it fail with LACOS_ELIMIT instead of risking the machine's OOM killer. */
void lacos_memory_set_limit(int device, double bytes);
double lacos_memory_get_limit(int device);

/* ===== hashing (hash.c) ===== */

/* SHA-256 as 64 lowercase hex characters plus NUL (hex must hold 65 bytes). */
int lacos_sha256_file(const char *path, char *hex);
int lacos_sha256_buffer(const void *data, double nbytes, char *hex);

/* ===== tensors (tensor.c, the cpu/ ops) ===== */

typedef enum lacos_dtype {
  LACOS_F32 = 0,
  LACOS_F16 = 1,
  LACOS_BF16 = 2,
  LACOS_I8 = 3,
  LACOS_I32 = 4,
  LACOS_U8 = 5,
  LACOS_I64 = 6,
  LACOS_F64 = 7,
  LACOS_DTYPE_COUNT = 8
} lacos_dtype;

typedef struct lacos_storage lacos_storage;

/* A strided view of up to 4 dimensions onto a reference-counted storage.
   shape/stride entries past ndim are 1/0. Strides count elements, not bytes.
   data points at element (0,0,0,0) of this view. */
typedef struct lacos_tensor {
  void *data;
  int64_t shape[4];
  int64_t stride[4];
  int32_t ndim;
  int32_t dtype;
  int32_t device;
  int32_t flags;
  lacos_storage *storage;
} lacos_tensor;

/* A value type holding one tensor reference. Bindings attach methods and
   indexing to it (LuaJIT indexes a bare pointer with a number as an array,
   so a pointer cannot carry t[i]); the engine itself never uses it. */
typedef struct lacos_tensor_ref {
  lacos_tensor *t;
} lacos_tensor_ref;

const char *lacos_dtype_name(int dtype);
int lacos_dtype_from_name(const char *name);   /* -1 if unknown */
int lacos_dtype_size(int dtype);

/* Creation. The new tensor is contiguous and owned by the caller. */
int lacos_tensor_new(lacos_tensor **out, int dtype, int device, int ndim, const int64_t *shape);  /* zeros */
int lacos_tensor_empty(lacos_tensor **out, int dtype, int device, int ndim, const int64_t *shape);
int lacos_tensor_full(lacos_tensor **out, int dtype, int ndim, const int64_t *shape, double value);
/* dist: 0 = uniform [a, b), 1 = normal (mean a, std b). Reproducible for a
   given seed whatever the thread count. */
int lacos_tensor_rand(lacos_tensor **out, int dtype, int ndim, const int64_t *shape,
                      double seed, int dist, double a, double b);
int lacos_tensor_arange(lacos_tensor **out, int dtype, double start, double stop, double step);
/* Copies n = numel elements of src (given in src_dtype) into a new tensor. */
int lacos_tensor_from_buffer(lacos_tensor **out, int dtype, int ndim, const int64_t *shape,
                             const void *src, int src_dtype);
/* Frees this header and drops its reference to the storage. NULL is allowed. */
void lacos_tensor_free(lacos_tensor *t);
/* Drops the storage now but keeps the header (flags gets LACOS_TENSOR_RELEASED,
   numel becomes 0), so a stale reference fails cleanly instead of reading
   freed memory; the header itself goes with lacos_tensor_free. */
void lacos_tensor_release(lacos_tensor *t);
enum { LACOS_TENSOR_RELEASED = 1 };

/* Views (share storage, never copy). */
int lacos_tensor_view(lacos_tensor **out, const lacos_tensor *t, int ndim, const int64_t *shape);
int lacos_tensor_slice(lacos_tensor **out, const lacos_tensor *t, int dim,
                       int64_t start, int64_t stop, int64_t step);
int lacos_tensor_select(lacos_tensor **out, const lacos_tensor *t, int dim, int64_t index);
int lacos_tensor_transpose(lacos_tensor **out, const lacos_tensor *t, int dim0, int dim1);
int lacos_tensor_unsqueeze(lacos_tensor **out, const lacos_tensor *t, int dim);
int lacos_tensor_expand(lacos_tensor **out, const lacos_tensor *t, int ndim, const int64_t *shape);

/* Queries. */
int64_t lacos_tensor_numel(const lacos_tensor *t);
int lacos_tensor_is_contiguous(const lacos_tensor *t);
double lacos_tensor_nbytes(const lacos_tensor *t);
int lacos_tensor_get(const lacos_tensor *t, const int64_t *index, double *value);
int lacos_tensor_set(lacos_tensor *t, const int64_t *index, double value);
/* Copies all elements, converted, into dst (numel doubles/floats). */
int lacos_tensor_read_f64(const lacos_tensor *t, double *dst, int64_t n);
int lacos_tensor_read_f32(const lacos_tensor *t, float *dst, int64_t n);

/* Copies and conversions. */
int lacos_tensor_contiguous(lacos_tensor **out, const lacos_tensor *t);
int lacos_tensor_clone(lacos_tensor **out, const lacos_tensor *t);
int lacos_tensor_to_dtype(lacos_tensor **out, const lacos_tensor *t, int dtype);
int lacos_tensor_to_device(lacos_tensor **out, const lacos_tensor *t, int device);
/* dst and src have the same shape (or src broadcasts to dst); dtypes may differ. */
int lacos_tensor_copy(lacos_tensor *dst, const lacos_tensor *src);
int lacos_tensor_fill(lacos_tensor *t, double value);
int lacos_tensor_cat(lacos_tensor **out, lacos_tensor *const *parts, int n, int dim);

/* Elementwise arithmetic with NumPy broadcasting. The result dtype is the
   wider float of the operands (f32 for integer operands). */
typedef enum lacos_binop {
  LACOS_ADD = 0, LACOS_SUB = 1, LACOS_MUL = 2, LACOS_DIV = 3,
  LACOS_MAX = 4, LACOS_MIN = 5, LACOS_POW = 6,
  LACOS_EQ = 7, LACOS_NE = 8, LACOS_LT = 9, LACOS_LE = 10, LACOS_GT = 11, LACOS_GE = 12
} lacos_binop;
typedef enum lacos_unop {
  LACOS_NEG = 0, LACOS_ABS = 1, LACOS_EXP = 2, LACOS_LOG = 3, LACOS_SQRT = 4,
  LACOS_TANH = 5, LACOS_SIGMOID = 6, LACOS_RELU = 7, LACOS_GELU_TANH = 8,
  LACOS_SQUARE = 9, LACOS_ISFINITE = 10
} lacos_unop;
int lacos_tensor_binary(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b, int op);
int lacos_tensor_scalar(lacos_tensor **out, const lacos_tensor *a, double s, int op, int reversed);
int lacos_tensor_unary(lacos_tensor **out, const lacos_tensor *a, int op);
/* In place: a = a op b (b broadcasts to a). */
int lacos_tensor_binary_(lacos_tensor *a, const lacos_tensor *b, int op);

/* Reductions over one dimension (dim >= 0) or everything (dim = -1).
   Sums accumulate in double. */
typedef enum lacos_reduce_op {
  LACOS_SUM = 0, LACOS_MEAN = 1, LACOS_RMAX = 2, LACOS_RMIN = 3,
  LACOS_ARGMAX = 4, LACOS_ARGMIN = 5, LACOS_NORM2 = 6, LACOS_VAR = 7, LACOS_STD = 8
} lacos_reduce_op;
int lacos_tensor_reduce(lacos_tensor **out, const lacos_tensor *t, int op, int dim, int keepdim);

/* Matrix product of the last two dimensions, batched over a leading one:
   (n,k)x(k,m), (b,n,k)x(b,k,m) or (b,n,k)x(k,m). f32 result through BLAS. */
int lacos_tensor_matmul(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b);
/* Row-wise L2 normalisation and cosine-similarity matrix of two (n,d),(m,d). */
int lacos_tensor_normalize(lacos_tensor **out, const lacos_tensor *t, double eps);
int lacos_tensor_cosine(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b);
/* Maximum absolute difference between two same-shaped tensors. */
int lacos_tensor_maxdiff(const lacos_tensor *a, const lacos_tensor *b, double *out);

/* NumPy .npy files (little-endian, C order; f32, f64, f16, i8, u8, i32, i64). */
int lacos_tensor_save_npy(const lacos_tensor *t, const char *path);
int lacos_tensor_load_npy(lacos_tensor **out, const char *path);

/* Each subsystem's declarations sit between its two markers below. */

/* ===== safetensors (safetensors.c: validated memory-mapped reader, sharded index, writer) ===== */

/* ----- end safetensors ----- */

/* ===== tokenizer (tokenizer.c: Hugging Face tokenizer.json byte-level BPE) ===== */

/* ----- end tokenizer ----- */

/* ===== bloom (bloom.c and the cpu/ layers: config, weights, forward/backward, int8, pooling) ===== */

/* ----- end bloom ----- */

/* ===== lora (lora.c: adapters, merge, PEFT import/export) ===== */

/* ----- end lora ----- */

/* ===== optim (optim.c: AdamW and 8-bit blockwise Adam) ===== */

/* ----- end optim ----- */

/* ===== loss (loss.c: MNRL, CoSENT, softmax classifier) ===== */

/* ----- end loss ----- */

/* ===== train (train.c, checkpoint.c: training steps and run checkpoints) ===== */

/* ----- end train ----- */

/* ===== datasets (datasets.c: STS, NLI and pair readers) ===== */

/* ----- end datasets ----- */

/* ===== sts (sts.c: cosine scores, Spearman, Pearson) ===== */

/* ----- end sts ----- */

/* ===== results (results.c: the SQLite results database) ===== */

/* ----- end results ----- */

/* ===== download (download.c: resumable verified HTTP downloads) ===== */

/* ----- end download ----- */

/* ===== cuda (cuda.c: device discovery and the CUDA backend) ===== */

/* ----- end cuda ----- */

