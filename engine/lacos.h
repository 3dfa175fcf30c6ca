/* lacos.h: the public C API of the lacos engine.

   This file is read twice: by the C compiler (through engine.h, which includes
   <stdint.h>/<stddef.h> first) and verbatim by LuaJIT's ffi.cdef, which has no
   preprocessor. So: no #include, no #define, no macros; constants are enums.
   Enum values are stored in files and databases: only ever append to them.

   Conventions
   - Every function is lacos_<object>_<verb>.
   - Out-parameters that receive a new object or tensor come first.
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
  LACOS_ESTATE = 12,       /* object used in the wrong state */
  LACOS_ECOMM = 13         /* another process of the job failed, died or stopped answering */
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
/* While held (on = 1), a requested interrupt is kept aside: pending() says 0
   and nothing stops in the middle of work that every rank of a job must do
   in step; lacos_interrupt_held() reports it (its level) so that the ranks
   can agree to stop at a step boundary. Releasing (on = 0) makes a kept
   interrupt pending again. */
void lacos_interrupt_hold(int on);
int lacos_interrupt_held(void);

/* A uniform double in [0, 1) from a counter-based stream: value `counter` of
   stream `seed` (exact for seeds and counters below 2^53). Scripts use it
   for reproducible shuffles that do not depend on Lua's own generator. */
double lacos_random_uniform(double seed, double counter);

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
/* Bytes of the engine's bookkeeping on the CPU (object handles, tensor
   headers, names, work lists, allocation headers): counted, but apart from
   lacos_memory_allocated, which is data only (a view allocates nothing). */
double lacos_memory_overhead(void);
/* Memory the system can still give this process: MemAvailable from
   /proc/meminfo (LACOS_CPU) or the GPU's free memory (LACOS_CUDA; 0 when
   there is no device), bounded by the engine's soft limit when one is set. */
double lacos_memory_available(int device);
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
/* Git's blob id of a file: SHA-1 of "blob <size>\0" + contents (41 bytes
   of hex + NUL), what the Hugging Face hub reports for non-LFS files. */
int lacos_git_blob_sha1_file(const char *path, char *hex);

/* ===== dir (fileio.c: output directories written whole) ===== */

/* An output directory is built under a temporary sibling and moved into
   place in one rename, so a reader (or a crash) sees the previous directory
   or the complete new one, never a half-written one. */

/* LACOS_OK when dir can take a new output: it does not exist, is an empty
   directory, or replace is set and it is a directory. Otherwise
   LACOS_ESTATE ("<dir>: exists and is not empty") or LACOS_EIO. */
int lacos_dir_check_output(const char *dir, int replace);
/* Creates the temporary sibling "<dir>.tmp.<pid>" (and dir's parents) and
   writes its path (cap bytes); one left by an earlier attempt of this
   process is removed first. */
int lacos_dir_temp(char *path, int cap, const char *dir);
/* Moves the finished temporary into place: fsyncs its files and itself,
   renames it to dir (exchanging the two atomically when dir is a non-empty
   directory and replace is set, then removing the old one) and fsyncs the
   parent. Checks lacos_dir_check_output again first. */
int lacos_dir_commit(const char *tmp, const char *dir, int replace);
/* Removes a directory tree (a failed output's temporary). A missing path is
   not an error. */
int lacos_dir_remove(const char *path);

/* Writes a whole file atomically: nbytes of data go to "<path>.tmp.<pid>",
   which is flushed, fsync'd, closed (each step checked) and renamed over
   path, then the directory is fsync'd; on any failure the temporary is
   removed, path is left as it was and the error names path and the cause
   (a full disk: "No space left on device"). Temporaries of path that
   processes no longer running left behind are removed first. Every file
   lacos writes from Lua goes through here. */
int lacos_file_write(const char *path, const void *data, double nbytes);

/* ----- end dir ----- */

/* ===== the operating system (system.c): paths, processes, clocks ===== */

/* Nothing here goes through a shell: names and arguments reach the system
   as they are, so no string from a user, a file or a database is ever run
   as shell code. */

typedef enum lacos_path_kind_value {
  LACOS_PATH_NONE = 0, LACOS_PATH_FILE = 1, LACOS_PATH_DIR = 2, LACOS_PATH_OTHER = 3
} lacos_path_kind_value;
/* What path is (links are followed): LACOS_PATH_NONE when it does not
   exist, a regular file, a directory, or anything else. Never fails. */
int lacos_path_kind(const char *path);
/* The absolute form of path in *out (freed with lacos_text_free): the real
   path when it exists (symbolic links and ".." resolved), else its
   parent's real path and its last name, else the working directory joined
   with it. */
int lacos_path_absolute(char **out, const char *path);
/* Creates dir and its missing parents; an existing directory is fine, an
   existing file of that name is an error. */
int lacos_dir_make(const char *dir);
/* The names in dir but "." and "..", sorted bytewise, each ending in a NUL,
   in one buffer of *bytes bytes freed with lacos_text_free (a name may
   contain newlines). LACOS_ENOTFOUND when dir does not exist. */
int lacos_dir_names(char **names, double *bytes, const char *dir);
void lacos_text_free(char *text);
/* Runs a program with the argument vector argv (NULL-terminated; argv[0] is
   looked up in PATH) and waits for it. stdin_path, stdout_path and
   stderr_path redirect those streams from/to files (NULL: inherited;
   output files are truncated). *exit_code receives the exit status, or
   128 + the signal that ended it. Fails only when the program cannot be
   started (LACOS_ENOTFOUND: not on PATH). */
int lacos_process_run(int *exit_code, const char *const *argv, const char *stdin_path, const char *stdout_path,
                      const char *stderr_path);
/* Seconds: monotonic (for durations), CPU time of this process, wall clock
   (since the epoch). */
double lacos_clock_monotonic(void);
double lacos_clock_process(void);
double lacos_clock_wall(void);
/* 1 when fd is a terminal. */
int lacos_terminal_is(int fd);
/* Sleeps up to `seconds`, returning early (1) when an interrupt is pending. */
int lacos_sleep(double seconds);

/* Clears the error flag of the C library's stdin after a read that a
   signal interrupted, so that reading can go on. */
void lacos_stdin_clear_error(void);

/* Takes the lock of directory dir (created if missing): the file
   "<dir>/.lacos-lock", flock'ed and holding "pid <pid> host <host>". Another
   process holding it is LACOS_ESTATE, naming that pid and host. A lock left
   by a process that died is free (the kernel released it) and is taken
   over: previous (cap bytes) receives its holder's line, else "". *handle
   is for lacos_dir_unlock, which removes the file; a process that exits
   releases its locks. */
int lacos_dir_lock(int *handle, const char *dir, char *previous, int cap);
void lacos_dir_unlock(int handle, const char *dir);

/* RLIMIT_AS (ulimit -v) in bytes; 0 when there is none. */
double lacos_memory_address_limit(void);
/* The memory limit of this process's cgroup (the smallest of its group's
   and its ancestors': v2 memory.max, v1 memory.limit_in_bytes); 0 when
   there is none. */
double lacos_memory_cgroup_limit(void);
/* The memory this process can still use under its limits: the address
   space RLIMIT_AS leaves, and its cgroup's limit (v2 memory.max, v1
   memory.limit_in_bytes, as Slurm and containers set them) less what the
   group uses (reclaimable page cache counted as free), whichever is
   smaller; 0 when neither limits it. *why (when not NULL): 0 none, 1 the
   address-space limit, 2 the cgroup's. */
double lacos_memory_headroom(int *why);

/* ----- end system ----- */

/* ===== the lacos executable (engine/main.c) ===== */

/* Defined by the `lacos` program, not by liblacos (reach them through
   ffi.C): absent when the engine is loaded into another host, such as
   plain luajit, so callers check. */
/* --memory-limit / LACOS_MEMORY_LIMIT: "8G", "500M", "50%", "off"; -1 when
   the text is not a size. */
int lacos_cli_memory_limit_set(const char *text);
double lacos_cli_memory_limit(void);
int lacos_cli_memory_limit_explicit(void);
double lacos_cli_lua_heap(void);
double lacos_cli_memory_refusals(void);
/* Re-arms the interrupt handling after the Lua side dealt with one (the
   next SIGINT is a first one again) and clears the engine's flag. */
void lacos_cli_signals_reset(void);
/* The last of SIGINT, SIGTERM and SIGUSR2 (Slurm's warning before a time
   limit) that the process received, 0 for none; kept after the engine's
   flag is cleared, so a sweep task knows whether to requeue itself. */
int lacos_cli_last_signal(void);
/* Ignores SIGINT, SIGTERM and SIGUSR2 from now on (a task about to end). */
void lacos_cli_signals_ignore(void);
/* While on (the REPL running a statement), a first interrupt that Lua has
   not answered within 1.5 s prints that the next one quits. */
void lacos_cli_interrupt_notice(int on);

/* ----- end executable ----- */

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
/* *count = the NaN and infinite elements of a CPU tensor (0 for integer dtypes). */
int lacos_tensor_count_nonfinite(const lacos_tensor *t, double *count);
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

typedef struct lacos_safetensors lacos_safetensors;

/* Opens a .safetensors file, a model.safetensors.index.json, or a checkpoint
   directory holding model.safetensors (preferred, as transformers does) or
   model.safetensors.index.json with its shards. Every header is validated
   before anything is used: the length (at most 100,000,000 bytes and inside
   the file), a JSON object without duplicate keys, known dtypes, shapes
   whose element count × dtype size equals the data_offsets span, tensors
   tiling the data buffer from 0 to the end of the file with no hole or
   overlap; a sharded checkpoint must have every tensor of its weight_map in
   the shard named there and no tensor in two shards. Each file is
   memory-mapped once. Tensors are numbered 0..count-1 in name order. */
int lacos_safetensors_open(lacos_safetensors **out, const char *path);
void lacos_safetensors_free(lacos_safetensors *st);
int lacos_safetensors_count(const lacos_safetensors *st);
const char *lacos_safetensors_name(const lacos_safetensors *st, int i);
/* Index of a tensor by name; a "transformer." prefix may be present on
   either side ("h.0.input_layernorm.weight" finds
   "transformer.h.0.input_layernorm.weight"). -1 when absent, -2 when both
   spellings are in the checkpoint (ambiguous; the last error says so). */
int lacos_safetensors_find(const lacos_safetensors *st, const char *name);
/* dtype is a lacos_dtype, or -1 for a valid safetensors dtype the engine
   does not hold (BOOL, I16, U16, U32, U64, C64, F8_*, F6_*, F4); ndim is the
   true rank; shape receives the first min(ndim, max_dims) sizes. */
int lacos_safetensors_info(const lacos_safetensors *st, int i, int *dtype, int *ndim, int64_t *shape, int max_dims);
/* The file's dtype string ("F32", "BOOL", ...) and data byte count of tensor i. */
const char *lacos_safetensors_dtype_string(const lacos_safetensors *st, int i);
double lacos_safetensors_nbytes(const lacos_safetensors *st, int i);
/* Tensor `name` (found as lacos_safetensors_find does) in the file's dtype:
   a zero-copy view on the mapping, which stays alive while any view does
   (the checkpoint itself may be freed first). Writing to a view changes this
   process's copy only (copy-on-write), never the file. A tensor whose data
   is not aligned to its element size (old writers) comes back as a copy.
   Unsupported dtypes and ranks above 4 fail here, naming file and tensor. */
int lacos_safetensors_get(lacos_tensor **out, lacos_safetensors *st, const char *name);
/* The file tensor i lives in (a shard, for messages) and what was opened. */
const char *lacos_safetensors_file(const lacos_safetensors *st, int i);
const char *lacos_safetensors_path(const lacos_safetensors *st);
/* __metadata__ strings (NULL if absent). For a sharded checkpoint: the
   index's "metadata" strings and integers (total_size as decimal text), then
   the shards' __metadata__ keys not already present. */
const char *lacos_safetensors_metadata(const lacos_safetensors *st, const char *key);
int lacos_safetensors_metadata_count(const lacos_safetensors *st);
const char *lacos_safetensors_metadata_key(const lacos_safetensors *st, int i);

/* Writes tensors (any engine dtype, any strides) and optional string
   metadata to one file, atomically (temporary file, fsync, rename). The
   layout is upstream's: header space-padded to a multiple of 8, data ordered
   by descending dtype (upstream's alignment order) then name, so every
   tensor is aligned in a mapped copy and the bytes equal those of
   safetensors' save_file for the same tensors and metadata. */
int lacos_safetensors_write(const char *path, int n, const char *const *names, lacos_tensor *const *tensors,
                            int nmeta, const char *const *meta_keys, const char *const *meta_values);
/* Sharded as huggingface_hub splits state dicts: greedy in the given order
   by tensor bytes, at most max_shard_bytes of data per shard (0 = the hub's
   default 5,000,000,000), a tensor larger than that alone in its own shard;
   files model-00001-of-00003.safetensors ... plus
   model.safetensors.index.json ({"metadata": {"total_size": N, ...},
   "weight_map": {...}}), or one plain model.safetensors when everything
   fits. Every file carries the metadata format = "pt"; the caller's
   metadata goes into the single file, or into the index's "metadata" when
   sharded. Afterwards, files of this naming (model-NNNNN-of-NNNNN.safetensors,
   and the other layout's model.safetensors or index) that the save did not
   write are removed, so no stale file shadows the new checkpoint. */
int lacos_safetensors_write_sharded(const char *dir, int n, const char *const *names, lacos_tensor *const *tensors,
                                    double max_shard_bytes, int nmeta, const char *const *meta_keys,
                                    const char *const *meta_values);

/* ----- end safetensors ----- */

/* ===== tokenizer (tokenizer.c, wordpiece.c, tokenizer_template.c: Hugging Face tokenizer.json) ===== */

/* A tokenizer.json giving the ids the tokenizers library gives, for two
   kinds of model:
   - byte-level BPE as BLOOM's: added and special tokens split the text
     first, then the pre-tokenizer (BLOOM's Split regex, or GPT-2's ByteLevel
     regex) cuts pieces, each piece is mapped byte → character and merged by
     rank;
   - WordPiece as BERT's: added tokens, BertNormalizer (clean text, spaces
     around CJK characters, accents stripped through NFD, lowercase),
     BertPreTokenizer (whitespace and punctuation), then the longest
     vocabulary entries ("##" continuations, [UNK] for words that do not
     match or are too long).
   The post-processor's special tokens (a TemplateProcessing or
   BertProcessing: [CLS] ... [SEP]) are added by encode, encode_list and
   encode_batch; BLOOM's adds none. A tokenizer is used by one thread at a
   time; encode_list and encode_batch spread a batch over the engine's
   threads themselves. Text is UTF-8 with an explicit byte length (len < 0:
   NUL-terminated); invalid UTF-8 fails with LACOS_EINVAL. */
typedef struct lacos_tokenizer lacos_tokenizer;

typedef enum lacos_tokenizer_side {
  LACOS_TOKENIZER_RIGHT = 0,
  LACOS_TOKENIZER_LEFT = 1
} lacos_tokenizer_side;

/* Which text of a pair truncation shortens (tokenizers' TruncationStrategy). */
typedef enum lacos_tokenizer_truncation {
  LACOS_TOKENIZER_LONGEST_FIRST = 0,   /* the longer one first, down to an even split */
  LACOS_TOKENIZER_ONLY_FIRST = 1,
  LACOS_TOKENIZER_ONLY_SECOND = 2
} lacos_tokenizer_truncation;

/* How encode_batch truncates and pads. batch_options_init fills it from the
   file's "truncation" and "padding" sections (right padding to the longest
   row, no limit and the "<pad>" or else "[PAD]" token when the file has
   none) and turns the special tokens on. A row's length counts its special
   tokens: truncation cuts the text(s) so that the row, specials included,
   fits max_length, as the tokenizers library does. */
typedef struct lacos_tokenizer_batch_options {
  int max_length;          /* longest row allowed; 0 = no limit */
  int truncation;          /* 1: cut longer rows to max_length; 0: a longer row is an error (LACOS_ELIMIT) */
  int truncation_side;     /* lacos_tokenizer_side: which end is cut */
  int pad_length;          /* pad every row to at least this length (the file's Fixed padding); 0 = to the longest */
  int pad_to_multiple_of;  /* round the padded length up to a multiple of this; 0 = no rounding */
  int padding_side;        /* lacos_tokenizer_side */
  int pad_id;              /* -1 = none known: padding is then an error */
  int add_special;         /* 1: the post-processor's special tokens ([CLS] ... [SEP]); 0: the text's ids alone */
  int pad_type_id;         /* type id of padding positions */
  int truncation_strategy; /* lacos_tokenizer_truncation, for pairs */
} lacos_tokenizer_batch_options;

int lacos_tokenizer_load(lacos_tokenizer **out, const char *path);
void lacos_tokenizer_free(lacos_tokenizer *tok);
/* Largest id + 1 (model vocabulary and added tokens). */
int lacos_tokenizer_vocab_size(const lacos_tokenizer *tok);
/* -1 when the string is not a token. Token strings are written as in the file
   (byte-level characters: "Ġworld" for " world"). */
int lacos_tokenizer_token_to_id(const lacos_tokenizer *tok, const char *token, double len);
/* NULL when no token has this id; valid while the tokenizer lives. */
const char *lacos_tokenizer_id_to_token(const lacos_tokenizer *tok, int id, double *len);
/* 1 for special added tokens (skipped by decode with skip_special). */
int lacos_tokenizer_is_special(const lacos_tokenizer *tok, int id);
/* "BPE" or "WordPiece" (static text). */
const char *lacos_tokenizer_model_type(const lacos_tokenizer *tok);
/* How many special tokens the post-processor adds around one text (pair = 0)
   or a pair of texts (pair = 1): 2 and 3 for BERT, 0 for BLOOM. */
int lacos_tokenizer_special_count(const lacos_tokenizer *tok, int pair);
/* The ids of one text with the post-processor's special tokens, without
   truncation or padding. *ids stays valid until the next call on this
   tokenizer. */
int lacos_tokenizer_encode(lacos_tokenizer *tok, const int32_t **ids, int *n, const char *text, double len);
/* The ids of n texts (lens may be NULL), concatenated: text i has ids
   [offsets[i], offsets[i+1]). Special tokens as encode; no truncation. Both
   arrays stay valid until the next call. */
int lacos_tokenizer_encode_list(lacos_tokenizer *tok, const int32_t **ids, const int32_t **offsets,
                                const char *const *texts, const double *lens, int n);
/* encode_list under opt's add_special, max_length, truncation and
   truncation_side (padding fields are ignored); opt NULL = the file's. */
int lacos_tokenizer_encode_list_opt(lacos_tokenizer *tok, const int32_t **ids, const int32_t **offsets,
                                    const char *const *texts, const double *lens, int n,
                                    const lacos_tokenizer_batch_options *opt);
void lacos_tokenizer_batch_options_init(const lacos_tokenizer *tok, lacos_tokenizer_batch_options *opt);
/* ids and mask: (n, T) i32, mask 1 on tokens and 0 on padding. opt NULL = the file's settings. */
int lacos_tokenizer_encode_batch(lacos_tensor **ids, lacos_tensor **mask, lacos_tokenizer *tok,
                                 const char *const *texts, const double *lens, int n,
                                 const lacos_tokenizer_batch_options *opt);
/* encode_batch of n pairs (first[i], second[i]) under the post-processor's
   pair template ([CLS] A [SEP] B [SEP] for BERT), or of n single texts when
   second is NULL. type_ids (may be NULL): (n, T) i32, the template's type id
   of each position (0 for A, 1 for B in BERT; pad_type_id on padding). */
int lacos_tokenizer_encode_pairs(lacos_tensor **ids, lacos_tensor **mask, lacos_tensor **type_ids, lacos_tokenizer *tok,
                                 const char *const *first, const double *first_lens, const char *const *second,
                                 const double *second_lens, int n, const lacos_tokenizer_batch_options *opt);
/* Text of n ids through the file's decoder: ByteLevel (invalid UTF-8 from
   partial tokens becomes U+FFFD), WordPiece ("##" continuations joined, a
   space before other tokens, " ." and the like cleaned up), or none (tokens
   joined with spaces). An id outside the vocabulary is an error. *text stays
   valid until the next call on this tokenizer. */
int lacos_tokenizer_decode(lacos_tokenizer *tok, const char **text, double *len, const int32_t *ids, int n,
                           int skip_special);
/* The text lowercased code point by code point with utf8proc's simple case
   mapping (what sentence-transformers' do_lower_case does with Python's
   str.lower, except the few one-to-many mappings such as U+0130). out holds
   cap bytes (2·len + 4 always suffice); *out_len receives the length;
   invalid UTF-8 is an error naming its byte offset. */
int lacos_text_lower(const char *text, double len, char *out, double cap, double *out_len);

/* ----- end tokenizer ----- */

/* ===== bloom (bloom.c, bert.c and the cpu/ layers: config, weights, forward/backward, int8, pooling) ===== */

/* The model handle of every family: BLOOM (bloom.c) and BERT encoders
   (bert.c) share it and every lacos_bloom_* and lacos_lora_* call below;
   config.json's model_type picks the family at load. */
typedef struct lacos_bloom lacos_bloom;

/* Model families (config.json's model_type). */
typedef enum lacos_family { LACOS_FAMILY_BLOOM = 0, LACOS_FAMILY_BERT = 1 } lacos_family;

/* The fields of a config.json that shape the network (BLOOM's names; BERT's
   num_hidden_layers, num_attention_heads, layer_norm_eps and
   max_position_embeddings fill the same fields). */
typedef struct lacos_bloom_config {
  int vocab_size;           /* embedding rows (250,880 for the released models) */
  int hidden_size;          /* C */
  int n_layer;
  int n_head;
  double layer_norm_epsilon;
  int max_length;           /* longest accepted sequence (seq_length, 2048; BERT: max_position_embeddings) */
  int bos_token_id, eos_token_id, pad_token_id;
  int family;               /* lacos_family */
  int intermediate_size;    /* feed-forward width; 0 = 4·hidden_size (BLOOM's) */
  int type_vocab_size;      /* BERT's token type rows (2); 0 for BLOOM */
  int gelu_exact;           /* 1: erf GELU (BERT's "gelu"); 0: the tanh approximation (BLOOM, "gelu_new") */
} lacos_bloom_config;

typedef enum lacos_quant { LACOS_QUANT_F32 = 0, LACOS_QUANT_INT8 = 1 } lacos_quant;
/* sentence-transformers' pooling modes. */
typedef enum lacos_pooling {
  LACOS_POOL_MEAN = 0, LACOS_POOL_WEIGHTEDMEAN = 1, LACOS_POOL_LASTTOKEN = 2, LACOS_POOL_CLS = 3,
  LACOS_POOL_MAX = 4, LACOS_POOL_MEAN_SQRT_LEN = 5
} lacos_pooling;

typedef struct lacos_bloom_options {
  int quant;            /* lacos_quant */
  double threshold;     /* LLM.int8 outlier threshold; 0 = no decomposition, 6.0 = the common default */
  int device;           /* lacos_device */
  int embedding_dtype;  /* table dtype for random models: f16 (default), f32, bf16, i8 */
  int cache;            /* int8 loads: reuse/write the quantised-weight cache (see lacos_bloom_cache_path) */
  /* int8 models: the linears kept in f32 (bitsandbytes' llm_int8_skip_modules,
     ONNX Runtime's nodes_to_exclude): comma-separated module-name patterns;
     NULL = none. A pattern names a module by its full name or its last
     dotted components (transformers' names: "h.3.mlp.dense_4h_to_h",
     "encoder.layer.4.intermediate.dense"; a "transformer." or "bert."
     prefix is ignored), and with it every linear the module is or holds:
     "value" names every layer's value, "layer.4.intermediate.dense" one
     linear, "mlp" both feed-forward linears of every BLOOM block, "h.1" all
     of block 1 (not block 11); "output.dense" names BERT's
     attention.output.dense too, as PEFT's suffix match would. BERT's query,
     key and value are one fused linear in lacos (module "attention.self"):
     naming any of them keeps all three of that layer in f32. A pattern that
     names no linear, an empty pattern, or a list with quant f32 is an error
     (LACOS_EINVAL, the message lists the model's linears). The loaded
     model's formats: lacos_bloom_linear_quant. */
  const char *int8_skip;
} lacos_bloom_options;

void lacos_bloom_options_init(lacos_bloom_options *opt);
/* bloom-560m, bloom-1b1, bloom-1b7, bloom-3b, bloom-7b1 (the released shapes)
   and the tiny test ladder tiny-xs, tiny-s, tiny-m, tiny-l. */
int lacos_bloom_config_named(lacos_bloom_config *cfg, const char *name);
/* A ';'-separated list of the names lacos_bloom_config_named knows. */
const char *lacos_bloom_config_names(void);
int lacos_bloom_config_read(lacos_bloom_config *cfg, const char *path);
int lacos_bloom_config_write(const lacos_bloom_config *cfg, const char *path);
double lacos_bloom_config_params(const lacos_bloom_config *cfg);

/* Loads a Hugging Face checkpoint directory (config.json +
   model.safetensors or shards + index): a BloomModel, or a BertModel
   (model_type "bert"; a "bert." prefix on the names is accepted). */
int lacos_bloom_load(lacos_bloom **out, const char *dir, const lacos_bloom_options *opt);
/* Random weights (N(0, 0.02)-like, uniform codes per row), generated straight
   into the chosen quantisation: an int8 model never holds an f32 copy. */
int lacos_bloom_random(lacos_bloom **out, const lacos_bloom_config *cfg, double seed,
                       const lacos_bloom_options *opt);
/* Writes config.json and model.safetensors (or shards past max_shard_bytes,
   0 = the hub default 5 GB) in dtype f32, f16 or bf16. */
int lacos_bloom_save(lacos_bloom *m, const char *dir, int dtype, double max_shard_bytes);
/* Where the int8 cache of a checkpoint lives: $LACOS_CACHE (default
   ~/.cache/lacos) / int8-<sha256 of the directory, its weight files' sizes
   and times, the cache format and, with opt's int8_skip, which linears
   are f32>.zst. A changed checkpoint gets a new name, so a stale cache is
   never read; each skip list gets its own cache. opt NULL: the defaults. */
int lacos_bloom_cache_path(const char *dir, const lacos_bloom_options *opt, char *path, int cap);
void lacos_bloom_free(lacos_bloom *m);
int lacos_bloom_get_config(const lacos_bloom *m, lacos_bloom_config *cfg);
int lacos_bloom_quant(const lacos_bloom *m);
double lacos_bloom_weight_bytes(const lacos_bloom *m);
/* The engine's linears (n_layer x 4, block by block), by module name
   ("h.3.self_attention.query_key_value"; BERT's fused query, key and value:
   "encoder.layer.3.attention.self"), and the format each holds its weights
   in (LACOS_QUANT_INT8 or LACOS_QUANT_F32; -1 for an index out of range). */
int lacos_bloom_linear_count(const lacos_bloom *m);
const char *lacos_bloom_linear_name(const lacos_bloom *m, int i);
int lacos_bloom_linear_quant(const lacos_bloom *m, int i);
/* The memory planner's weights: the bytes a model of cfg loaded with opt
   holds for its linears and small parameters (every linear in its own
   format; the embedding table, which stays in its checkpoint dtype, not
   counted), without loading anything. Fails as a load would on a bad
   int8_skip. */
int lacos_bloom_plan_weight_bytes(double *bytes, const lacos_bloom_config *cfg, const lacos_bloom_options *opt);

/* ids, mask: (B,T) i32. hidden: (B,T,C) f32, or with all_layers the
   L+1 states of transformers' output_hidden_states as (L+1,B,T,C). */
int lacos_bloom_forward(lacos_tensor **hidden, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask,
                        int all_layers);
/* Pooled sentence embeddings (B,C) f32. */
int lacos_bloom_encode(lacos_tensor **embeddings, lacos_bloom *m, const lacos_tensor *ids,
                       const lacos_tensor *mask, int pooling);
/* The same, with the first prompt_tokens real tokens of each row attended to
   but left out of the pooling (sentence-transformers' include_prompt =
   false with a prompt of that many tokens before every text); weightedmean
   keeps the remaining tokens' weights, a row with nothing left (a prompt as
   long as the row or longer) pools to zeros. */
int lacos_bloom_encode_prompt(lacos_tensor **embeddings, lacos_bloom *m, const lacos_tensor *ids,
                              const lacos_tensor *mask, int pooling, int prompt_tokens);
/* The checkpoint's tensors by name (transformers' BloomModel names), as f32
   in the checkpoint layout (int8 weights dequantised). */
int lacos_bloom_weight_count(const lacos_bloom *m);
const char *lacos_bloom_weight_name(const lacos_bloom *m, int i);
int lacos_bloom_weight(lacos_tensor **out, lacos_bloom *m, const char *name);
/* Outlier feature columns seen by the four linears of a layer in the last
   forward (qkv, dense, h_to_4h, 4h_to_h); 0 when the threshold is 0. */
int lacos_bloom_outliers(const lacos_bloom *m, int layer, int *counts);

/* Training. A forward pass that keeps what the backward pass needs (all
   activations, or with checkpointing only each block's input, recomputing
   the rest), then the backward pass from the embeddings' gradient into the
   LoRA gradients (accumulated). The base weights stay frozen. stream selects
   the LoRA dropout masks (0 = no dropout, as in evaluation). */
typedef struct lacos_bloom_batch lacos_bloom_batch;
int lacos_bloom_forward_train(lacos_tensor **embeddings, lacos_bloom_batch **batch, lacos_bloom *m,
                              const lacos_tensor *ids, const lacos_tensor *mask, int pooling, double stream);
/* The same with a key per row (B entries in 0..2^31-1; NULL: the row index)
   for the dropout masks: a row's masks depend on its key, the stream and its
   tokens only, not on the other rows, the padding or the batch size. The
   training loop keys each sentence by its row in the global batch, so that
   a GradCache chunk or one rank's share sees the masks of the whole batch. */
int lacos_bloom_forward_train_rows(lacos_tensor **embeddings, lacos_bloom_batch **batch, lacos_bloom *m,
                                   const lacos_tensor *ids, const lacos_tensor *mask, int pooling, double stream,
                                   const int64_t *row_keys);
int lacos_bloom_backward(lacos_bloom *m, lacos_bloom_batch *batch, const lacos_tensor *d_embeddings);
void lacos_bloom_batch_free(lacos_bloom_batch *batch);
double lacos_bloom_batch_bytes(const lacos_bloom_batch *batch);
/* The training memory the model keeps between steps (the largest batch's so
   far, reused by the next one; 0 before the first training forward). */
double lacos_bloom_train_workspace_bytes(const lacos_bloom *m);
/* Recompute block activations in the backward pass instead of keeping them. */
int lacos_bloom_set_checkpointing(lacos_bloom *m, int on);
int lacos_bloom_get_checkpointing(const lacos_bloom *m);
/* Input gradients through int8 linears as int8 products (faster, ~1% noise)
   instead of exact f32 products with the dequantised weights. */
int lacos_bloom_set_fast_backward(lacos_bloom *m, int on);
int lacos_bloom_get_fast_backward(const lacos_bloom *m);
/* Predicted bytes of a training forward+backward's activations for B
   sequences of T tokens (the memory planner). */
double lacos_bloom_train_activation_bytes(const lacos_bloom_config *cfg, int B, int T, int lora_r,
                                          int lora_targets, int checkpointing);
/* Predicted bytes of the CPU's scratch during a training step of B
   sequences of T tokens (the largest of the four linears' int8 product
   buffers, forward and the input gradient in its fast or exact form, and
   attention's rows, plus the quarter the scratch grows by; and the loss's
   working memory), for the memory planner. Larger on CPUs whose int8 GEMM lacks VNNI (the operand is split
   in two). */
double lacos_bloom_train_scratch_bytes(const lacos_bloom_config *cfg, int B, int T, int fast_backward);

/* ----- end bloom ----- */

/* ===== lora (lora.c: adapters and their merge for export; lora_peft.c: PEFT import/export) ===== */

/* Linears a LoRA adapter can target (bit flags; PEFT's module names in
   comments, BLOOM's then BERT's). */
typedef enum lacos_lora_target {
  LACOS_LORA_QKV = 1,        /* self_attention.query_key_value (PEFT's BLOOM default); BERT has none */
  LACOS_LORA_DENSE = 2,      /* self_attention.dense; BERT: attention.output.dense */
  LACOS_LORA_H_TO_4H = 4,    /* mlp.dense_h_to_4h; BERT: intermediate.dense */
  LACOS_LORA_4H_TO_H = 8,    /* mlp.dense_4h_to_h; BERT: output.dense */
  LACOS_LORA_QUERY = 16,     /* BERT: attention.self.query (PEFT's BERT default, with value) */
  LACOS_LORA_KEY = 32,       /* BERT: attention.self.key */
  LACOS_LORA_VALUE = 64      /* BERT: attention.self.value */
} lacos_lora_target;

typedef struct lacos_lora_config {
  int r;               /* rank */
  double alpha;        /* scaling = alpha / r (alpha / sqrt(r) with use_rslora) */
  double dropout;      /* on the adapter input, as PEFT's lora_dropout */
  int targets;         /* lacos_lora_target bits */
  int use_rslora;
  double seed;         /* initialisation and dropout stream */
} lacos_lora_config;

/* PEFT's LoraConfig defaults: r 8, alpha 8, dropout 0, query_key_value. */
void lacos_lora_config_init(lacos_lora_config *c);
/* Adds adapters (A Kaiming-uniform with a = sqrt(5), B = 0, so the model's
   output is unchanged until training moves B). Replaces existing ones. */
int lacos_lora_attach(lacos_bloom *m, const lacos_lora_config *c);
int lacos_lora_detach(lacos_bloom *m);
int lacos_lora_set_enabled(lacos_bloom *m, int on);
int lacos_lora_get_config(const lacos_bloom *m, lacos_lora_config *c);
double lacos_lora_param_count(const lacos_bloom *m);
/* Adapted linears are numbered 0..count-1 (layer-major). */
int lacos_lora_slot_count(const lacos_bloom *m);
int lacos_lora_slot_info(const lacos_bloom *m, int slot, int *layer, int *target);
/* The module slot kind `target` adapts in block `layer`, as PEFT and the
   checkpoint name it ("h.3.self_attention.query_key_value",
   "encoder.layer.3.attention.self.query"); NULL (error set) when the
   model's family has no such kind. Valid until the next call. */
const char *lacos_lora_module_name(const lacos_bloom *m, int layer, int target);
/* Views (sharing the model's memory; valid while the adapter exists) of a
   slot's tensors. which: 0 = A (r,in), 1 = B (out,r), 2 = grad A, 3 = grad B. */
int lacos_lora_tensor(lacos_tensor **out, lacos_bloom *m, int slot, int which);
int lacos_lora_zero_grad(lacos_bloom *m);
/* PEFT's adapter format: adapter_config.json + adapter_model.safetensors with
   PEFT's tensor names (base_model.model.h.<i>.<module>.lora_A/B.weight) and
   query_key_value's lora_B rows in BLOOM's per-head interleaved order, so
   peft.PeftModel.from_pretrained(BloomModel) loads it. The saved file is read
   back and checked (tensor count and shapes) before success is reported. */
int lacos_lora_save(lacos_bloom *m, const char *dir, const char *base_model);
/* Attaches the adapter stored in dir (written by lacos or by PEFT); every
   tensor the config implies must be present with the right shape. */
int lacos_lora_load(lacos_bloom *m, const char *dir);

/* Merging, for export. lacos_lora_merge makes an f32 copy of the base
   weight of every adapted linear (dequantised from int8, made on the first
   merge and kept with the adapter) and adds scaling·B·A to it, as PEFT's
   merge does; lacos_lora_unmerge subtracts the same delta again. The model's
   own weights (int8 or f32) and its forward pass do not change: the adapter
   stays applied on top of them. While the copy exists, lacos_bloom_weight
   and lacos_bloom_save read the adapted linears from it, so a merged model
   saves as a plain checkpoint (query_key_value rows in the checkpoint's
   interleaved order, as every weight). A merged adapter whose A or B changed
   afterwards (training) makes them fail with LACOS_ESTATE until it is
   unmerged and merged again; unmerge always subtracts the delta that was
   added. Attach, load and detach drop the copy. Costs 4 bytes per adapted
   base weight (for bloom-7b1's query_key_value: 6.0 GB). */
int lacos_lora_merge(lacos_bloom *m);
int lacos_lora_unmerge(lacos_bloom *m);
/* 0: no copy; 1: merged; 2: unmerged (the copy holds the base weights again,
   within f32 rounding). */
int lacos_lora_merge_state(const lacos_bloom *m);

/* ----- end lora ----- */

/* ===== optim (optim.c: AdamW and 8-bit blockwise Adam) ===== */

/* Two optimizers over f32 parameters, each with its f32 gradient:
   - LACOS_OPTIM_ADAMW: torch.optim.AdamW (decay p *= 1 - lr*wd before the
     Adam update, eps added to sqrt(v-hat)); states m, v in f32, 8 bytes/param.
   - LACOS_OPTIM_ADAM8BIT: bitsandbytes' Adam8bit with the update of its CUDA
     kernel kOptimizerStatic8bit2StateBlockwise: m and v quantised per block
     of 256 with the signed / unsigned dynamic maps and a per-block absmax
     (about 2.03 bytes/param); weight decay p *= 1 - lr*wd after the update;
     tensors under min_8bit_size elements keep f32 states (bitsandbytes'
     32-bit kernel). engine/optim.c's header states the semantics exactly.
   Both: an element whose gradient is NaN or infinite gets m = v = 0 and its
   parameter is left alone that step (the 8-bit kernel's rule, used for every
   path); lacos_optim_nonfinite counts them. Results are bit-identical for
   any thread count. */
typedef enum lacos_optim_kind {
  LACOS_OPTIM_ADAMW = 0,
  LACOS_OPTIM_ADAM8BIT = 1
} lacos_optim_kind;

typedef struct lacos_optim_config {
  int kind;               /* lacos_optim_kind */
  double lr;              /* used when lacos_optim_step gets a negative lr */
  double beta1, beta2;    /* in [0, 1) */
  double eps;             /* >= 0 */
  double weight_decay;    /* >= 0, decoupled */
  int block_size;         /* ADAM8BIT: 256 (the only size); ADAMW: 0 */
  int min_8bit_size;      /* ADAM8BIT: tensors with fewer elements keep f32 states (4096); ADAMW: 0 */
} lacos_optim_config;

typedef struct lacos_optim lacos_optim;

/* Defaults: ADAM8BIT as bitsandbytes' Adam8bit (lr 1e-3, betas 0.9/0.999,
   eps 1e-8, wd 0, 256, 4096); ADAMW as torch.optim.AdamW (lr 1e-3, betas
   0.9/0.999, eps 1e-8, wd 0.01). An unknown kind leaves kind = -1, which
   lacos_optim_new rejects. */
void lacos_optim_config_init(lacos_optim_config *cfg, int kind);
int lacos_optim_new(lacos_optim **out, const lacos_optim_config *cfg);
void lacos_optim_free(lacos_optim *o);
int lacos_optim_get_config(const lacos_optim *o, lacos_optim_config *cfg);
/* Registers a parameter and its gradient: contiguous f32 CPU tensors of the
   same shape, not overlapping any registered tensor. The optimizer keeps
   views (so the storages stay referenced) and never frees the memory. Only
   before the first step or state access; names are unique. */
int lacos_optim_add(lacos_optim *o, const char *name, const lacos_tensor *param, const lacos_tensor *grad);
/* One update of every parameter from its gradient. lr >= 0 is this step's
   learning rate (a scheduler's value; 0 is a real zero), lr < 0 takes the
   config's. The first step is step 1. */
int lacos_optim_step(lacos_optim *o, double lr);
int lacos_optim_zero_grad(lacos_optim *o);
/* Global L2 norm of all gradients (accumulated in double, fixed order). */
int lacos_optim_grad_norm(lacos_optim *o, double *norm);
/* torch.nn.utils.clip_grad_norm_: when the norm exceeds max_norm (> 0; inf
   only measures) the gradients are scaled by max_norm / (norm + 1e-6). A
   non-finite norm is reported in *norm_before and nothing is scaled. */
int lacos_optim_clip_grad_norm(lacos_optim *o, double max_norm, double *norm_before);
int lacos_optim_step_count(const lacos_optim *o);
/* Gradient elements that were NaN or infinite in the last step. */
double lacos_optim_nonfinite(const lacos_optim *o);
int lacos_optim_param_count(const lacos_optim *o);        /* tensors */
double lacos_optim_numel(const lacos_optim *o);           /* elements */
/* Bytes of optimizer state (codes, absmax, f32 moments), known from the
   first lacos_optim_add on; divide by lacos_optim_numel for bytes/param. */
double lacos_optim_state_bytes(const lacos_optim *o);
/* The state as named tensors for checkpoints: per parameter "<name>.state1"
   (m) and "<name>.state2" (v), u8 codes in the parameter's shape for 8-bit
   tensors plus "<name>.absmax1" / "<name>.absmax2" (f32, one per block), or
   f32 in the parameter's shape; then "step" (i64, 1 element). Tensors are
   views of the live state (a fresh tensor for "step"): save them before the
   next step. */
int lacos_optim_state_count(lacos_optim *o, int *count);
const char *lacos_optim_state_name(lacos_optim *o, int i);   /* NULL when out of range */
int lacos_optim_state_tensor(lacos_tensor **out, lacos_optim *o, int i);
/* Restores every entry at once: names must be exactly this optimizer's
   entries, each tensor with the expected dtype and shape, absmax and f32
   moments finite (v >= 0); nothing changes unless all entries pass. */
int lacos_optim_state_load(lacos_optim *o, int n, const char *const *names, lacos_tensor *const *tensors);
/* A parameter's m and v as new f32 tensors (dequantised for 8-bit states). */
int lacos_optim_moments(lacos_tensor **m, lacos_tensor **v, lacos_optim *o, const char *name);

/* bitsandbytes' create_dynamic_map(signed) as 256 sorted floats. */
const float *lacos_optim_dynamic_map(int is_signed);
/* Blockwise quantisation as bitsandbytes' quantize_blockwise: per block of
   block_size (64..4096, a power of two) absmax = max|x| and the nearest code
   to x * (1/absmax) (ties to the lower code; an all-zero block gets the
   code of 0). codes: u8 in x's shape; absmax: f32 (blocks). */
int lacos_optim_quantize(lacos_tensor **codes, lacos_tensor **absmax, const lacos_tensor *x, int is_signed,
                         int block_size);
int lacos_optim_dequantize(lacos_tensor **x, const lacos_tensor *codes, const lacos_tensor *absmax, int is_signed,
                           int block_size);

/* ----- end optim ----- */

/* ===== loss (loss.c: MNRL, CoSENT, softmax classifier) ===== */

/* Each loss returns its value and writes the gradient with respect to its
   inputs into the given tensors (same shapes, f32, overwritten; NULL to
   skip). Embeddings are (n, d) f32 tensors. */

/* MultipleNegativesRankingLoss (sentence-transformers): candidates are the B
   positives followed by any hard negatives (B·(1+k) rows); anchor i's positive
   is candidate i, every other candidate is a negative. loss = mean cross-
   entropy of scale·cos(anchor, candidates). symmetric adds the
   positive→anchor direction and averages the two (MNSRL). */
int lacos_loss_mnrl(const lacos_tensor *anchors, const lacos_tensor *candidates, double scale, int symmetric,
                    double *loss, lacos_tensor *d_anchors, lacos_tensor *d_candidates);
/* CoSENTLoss: log(1 + Σ_{label_i < label_j} exp(scale·(cos_i − cos_j))), cos_i = cos(u_i, v_i). */
int lacos_loss_cosent(const lacos_tensor *u, const lacos_tensor *v, const lacos_tensor *labels, double scale,
                      double *loss, lacos_tensor *du, lacos_tensor *dv);
/* SBERT's SoftmaxLoss: logits = W·[u; v; |u−v|] + b, mean cross-entropy over
   integer labels (i32, 0..n_labels−1). W (n_labels, 3d), b (n_labels). */
int lacos_loss_softmax(const lacos_tensor *u, const lacos_tensor *v, const lacos_tensor *labels,
                       const lacos_tensor *W, const lacos_tensor *b, double *loss,
                       lacos_tensor *du, lacos_tensor *dv, lacos_tensor *dW, lacos_tensor *db);

/* ----- end loss ----- */

/* ===== train (train.c, checkpoint.c: training steps and run checkpoints) ===== */

/* Run checkpoints: a directory <dir>/ckpt-<step, 8 digits>/ holding
   tensors.safetensors.zst (zstd-compressed safetensors: LoRA weights,
   optimizer state, any trainable loss parameters), state.json (step, data
   position, seeds, anything the caller records) and manifest.json (the
   size and SHA-256 of both). It is written under a temporary name, every
   file and the directory fsync'd, then renamed into place, so a crash leaves
   either the previous checkpoint or the complete new one. */
typedef struct lacos_checkpoint lacos_checkpoint;
int lacos_checkpoint_save(const char *dir, int step, int n, const char *const *names,
                          lacos_tensor *const *tensors, const char *state_json);
/* Opens ckpt-<step> (or any checkpoint directory path) and verifies the
   manifest: sizes and hashes must match before anything is trusted. */
int lacos_checkpoint_open(lacos_checkpoint **out, const char *path);
void lacos_checkpoint_free(lacos_checkpoint *ck);
const char *lacos_checkpoint_state(const lacos_checkpoint *ck);
/* The tensors, owned by the checkpoint. */
lacos_safetensors *lacos_checkpoint_tensors(lacos_checkpoint *ck);
/* The i-th newest checkpoint directory of dir (by step), or LACOS_ENOTFOUND
   past the last; stale temporary directories are ignored. path needs cap bytes. */
int lacos_checkpoint_find(const char *dir, int i, char *path, int cap, int *step);
/* Deletes all but the `keep` newest checkpoints and any temporaries left by
   a crash. */
int lacos_checkpoint_prune(const char *dir, int keep);
/* Creates dir and its parents (lacos_checkpoint_save does too) and checks
   that checkpoints can be written there, so a bad output path fails before
   the first training step rather than at the first checkpoint. */
int lacos_checkpoint_dir_prepare(const char *dir);

/* ----- end train ----- */

/* ===== datasets (datasets.c: STS, NLI and pair readers) ===== */

/* A pair set: sentence pairs (or triplets) with a gold score or a label,
   grouped into subsets (one per file read: an STS12 genre, an STS17 track, a
   language). Records point into one text arena owned by the set, so Lua reads
   them without a call per string. Readers follow ../shared/datasets/PITFALLS.md:
   bytes -> drop a UTF-8 BOM -> split on \n -> strip one \r -> skip the header
   lines -> split on TAB (never CSV quoting, except the CSV reader) -> take the
   mapped columns. Every malformed line fails with "file:line: cause" and
   leaves the set as it was before the call. */
typedef struct lacos_pairset lacos_pairset;

typedef enum lacos_label_kind {
  LACOS_LABELS_NONE = 0,    /* no label column */
  LACOS_LABELS_NLI = 1,     /* entailment / neutral / contradiction, any case */
  LACOS_LABELS_BINARY = 2,  /* 0 / 1 (MSRP Quality) */
  LACOS_LABELS_INT = 3      /* any integer (e.g. 0/1/2 class ids) */
} lacos_label_kind;

typedef enum lacos_nli_label {
  LACOS_NO_LABEL = -1, LACOS_ENTAILMENT = 0, LACOS_NEUTRAL = 1, LACOS_CONTRADICTION = 2
} lacos_nli_label;

/* One record. s1/s2 (and s3 for triplets, else NULL) are NUL-terminated
   UTF-8 inside the set's arena, valid until the set is freed. */
typedef struct lacos_pair {
  const char *s1, *s2, *s3;
  int32_t len1, len2, len3;
  int32_t label;            /* lacos_nli_label, a binary/int label, or -1 */
  double score;             /* gold similarity; NaN when the source has none */
  int32_t subset;           /* index into lacos_pairset_subsets */
  int32_t line;             /* 1-based line of the (input) file it came from */
} lacos_pair;

/* Pairs first .. first+count-1 came from one read call. lang1/lang2 are the
   languages of columns 1 and 2 as given by the caller ("" when unknown). */
typedef struct lacos_pair_subset {
  const char *name, *lang1, *lang2, *source;
  int32_t first, count;
  int32_t lines;            /* data lines seen (including unscored/skipped ones) */
  int32_t skipped;          /* lines dropped: blank gold, unlabeled, filtered */
} lacos_pair_subset;

/* How to read one file. Columns are 1-based; 0 = absent. */
typedef struct lacos_read_spec {
  const char *subset;            /* subset name; NULL = the file's base name */
  const char *lang1, *lang2;
  int header;                    /* lines (records for CSV) to skip first */
  int min_fields, max_fields;    /* 0 = the highest mapped column / unlimited */
  int col_s1, col_s2, col_s3, col_score, col_label;
  int label_kind;                /* lacos_label_kind */
  int filter_col;                /* keep only rows whose field equals filter_value */
  const char *filter_value;
  int trim;                      /* strip leading/trailing ASCII whitespace from sentences */
  int skip_blank;                /* skip blank lines instead of failing */
  int skip_unlabeled;            /* NLI: drop rows labelled "-" or "" (SNLI's no-consensus pairs) */
  int allow_empty;               /* accept empty sentences */
  int truncate_input;            /* gold pairing: score only the first (gold lines) input lines (STS17 track6) */
  double score_min, score_max;   /* accepted score range; NaN = unchecked */
  double max_line_bytes;         /* 0 = 1 MiB */
  double max_file_bytes;         /* 0 = 8 GiB */
  const char *key_s1, *key_s2, *key_s3, *key_label, *key_score;  /* JSON lines */
} lacos_read_spec;

/* Defaults: header 0, trim on, NaN score range, JSON keys of SNLI/MultiNLI 1.0
   (sentence1, sentence2, gold_label). */
void lacos_read_spec_init(lacos_read_spec *spec);

int lacos_pairset_new(lacos_pairset **out);
void lacos_pairset_free(lacos_pairset *s);
/* TAB-separated fields (STSb, SICK, XNLI, KorNLI, MSRP, AllNLI.tsv, generic). */
int lacos_pairset_read_tsv(lacos_pairset *s, const char *path, const lacos_read_spec *spec);
/* RFC 4180 comma-separated values: quoted fields, doubled quotes, commas and
   newlines inside quotes (stsb-multi-mt, SimCSE's nli_for_simcse.csv). */
int lacos_pairset_read_csv(lacos_pairset *s, const char *path, const lacos_read_spec *spec);
/* STS 2012-2017: input line i pairs with gold line i; a blank gold line is an
   unscored pair and is dropped. The files must have the same number of lines
   unless spec->truncate_input (then only the first gold-lines inputs count). */
int lacos_pairset_read_gold(lacos_pairset *s, const char *input, const char *gold, const lacos_read_spec *spec);
/* Line-aligned files: sentence 1, sentence 2 and optionally one label per
   line (SNLI InferSent s1/s2/labels, Tatoeba bitext; labels may be NULL). */
int lacos_pairset_read_lines(lacos_pairset *s, const char *path1, const char *path2, const char *labels,
                             const lacos_read_spec *spec);
/* JSON lines with string fields named by spec->key_* (SNLI/MultiNLI 1.0 .jsonl). */
int lacos_pairset_read_jsonl(lacos_pairset *s, const char *path, const lacos_read_spec *spec);

int lacos_pairset_size(const lacos_pairset *s);
/* The record array; valid until the next read into the same set. */
const lacos_pair *lacos_pairset_pairs(const lacos_pairset *s);
int lacos_pairset_subset_count(const lacos_pairset *s);
const lacos_pair_subset *lacos_pairset_subsets(const lacos_pairset *s);
double lacos_pairset_text_bytes(const lacos_pairset *s);
/* SHA-256 over the records (s1 TAB s2 TAB s3 TAB score TAB label LF): the
   content revision recorded with every score. */
int lacos_pairset_sha256(const lacos_pairset *s, char *hex);

/* NLI pairs -> training examples (a new set with s1 = anchor, s2 = positive,
   s3 = negative or NULL):
   PREMISE: one (premise, entailed hypothesis, contradicting hypothesis)
     triplet per premise that has both, premises in first-appearance order;
   SBERT: sentence-transformers' AllNLI recipe: every sentence collects its
     entailment and contradiction partners in both directions; each sentence
     with both yields (s, e, c) and (e', s, c');
   ENTAILMENT: every entailment pair as (premise, hypothesis), no negative.
   seed < 0 picks the first partner in file order, otherwise a seeded
   uniform choice among the distinct partners. */
typedef enum lacos_triplet_mode {
  LACOS_TRIPLETS_PREMISE = 0, LACOS_TRIPLETS_SBERT = 1, LACOS_PAIRS_ENTAILMENT = 2
} lacos_triplet_mode;
int lacos_pairset_nli_triplets(lacos_pairset **out, const lacos_pairset *src, int mode, double seed);

/* ----- end datasets ----- */

/* ===== sts (sts.c: cosine scores, Spearman, Pearson) ===== */

/* Cosine similarity of row i of a and row i of b, for (n, d) tensors of any
   float dtype, computed in double: out is (n) f64. A zero row scores 0 (as
   sentence-transformers' normalise-then-dot does). */
int lacos_sts_cosine(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b);
/* Average ranks (scipy.stats.rankdata method "average", 1-based). Fails on
   non-finite values. */
int lacos_sts_rank(double *ranks, const double *x, int64_t n);
/* Pearson and Spearman (Pearson of average ranks) correlation in double, as
   scipy.stats.pearsonr / spearmanr. n >= 2. A constant input or any
   non-finite value gives NaN (scipy gives NaN with a warning). Not x100. */
int lacos_sts_pearson(double *r, const double *x, const double *y, int64_t n);
int lacos_sts_spearman(double *rho, const double *x, const double *y, int64_t n);

/* ----- end sts ----- */

/* ===== results (results_*.c: the SQLite results database) ===== */

/* The results database: one SQLite file (default results/lacos.db, or
   $LACOS_DB) holding experiments, runs, typed params, metric time series,
   STS scores, timings, artifacts and tags in plain tables that `sqlite3`
   reads as well as lacos does. Several processes on one host may write at
   once: WAL journal, a busy timeout on every connection (30 s, or
   $LACOS_DB_TIMEOUT seconds), BEGIN IMMEDIATE for every write, short
   transactions, metrics buffered and flushed in batches. The schema is
   versioned; an older file is migrated when opened, a newer one refused
   untouched. Failures name the file and the cause with LACOS_EDB (LACOS_EIO
   for the file system, LACOS_ENOTFOUND for a missing file). */
typedef struct lacos_db lacos_db;
typedef struct lacos_run lacos_run;
typedef struct lacos_db_query lacos_db_query;

enum { LACOS_DB_SCHEMA_VERSION = 3 };

typedef enum lacos_db_flags {
  LACOS_DB_READONLY = 1,   /* the file must exist; logging calls fail (an older schema is still migrated if the file is writable) */
  LACOS_DB_NOCREATE = 2,   /* a missing file is LACOS_ENOTFOUND instead of a new database */
  LACOS_DB_ROLLBACK = 4    /* a rollback journal instead of WAL: a shard on a network filesystem (results_merge.c) */
} lacos_db_flags;

/* Stored as text (the names below) in runs.status. */
typedef enum lacos_run_status {
  LACOS_RUN_QUEUED = 0,
  LACOS_RUN_RUNNING = 1,
  LACOS_RUN_DONE = 2,
  LACOS_RUN_FAILED = 3,
  LACOS_RUN_INTERRUPTED = 4,
  LACOS_RUN_DEAD = 5        /* was running, heartbeat older than 60 s */
} lacos_run_status;

const char *lacos_run_status_name(int status);
int lacos_run_status_from_name(const char *name);   /* -1 if unknown */

/* path NULL or "" = $LACOS_DB or results/lacos.db (relative to the current
   directory); missing directories are created. */
int lacos_db_open(lacos_db **out, const char *path, int flags);
/* Flushes and checkpoints. Runs still open keep working (and keep the
   connection) until they are freed; other calls on a closed db fail. */
void lacos_db_close(lacos_db *db);
const char *lacos_db_path(const lacos_db *db);
int lacos_db_schema_version(const lacos_db *db);
int lacos_db_set_timeout(lacos_db *db, double seconds);

/* Canonical JSON: keys sorted (bytewise), no spaces, integral numbers below
   2^53 without a fraction or exponent, other numbers in the shortest form
   that reads back exactly, duplicate keys refused. sha256_hex (65 bytes, or
   NULL) receives the hash of the canonical text. Free *out with
   lacos_db_text_free. */
int lacos_db_canonical_json(char **out, char *sha256_hex, const char *json);
void lacos_db_text_free(char *text);

/* Get-or-create by name. script_path (or NULL) is read, hashed and stored
   with its full text (every version seen is kept in the scripts table);
   axes_json (or NULL) is the sweep's declared axes. */
int lacos_db_experiment(double *id, lacos_db *db, const char *name, const char *script_path,
                        const char *axes_json);

typedef struct lacos_run_options {
  double experiment_id;      /* 0 = none */
  const char *name;          /* NULL = none */
  const char *config_json;   /* NULL = {}; stored canonical, hashed, flattened into params */
  double seed;
  int has_seed;
  double parent_run_id;      /* resumed-from / evaluation-of, 0 = none */
  int reuse;                 /* 1: claim (experiment, config hash, seed) atomically, see below */
  const char *workdir;       /* where git is asked for the commit; NULL = the script's directory or cwd */
  double heartbeat_seconds;  /* heartbeat thread period, 0 = 10 s, < 0 = none (at most 30) */
  int flush_rows;            /* metrics buffered up to this many rows (0 = 500) */
  double flush_seconds;      /* ... or this long (0 = 5 s) */
} lacos_run_options;

void lacos_run_options_init(lacos_run_options *o);
/* Starts a run (status running). With reuse, in one write transaction: a
   run with the same experiment, config hash and seed that is done, or
   running with a fresh heartbeat, is returned with *started = 0 (a
   read-only handle: skip that point); a queued one is taken over; otherwise
   (none, or only failed/interrupted/dead ones) a new run starts. *started = 1
   when this handle owns a running run. */
int lacos_run_start(lacos_run **out, int *started, lacos_db *db, const lacos_run_options *opt);
/* Adds a queued run for a sweep point unless an equivalent queued, running
   or done run exists (then *created = 0 and *id is that run). */
int lacos_db_enqueue(double *id, int *created, lacos_db *db, const lacos_run_options *opt);
double lacos_run_id(const lacos_run *run);
const char *lacos_run_uuid(const lacos_run *run);
int lacos_run_get_status(const lacos_run *run);
/* Params are typed and immutable: logging the same value again is a no-op,
   a different value is an error. Non-finite numbers are refused. */
int lacos_run_param_num(lacos_run *run, const char *key, double value);
int lacos_run_param_text(lacos_run *run, const char *key, const char *value);
int lacos_run_tag(lacos_run *run, const char *key, const char *value);
/* Buffered; NaN and ±inf are stored as such (is_finite = 0). */
int lacos_run_metric(lacos_run *run, double step, const char *key, double value);
int lacos_run_flush(lacos_run *run);
int lacos_run_heartbeat(lacos_run *run);

/* One STS score with everything that moves it. Text fields NULL and
   numbers NaN mean unknown (stored NULL). Correlations are raw (-1..1). */
typedef struct lacos_sts_record {
  const char *dataset;       /* required, e.g. "stsb", "sts17" */
  const char *language;      /* "en", or a pair "en-de" */
  const char *split;         /* required: "test", "validation", ... */
  double step;               /* training step of the evaluation, -1 = final */
  double n_pairs;
  double spearman;
  double pearson;
  const char *similarity;    /* "cosine" */
  const char *pooling;       /* "mean", "weightedmean", "lasttoken" */
  const char *text_variant;  /* "raw", "senteval-tokenized" */
  const char *aggregation;   /* "per-subset", "concatenated", "none" */
  const char *model;
  const char *adapter;
  const char *quantisation;  /* "int8", "f32", ... */
  const char *dtype;
  double batch_size;
  const char *dataset_sha256;
} lacos_sts_record;
void lacos_sts_record_init(lacos_sts_record *r);
int lacos_run_sts(lacos_run *run, const lacos_sts_record *r);

/* A benchmark or phase timing (llama-bench style). Numbers NaN = unknown. */
typedef struct lacos_timing_record {
  const char *phase;         /* required: "train_step", "encode", "eval", "load", ... */
  const char *device;        /* "cpu", "cuda:0", NULL */
  double step;               /* -1 = not tied to a step */
  double threads;            /* NaN = the engine's current thread count */
  double repetitions;
  double n_items;
  double n_tokens;
  double avg_ns;
  double stddev_ns;
  double peak_bytes;
  double optimizer_state_bytes;
} lacos_timing_record;
void lacos_timing_record_init(lacos_timing_record *t);
int lacos_run_timing(lacos_run *run, const lacos_timing_record *t);

/* Records a file or directory that is already in place: its absolute path,
   size and SHA-256 (of a directory: over "relative-path NUL file-sha256 LF"
   lines of its regular files in byte order). Written with synchronous=FULL. */
int lacos_run_artifact(char *sha256_hex, double *bytes, lacos_run *run, const char *kind,
                       const char *path, double step);

/* Ends the run: status done, failed or interrupted; reason a short keyword
   (e.g. "nonfinite", "signal") and message free text, both optional.
   Flushes metrics, stops the heartbeat, checkpoints the WAL (passively). */
int lacos_run_finish(lacos_run *run, int status, const char *reason, const char *message);
/* An owned run freed without finish ends as failed (reason "abandoned"),
   or interrupted if an interrupt is pending; buffered metrics are kept.
   The same happens at process exit. */
void lacos_run_free(lacos_run *run);

/* Marks running runs whose heartbeat is older than stale_seconds as dead. */
int lacos_db_mark_dead(int *count, lacos_db *db, double stale_seconds);

/* Read-only queries (a separate read-only connection; statements that
   would write, ATTACH, or more than one statement are refused). */
typedef enum lacos_db_type {
  LACOS_DB_NULL = 0,
  LACOS_DB_INTEGER = 1,
  LACOS_DB_REAL = 2,
  LACOS_DB_TEXT = 3,
  LACOS_DB_BLOB = 4
} lacos_db_type;

int lacos_db_query_prepare(lacos_db_query **out, lacos_db *db, const char *sql);
int lacos_db_query_params(const lacos_db_query *q);          /* number of ? parameters */
int lacos_db_query_bind_num(lacos_db_query *q, int i, double value);     /* i from 1 */
int lacos_db_query_bind_text(lacos_db_query *q, int i, const char *value);
int lacos_db_query_bind_null(lacos_db_query *q, int i);
/* *has_row = 1 with a row ready, 0 at the end. */
int lacos_db_query_step(int *has_row, lacos_db_query *q);
int lacos_db_query_columns(const lacos_db_query *q);
const char *lacos_db_query_column_name(const lacos_db_query *q, int i);   /* i from 0 */
int lacos_db_query_column_type(const lacos_db_query *q, int i);
double lacos_db_query_column_num(const lacos_db_query *q, int i);
const char *lacos_db_query_column_text(const lacos_db_query *q, int i);  /* NULL for NULL */
double lacos_db_query_column_bytes(const lacos_db_query *q, int i);
void lacos_db_query_free(lacos_db_query *q);

/* ----- end results ----- */

/* ===== shards (results_merge.c: folding task databases into one) ===== */

/* A Slurm sweep's tasks each write their own database shard (opened with
   LACOS_DB_ROLLBACK: SQLite's WAL needs every process on one host, and file
   locks over NFS are unreliable), and one process folds the shards into the
   results database. A merge copies every finished run (done, failed,
   interrupted, dead) of the shard whose uuid the database lacks, with all
   its rows (params, metrics, STS results, timings, artifacts, tags and any
   other table keyed by run_id), its experiment and script texts, in one
   transaction of the database: never half a shard. Runs still queued or
   running are left for a later merge; runs already there are not copied
   again, so merging twice changes nothing. The shard is only read (a
   read-only attach): a shard whose writer was killed mid-transaction (a
   hot journal), a damaged or truncated file, a file that is not a lacos
   database, a shard of another schema version, or of another experiment
   than `experiment` (NULL: any one experiment) is refused with a message
   naming it and the cause (LACOS_EUNSUPPORTED for another schema version,
   LACOS_EDB otherwise), and the database is left as it was. db_path must
   name an existing results database of this schema version (open it once
   with lacos_db_open). */
typedef struct lacos_merge_report {
  int merged;              /* runs copied now */
  int present;             /* finished runs the database already had */
  int unfinished;          /* queued or running runs, left for later */
  int schema_version;      /* the shard's */
  char experiment[256];    /* the shard's experiment ("" when it has no runs) */
} lacos_merge_report;
int lacos_db_merge_shard(lacos_merge_report *report, const char *db_path, const char *shard_path,
                         const char *experiment);
/* What a shard holds, read without writing to it (a read-only open; a hot
   journal is reported, never rolled back): a JSON array with one object
   per run in order (uuid, status, exit_reason, error, experiment,
   config_sha256, seed, host, created_at, started_at, ended_at, heartbeat_at,
   loss and step of its last 'loss' metric, tags). Free *json with
   lacos_text_free. */
int lacos_db_shard_runs(char **json, const char *shard_path);

/* ----- end shards ----- */

/* ===== download (download.c: resumable verified HTTP downloads) ===== */

typedef struct lacos_download_options {
  double connect_timeout_s;  /* default 30 */
  double stall_timeout_s;    /* abort when no byte arrives for this long; default 60 */
  int progress;              /* 0 never, 1 when stderr is a terminal (default), 2 always */
  int resume;                /* continue dest.part with a Range request (default 1) */
  int max_redirects;         /* default 10 */
} lacos_download_options;
void lacos_download_options_init(lacos_download_options *o);

/* Downloads url (http or https, redirects followed) into dest: the bytes go
   to dest.part (resumed with a Range request when it exists; a server that
   ignores Range restarts it), then the size (expected_bytes >= 0) and SHA-256
   (expected_sha256 != NULL) are checked and dest.part is renamed over dest.
   A hash or oversize mismatch removes dest.part; a short transfer keeps it for
   the next call. sha256_out (65 bytes, may be NULL) and bytes_out (may be
   NULL) receive what was actually fetched, also when the check fails. */
int lacos_download(const char *url, const char *dest, double expected_bytes, const char *expected_sha256,
                   const lacos_download_options *opt, char *sha256_out, double *bytes_out);

/* ----- end download ----- */

/* ===== collectives (comm.c: the processes of a job) ===== */

/* Data-parallel training runs one process per GPU (or per CPU socket) under
   a launcher: mpirun/mpiexec, or srun --mpi=pmix. Without a launcher a
   process is alone (rank 0 of 1, the "self" backend: nothing is loaded and
   every collective is a copy). With one, the MPI backend (liblacos_mpi.so,
   opened at run time) connects the ranks. Device tensors are summed with
   NCCL when libnccl.so.2 loads, else staged through host memory.

   Every collective must be called by every rank, in the same order. While a
   rank waits, the backend watches the others: a rank that dies, reports a
   failure (lacos_comm_abort) or is silent for `timeout` seconds makes the
   wait fail with LACOS_ECOMM naming that rank, its host and process id;
   after that the communicator is broken and the process should exit. */

/* Who this process is according to the launcher's environment (no library
   loaded): OMPI_COMM_WORLD_*, PMI_RANK/PMI_SIZE, an srun step's
   SLURM_PROCID/SLURM_STEP_NUM_TASKS, PMIX_RANK, or RANK/WORLD_SIZE.
   size is -1 when the launcher does not say (PMIx alone), local_rank and
   local_size -1 when unknown; launched = 1 when a launcher started more
   than one process (or an unknown number). */
typedef struct lacos_comm_env_info {
  int rank, size, local_rank, local_size;
  int launched;
  char source[64];
} lacos_comm_env_info;
int lacos_comm_env(lacos_comm_env_info *info);

typedef enum lacos_comm_device_mode {
  LACOS_COMM_DEVICE_AUTO = 0,   /* NCCL when it loads, else host staging */
  LACOS_COMM_DEVICE_HOST = 1,   /* always stage device buffers through host memory */
  LACOS_COMM_DEVICE_NCCL = 2    /* NCCL or an error (also with one rank) */
} lacos_comm_device_mode;

typedef struct lacos_comm_options {
  char backend[16];    /* "" or "auto" (from the environment), "self", "mpi" */
  double timeout;      /* seconds of silence after which a peer counts as dead (default 60) */
  int device_mode;     /* lacos_comm_device_mode */
} lacos_comm_options;
void lacos_comm_options_init(lacos_comm_options *opt);

typedef struct lacos_comm lacos_comm;
/* The first open starts the process group (MPI_Init); it ends with the last
   free (MPI_Finalize, unless the group broke) and cannot start again. */
int lacos_comm_open(lacos_comm **out, const lacos_comm_options *opt);
void lacos_comm_free(lacos_comm *c);
int lacos_comm_rank(const lacos_comm *c);
int lacos_comm_size(const lacos_comm *c);
int lacos_comm_local_rank(const lacos_comm *c);    /* among the ranks on this host */
int lacos_comm_local_size(const lacos_comm *c);
/* "self", "mpi", "mpi+nccl 2.28.3", "mpi (device buffers staged through the host)" */
const char *lacos_comm_backend(const lacos_comm *c);
const char *lacos_comm_host(const lacos_comm *c, int rank);
double lacos_comm_pid(const lacos_comm *c, int rank);

/* For a job whose gradients live on the GPU: sets up NCCL now (every rank
   calls it, after its model is on the device), or settles on host staging
   when NCCL cannot load or the mode says host; lacos_comm_backend then
   names what device reductions use. Otherwise that happens on the first
   device reduction. */
int lacos_comm_prepare_device(lacos_comm *c);
/* In place: every rank's tensors become the elementwise sum over the ranks.
   One call sums a list (packed into one message); the tensors are
   contiguous, all f32, f64 or i64, all on one device. */
int lacos_comm_allreduce_sum(lacos_comm *c, int n, lacos_tensor *const *tensors);
/* The ranks' host tensors concatenated along dimension 0 in rank order
   (their other dimensions and dtype must agree; the rows may differ).
   rows (size() entries, or NULL) receives each rank's row count. */
int lacos_comm_allgather(lacos_tensor **out, lacos_comm *c, const lacos_tensor *local, int64_t *rows);
/* root's contents into every rank's t (same shape and dtype everywhere). */
int lacos_comm_broadcast(lacos_comm *c, lacos_tensor *t, int root);
int lacos_comm_barrier(lacos_comm *c);
/* Tells the other ranks that this one fails with `why` (they stop waiting
   and report it) and breaks the communicator. */
int lacos_comm_abort(lacos_comm *c, const char *why);
/* Changes the silence after which a peer counts as dead. */
int lacos_comm_set_timeout(lacos_comm *c, double seconds);
/* LACOS_OK while every peer is alive, else LACOS_ECOMM naming one that is not. */
int lacos_comm_check_peers(lacos_comm *c);
/* Totals since open: collective calls, payload bytes (each rank's
   contribution to a reduction, or every rank's rows of a gather) and
   seconds spent inside collectives (waiting included). */
void lacos_comm_stats(const lacos_comm *c, double *calls, double *bytes, double *seconds);

/* ----- end collectives ----- */

/* ===== cuda (cuda.c: device discovery and the CUDA backend) ===== */

/* A model runs on the GPU when its options say device = LACOS_CUDA
   (lacos_bloom_load / lacos_bloom_random copy the weights there); its LoRA
   tensors are then device tensors, the optimizer steps them on the GPU, and
   forward, encode and forward_train still return host tensors. Tensors move
   with lacos_tensor_to_device. Without CUDA (a build without nvcc, or no
   device or driver) each of these fails with LACOS_EDEVICE and the reason. */

/* 1 when CUDA kernels were compiled into this lacos. */
int lacos_cuda_compiled(void);
/* 1 when a CUDA device can be used; otherwise 0 and the reason in why
   ("this lacos was built without CUDA support (no nvcc at build time)",
   "no CUDA device: <CUDA's reason>"). why may be NULL. */
int lacos_cuda_available(char *why, int cap);
/* Device 0: name (cap bytes), compute capability as major·10 + minor,
   multiprocessors, free and total memory in bytes. */
int lacos_cuda_info(char *name, int cap, int *compute_capability, int *multiprocessors, double *free_bytes,
                    double *total_bytes);
/* The memory planner's check: LACOS_OK when `bytes` more fit in the GPU's
   free memory, LACOS_ELIMIT otherwise with "<what> needs X GiB of GPU
   memory, but <device> has Y GiB free of Z GiB". */
int lacos_cuda_check_fit(double bytes, const char *what);
/* Waits until the GPU has finished the work queued so far (for timings). */
int lacos_cuda_synchronize(void);
/* GPUs visible to this process (0 without CUDA or a device), and the one it
   uses: select before the first use (a model on "cuda"); selecting another
   once the device is in use is LACOS_ESTATE. */
int lacos_cuda_device_count(void);
int lacos_cuda_select(int index);
int lacos_cuda_selected(void);

/* ----- end cuda ----- */

