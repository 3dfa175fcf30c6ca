/* safetensors.c: the safetensors format (huggingface/safetensors,
   safetensors/src/tensor.rs) and Hugging Face's sharded checkpoints
   (huggingface_hub serialization/_base.py, transformers save_pretrained):
   a validated, memory-mapped reader for single files, checkpoint
   directories and model.safetensors.index.json with its shards, and an
   atomic writer (single file or sharded with the index).

   Layout: u64 little-endian header length N, N bytes of UTF-8 JSON (an
   object of {"dtype", "shape", "data_offsets": [begin, end)} entries plus an
   optional "__metadata__" string map, right-padded with spaces), then the
   data buffer. The reader refuses anything a hostile file could use before
   it touches a byte of data: N above 100 MB or past the end of the file, a
   header that is not a JSON object, duplicate keys, unknown dtypes, shapes
   whose element count or byte size overflows or disagrees with the offsets,
   and tensors that do not tile the data buffer exactly (no hole, no overlap,
   nothing after the last tensor: upstream's MetadataIncompleteBuffer). */
#include "engine.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

enum { MAX_HEADER = 100000000 };
static const size_t MAX_INDEX_BYTES = (size_t)64 << 20;
static const char PREFIX[] = "transformer.";

/* Every dtype upstream knows, in upstream's enum order: the writer sorts by
   this rank (descending, then by name) exactly as tensor.rs does, so that a
   file written here is byte-identical to one written by the reference. */
static const struct kind { const char *s; int dtype; int bits; } kinds[] = {
  {"BOOL", -1, 8},        {"F4", -1, 4},          {"F6_E2M3", -1, 6},     {"F6_E3M2", -1, 6},
  {"U8", LACOS_U8, 8},    {"I8", LACOS_I8, 8},    {"F8_E5M2", -1, 8},     {"F8_E4M3", -1, 8},
  {"F8_E8M0", -1, 8},     {"F8_E4M3FNUZ", -1, 8}, {"F8_E5M2FNUZ", -1, 8}, {"I16", -1, 16},
  {"U16", -1, 16},        {"F16", LACOS_F16, 16}, {"BF16", LACOS_BF16, 16}, {"I32", LACOS_I32, 32},
  {"U32", -1, 32},        {"F32", LACOS_F32, 32}, {"C64", -1, 64},        {"F64", LACOS_F64, 64},
  {"I64", LACOS_I64, 64}, {"U64", -1, 64},
};
enum { NKINDS = sizeof kinds / sizeof *kinds };

static int kind_of_string(const char *s) {
  for (int k = 0; k < NKINDS; k++) if (strcmp(s, kinds[k].s) == 0) return k;
  return -1;
}
static int kind_of_dtype(int dtype) {
  for (int k = 0; k < NKINDS; k++) if (kinds[k].dtype == dtype && dtype >= 0) return k;
  return -1;
}

/* ------------------------------------------------------------- mappings */

/* One mapped file (or an in-memory image), shared by the checkpoint and
   every tensor view on it. */
typedef struct mapping {
  _Atomic int refs;
  void *base;
  size_t size;
  char *path;
  bool heap;            /* an in-memory image (mem_alloc'd), not a mapped file */
} mapping;

static void map_release(mapping *m) {
  if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
  if (m->heap) mem_free(m->base);
  else {
    if (m->base) munmap(m->base, m->size);
    mem_mapped_add(-(double)m->size);
  }
  mem_free(m->path);
  mem_free(m);
}
static void map_release_cb(void *ctx) { map_release(ctx); }

/* *out = dir/name */
static int join(char **out, const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  TRY(meta_alloc(out, a + b + 2, "a path"));
  memcpy(*out, dir, a);
  (*out)[a] = '/';
  memcpy(*out + a + 1, name, b + 1);
  return LACOS_OK;
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* Maps a regular file. The mapping is private and writable: a view that is
   written to (t:fill(0) on a loaded weight) gets copy-on-write pages instead
   of a segmentation fault, and the file itself never changes. NORESERVE
   keeps a multi-gigabyte checkpoint from counting against overcommit. */
static int map_open(const char *path, mapping **out) {
  *out = NULL;
  /* O_NONBLOCK: opening a FIFO must not hang; non-regular files are refused below */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return fail_errno("%s", path);
  struct stat sb;
  if (fstat(fd, &sb) != 0) { int s = fail_errno("%s", path); close(fd); return s; }
  if (S_ISDIR(sb.st_mode)) { close(fd); return fail(LACOS_EFORMAT, "%s: is a directory, expected a .safetensors file", path); }
  if (!S_ISREG(sb.st_mode)) { close(fd); return fail(LACOS_EFORMAT, "%s: not a regular file", path); }
  if (sb.st_size < 8) {
    close(fd);
    return fail(LACOS_EFORMAT, "%s: file of %lld bytes is too short for a safetensors header (8-byte length first)", path,
                (long long)sb.st_size);
  }
  void *base = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
  int e = errno;
  close(fd);
  if (base == MAP_FAILED) { errno = e; return fail_errno("%s: cannot map the file", path); }
  mapping *m;
  int s = meta_calloc(&m, 1, sizeof *m, "a mapped file");
  if (!s) s = meta_strdup(&m->path, path, "a mapped file");
  if (s) { munmap(base, (size_t)sb.st_size); if (m) mem_free(m); return s; }
  atomic_init(&m->refs, 1);
  m->base = base;
  m->size = (size_t)sb.st_size;
  mem_mapped_add((double)m->size);
  *out = m;
  return LACOS_OK;
}

/* ------------------------------------------------------------- the checkpoint */

typedef struct entry {
  char *name;
  int kind;             /* index into kinds[] */
  int ndim;
  size_t dims;          /* the sizes are st->dims[dims .. dims+ndim) */
  size_t begin, end;    /* absolute byte offsets in the mapping */
  int map;              /* index into st->maps */
} entry;

struct lacos_safetensors {
  char *path;           /* what was opened (file or directory), for messages */
  entry *e;
  int n, cap;
  int64_t *dims;
  size_t ndims, capdims;
  mapping **maps;
  int nmaps;
  json_t *by_name;      /* name -> entry index */
  json_t *by_canon;     /* name without "transformer." -> entry index, or -1 if two names share it */
  char **mkeys, **mvals;
  int nmeta;
};

void lacos_safetensors_free(lacos_safetensors *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) mem_free(st->e[i].name);
  mem_free(st->e);
  mem_free(st->dims);
  for (int i = 0; i < st->nmaps; i++) map_release(st->maps[i]);
  mem_free(st->maps);
  json_decref(st->by_name);
  json_decref(st->by_canon);
  for (int i = 0; i < st->nmeta; i++) { mem_free(st->mkeys[i]); mem_free(st->mvals[i]); }
  mem_free(st->mkeys);
  mem_free(st->mvals);
  mem_free(st->path);
  mem_free(st);
}

static int add_meta(lacos_safetensors *st, const char *k, const char *v) {
  for (int i = 0; i < st->nmeta; i++) if (strcmp(st->mkeys[i], k) == 0) return LACOS_OK;   /* first wins */
  TRY(meta_realloc(&st->mkeys, sizeof *st->mkeys * (size_t)(st->nmeta + 1), "safetensors metadata"));
  TRY(meta_realloc(&st->mvals, sizeof *st->mvals * (size_t)(st->nmeta + 1), "safetensors metadata"));
  char *a, *b;
  TRY(meta_strdup(&a, k, "safetensors metadata"));
  int s = meta_strdup(&b, v, "safetensors metadata");
  if (s) { mem_free(a); return s; }
  st->mkeys[st->nmeta] = a;
  st->mvals[st->nmeta] = b;
  st->nmeta++;
  return LACOS_OK;
}

static int add_entry(lacos_safetensors *st, const entry *e) {
  if (st->n == st->cap) {
    if (st->cap > (1 << 28)) return fail(LACOS_ELIMIT, "too many tensors");
    int cap = st->cap ? st->cap * 2 : 64;
    TRY(meta_realloc(&st->e, sizeof *st->e * (size_t)cap, "safetensors entries"));
    st->cap = cap;
  }
  st->e[st->n++] = *e;
  return LACOS_OK;
}

/* Tensor e's sizes (NULL for a 0-d tensor read before any sizes: no
   arithmetic on a null pool). */
static const int64_t *dims_of(const lacos_safetensors *st, const entry *e) {
  return st->dims ? st->dims + e->dims : NULL;
}

static int push_dim(lacos_safetensors *st, int64_t v) {
  if (st->ndims == st->capdims) {
    size_t cap = st->capdims ? st->capdims * 2 : 256;
    TRY(meta_realloc(&st->dims, sizeof *st->dims * cap, "safetensors shapes"));
    st->capdims = cap;
  }
  st->dims[st->ndims++] = v;
  return LACOS_OK;
}

/* "[2, 3]" for messages (truncated with "..." past the buffer). */
static void shape_text(const int64_t *d, int ndim, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < ndim && k + 24 < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)d[i]);
  if (k + 24 >= n) snprintf(buf + k, n - k, "...]");
  else snprintf(buf + k, n - k, "]");
}

static int cmp_offset(const void *a, const void *b) {
  const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return (x->end > y->end) - (x->end < y->end);
}

/* Reads one tensor's entry from the header into e (and its sizes into st->dims). */
static int parse_entry(lacos_safetensors *st, const char *path, const char *key, json_t *val, size_t dsize, entry *e) {
  if (!json_is_object(val))
    return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": expected an object with dtype, shape and data_offsets", path, key);
  json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"), *jo = json_object_get(val, "data_offsets");
  if (!json_is_string(jd)) return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": missing \"dtype\" string", path, key);
  e->kind = kind_of_string(json_string_value(jd));
  if (e->kind < 0) return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": unknown dtype \"%.40s\"", path, key, json_string_value(jd));
  if (!json_is_array(js)) return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": missing \"shape\" array", path, key);
  if (json_array_size(js) > 100000) return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": rank %zu is absurd", path, key, json_array_size(js));
  e->ndim = (int)json_array_size(js);
  e->dims = st->ndims;
  uint64_t numel = 1;
  bool overflow = false;
  for (int d = 0; d < e->ndim; d++) {
    json_t *x = json_array_get(js, (size_t)d);
    if (!json_is_integer(x) || json_integer_value(x) < 0)
      return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": shape entry %d is not a non-negative integer", path, key, d);
    TRY(push_dim(st, json_integer_value(x)));
    if (__builtin_mul_overflow(numel, (uint64_t)json_integer_value(x), &numel)) overflow = true;
  }
  char shape[96];
  shape_text(dims_of(st, e), e->ndim, shape, sizeof shape);
  if (overflow) return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": element count of shape %s overflows", path, key, shape);
  if (!json_is_array(jo) || json_array_size(jo) != 2)
    return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": missing \"data_offsets\" [begin, end]", path, key);
  json_t *b0 = json_array_get(jo, 0), *b1 = json_array_get(jo, 1);
  if (!json_is_integer(b0) || !json_is_integer(b1) || json_integer_value(b0) < 0 || json_integer_value(b1) < 0)
    return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": data_offsets must be two non-negative integers", path, key);
  uint64_t begin = (uint64_t)json_integer_value(b0), end = (uint64_t)json_integer_value(b1), nbits;
  if (end < begin)
    return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": data_offsets end %llu is before begin %llu", path, key,
                (unsigned long long)end, (unsigned long long)begin);
  if (__builtin_mul_overflow(numel, (uint64_t)kinds[e->kind].bits, &nbits))
    return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": byte size of %s shape %s overflows", path, key, kinds[e->kind].s, shape);
  if (nbits % 8)
    return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": %llu elements of %s do not fill whole bytes", path, key,
                (unsigned long long)numel, kinds[e->kind].s);
  if (nbits / 8 != end - begin)
    return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": data_offsets [%llu, %llu] hold %llu bytes, but %s shape %s needs %llu",
                path, key, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin),
                kinds[e->kind].s, shape, (unsigned long long)(nbits / 8));
  if (end > dsize)
    return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\": data_offsets end %llu is past the %zu-byte data buffer (truncated file?)",
                path, key, (unsigned long long)end, dsize);
  e->begin = (size_t)begin;
  e->end = (size_t)end;
  return LACOS_OK;
}

/* Parses and validates one mapped file's header and appends its tensors. */
static int parse_file(lacos_safetensors *st, int mi, bool keep_meta) {
  mapping *m = st->maps[mi];
  const char *path = m->path;
  const unsigned char *p = m->base;
  uint64_t N = 0;
  for (int i = 0; i < 8; i++) N |= (uint64_t)p[i] << (8 * i);
  if (N > MAX_HEADER)
    return fail(LACOS_EFORMAT, "%s: header length %llu is over the 100,000,000-byte limit (not a safetensors file?)", path,
                (unsigned long long)N);
  if (N > m->size - 8)
    return fail(LACOS_EFORMAT, "%s: header length %llu runs past the end of the %zu-byte file (truncated?)", path,
                (unsigned long long)N, m->size);
  if (N == 0 || p[8] != '{') return fail(LACOS_EFORMAT, "%s: the header does not start with '{'", path);
  json_error_t jerr;
  json_t *root = json_loadb((const char *)p + 8, (size_t)N, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) return fail(LACOS_EFORMAT, "%s: header is not valid JSON (byte %d of the header): %s", path, jerr.position, jerr.text);
  int s = LACOS_OK;
  if (!json_is_object(root)) { s = fail(LACOS_EFORMAT, "%s: the header is not a JSON object", path); goto done; }
  size_t data0 = 8 + (size_t)N, dsize = m->size - data0;
  int first = st->n;
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    if (strcmp(key, "__metadata__") == 0) {
      if (json_is_null(val)) continue;
      if (!json_is_object(val)) { s = fail(LACOS_EFORMAT, "%s: __metadata__ must be an object of strings", path); goto done; }
      const char *mk;
      json_t *mv;
      json_object_foreach(val, mk, mv) {
        if (!json_is_string(mv)) { s = fail(LACOS_EFORMAT, "%s: __metadata__ value for \"%.200s\" is not a string", path, mk); goto done; }
        if (keep_meta && (s = add_meta(st, mk, json_string_value(mv)))) goto done;
      }
      continue;
    }
    entry e = {0};
    e.map = mi;
    if ((s = parse_entry(st, path, key, val, dsize, &e))) goto done;
    e.begin += data0;
    e.end += data0;
    if ((s = meta_strdup(&e.name, key, "safetensors entries"))) goto done;
    if ((s = add_entry(st, &e))) { mem_free(e.name); goto done; }
  }
  /* sorted by offset, the tensors must tile the data buffer exactly */
  int cnt = st->n - first;
  entry **sorted;
  if ((s = meta_alloc(&sorted, sizeof *sorted * (size_t)(cnt ? cnt : 1), "safetensors entries"))) goto done;
  for (int i = 0; i < cnt; i++) sorted[i] = &st->e[first + i];
  qsort(sorted, (size_t)cnt, sizeof *sorted, cmp_offset);
  size_t at = data0;
  for (int i = 0; i < cnt && !s; i++) {
    const entry *e = sorted[i];
    if (e->begin > at)
      s = fail(LACOS_EFORMAT, "%s: %zu bytes at data offset %zu before tensor \"%.200s\" belong to no tensor", path,
               e->begin - at, at - data0, e->name);
    else if (e->begin < at)
      s = fail(LACOS_EFORMAT, "%s: tensor \"%.200s\" (data_offsets [%zu, %zu]) overlaps tensor \"%.200s\"", path, e->name,
               e->begin - data0, e->end - data0, sorted[i - 1]->name);
    at = e->end;
  }
  if (!s && at != m->size)
    s = fail(LACOS_EFORMAT, "%s: %zu bytes after the last tensor (data offset %zu) belong to no tensor", path, m->size - at,
             at - data0);
  mem_free(sorted);
done:
  json_decref(root);
  return s;
}

static int keep_map(lacos_safetensors *st, mapping *m, int *index) {
  int s = meta_realloc(&st->maps, sizeof *st->maps * (size_t)(st->nmaps + 1), "safetensors files");
  if (s) {
    map_release(m);
    return s;
  }
  *index = st->nmaps;
  st->maps[st->nmaps++] = m;
  return LACOS_OK;
}

static int open_file(lacos_safetensors *st, const char *path, bool keep_meta) {
  mapping *m;
  int mi = -1;
  TRY(map_open(path, &m));
  TRY(keep_map(st, m, &mi));
  return parse_file(st, mi, keep_meta);
}

static const char *canonical(const char *s) { return strncmp(s, PREFIX, sizeof PREFIX - 1) == 0 ? s + sizeof PREFIX - 1 : s; }

static int cmp_name(const void *a, const void *b) { return strcmp(((const entry *)a)->name, ((const entry *)b)->name); }

/* Sorts the tensors by name and builds the two lookup tables. A name in two
   shards is an error here (one file cannot repeat a key: the parser refuses
   duplicates). */
static int build_lookup(lacos_safetensors *st) {
  if (st->n > 1) qsort(st->e, (size_t)st->n, sizeof *st->e, cmp_name);
  st->by_name = json_object();
  st->by_canon = json_object();
  if (!st->by_name || !st->by_canon) return fail(LACOS_ENOMEM, "out of memory");
  for (int i = 0; i < st->n; i++) {
    const entry *e = &st->e[i];
    if (i > 0 && strcmp(st->e[i - 1].name, e->name) == 0)
      return fail(LACOS_EFORMAT, "%s: tensor \"%.200s\" is in two shards, %s and %s", st->path, e->name,
                  base_name(st->maps[st->e[i - 1].map]->path), base_name(st->maps[e->map]->path));
    if (json_object_set_new(st->by_name, e->name, json_integer(i)) != 0) return fail(LACOS_ENOMEM, "out of memory");
    const char *c = canonical(e->name);
    json_t *prev = json_object_get(st->by_canon, c);
    if (json_object_set_new(st->by_canon, c, json_integer(prev ? -1 : i)) != 0) return fail(LACOS_ENOMEM, "out of memory");
  }
  return LACOS_OK;
}

static bool plain_file_name(const char *f) {
  return *f && !strchr(f, '/') && strcmp(f, ".") != 0 && strcmp(f, "..") != 0;
}

/* Sharded: model.safetensors.index.json names a shard per tensor. Each shard
   named there is mapped once and validated whole; all its tensors are kept
   (as transformers loads whole shard files); every tensor the index names
   must be in the shard it names. Shards the index does not name are not
   opened. */
static int open_index(lacos_safetensors *st, const char *dir, const char *index_path) {
  char *text;
  size_t len;
  TRY(file_read_all(index_path, MAX_INDEX_BYTES, &text, &len));
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  mem_free(text);
  if (!root) return fail(LACOS_EFORMAT, "%s:%d: invalid JSON: %s", index_path, jerr.line, jerr.text);
  json_t *shards = json_object();   /* shard file name -> mapping index */
  int s = shards ? LACOS_OK : fail(LACOS_ENOMEM, "out of memory");
  json_t *wm = json_object_get(root, "weight_map"), *meta = json_object_get(root, "metadata");
  const char *key;
  json_t *val;
  if (s) goto done;
  if (!json_is_object(root)) { s = fail(LACOS_EFORMAT, "%s: expected a JSON object", index_path); goto done; }
  if (!json_is_object(wm)) { s = fail(LACOS_EFORMAT, "%s: missing the \"weight_map\" object", index_path); goto done; }
  if (meta && !json_is_object(meta) && !json_is_null(meta)) {
    s = fail(LACOS_EFORMAT, "%s: \"metadata\" must be an object", index_path);
    goto done;
  }
  /* the index's own metadata (total_size, ...) comes first; numbers as text */
  if (json_is_object(meta)) json_object_foreach(meta, key, val) {
    char num[32];
    if (json_is_string(val)) s = add_meta(st, key, json_string_value(val));
    else if (json_is_integer(val)) { snprintf(num, sizeof num, "%lld", (long long)json_integer_value(val)); s = add_meta(st, key, num); }
    if (s) goto done;
  }
  json_object_foreach(wm, key, val) {
    if (!json_is_string(val)) { s = fail(LACOS_EFORMAT, "%s: weight_map entry \"%.200s\" is not a file name", index_path, key); goto done; }
    const char *f = json_string_value(val);
    if (!plain_file_name(f)) {
      s = fail(LACOS_EFORMAT, "%s: weight_map entry \"%.200s\" names \"%.200s\"; shards must be plain file names in %s", index_path,
               key, f, dir);
      goto done;
    }
    if (json_object_get(shards, f)) continue;
    char *path;
    if ((s = join(&path, dir, f))) goto done;
    s = open_file(st, path, true);
    if (s == LACOS_ENOTFOUND)
      s = fail(LACOS_ENOTFOUND, "%s: names shard %s (for tensor \"%.200s\"), but %s is missing", index_path, f, key, path);
    mem_free(path);
    if (s) goto done;
    if (json_object_set_new(shards, f, json_integer(st->nmaps - 1)) != 0) { s = fail(LACOS_ENOMEM, "out of memory"); goto done; }
  }
  if ((s = build_lookup(st))) goto done;
  /* every tensor the index names must be in the shard it names */
  json_object_foreach(wm, key, val) {
    json_t *at = json_object_get(st->by_name, key);
    const char *f = json_string_value(val);
    if (!at) {
      s = fail(LACOS_EFORMAT, "%s: weight_map puts tensor \"%.200s\" in %s, which has no such tensor", index_path, key, f);
      goto done;
    }
    const char *holder = base_name(st->maps[st->e[json_integer_value(at)].map]->path);
    if (strcmp(holder, f) != 0) {
      s = fail(LACOS_EFORMAT, "%s: weight_map puts tensor \"%.200s\" in %s, but it is in %s", index_path, key, f, holder);
      goto done;
    }
  }
done:
  json_decref(shards);
  json_decref(root);
  return s;
}

static bool is_file(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode);
}

static bool ends_with(const char *s, const char *tail) {
  size_t a = strlen(s), b = strlen(tail);
  return a >= b && strcmp(s + a - b, tail) == 0;
}

int lacos_safetensors_open(lacos_safetensors **out, const char *path) {
  if (!out) return fail(LACOS_EINVAL, "lacos_safetensors_open: no output pointer");
  *out = NULL;
  if (!path || !*path) return fail(LACOS_EINVAL, "lacos_safetensors_open: empty path");
  struct stat sb;
  if (stat(path, &sb) != 0) return fail_errno("%s", path);
  lacos_safetensors *st;
  TRY(meta_calloc(&st, 1, sizeof *st, "safetensors"));
  int s = meta_strdup(&st->path, path, "safetensors");
  if (s) { mem_free(st); return s; }
  if (S_ISDIR(sb.st_mode)) {
    /* transformers' order: a single model.safetensors wins over an index */
    char *one = NULL, *idx = NULL;
    s = join(&one, path, "model.safetensors");
    if (!s) s = join(&idx, path, "model.safetensors.index.json");
    if (s) {}
    else if (is_file(one)) { s = open_file(st, one, true); if (!s) s = build_lookup(st); }
    else if (is_file(idx)) s = open_index(st, path, idx);
    else s = fail(LACOS_ENOTFOUND, "%s: no model.safetensors or model.safetensors.index.json in this directory", path);
    mem_free(one);
    mem_free(idx);
  } else if (ends_with(path, ".index.json")) {
    char *dir;
    s = meta_strdup(&dir, path, "a path");
    if (!s) {
      char *slash = strrchr(dir, '/');
      if (slash) *slash = 0;
      s = open_index(st, slash ? (*dir ? dir : "/") : ".", path);
      mem_free(dir);
    }
  } else {
    s = open_file(st, path, true);
    if (!s) s = build_lookup(st);
  }
  if (s) { lacos_safetensors_free(st); return s; }
  *out = st;
  return LACOS_OK;
}

/* Takes ownership of a mem_alloc'd safetensors image (a decompressed run
   checkpoint, engine/checkpoint.c); `name` is used in messages. Validated as
   a file is; views point into the image, which is freed with the last. */
int safetensors_open_buffer(lacos_safetensors **out, void *data, size_t size, const char *name) {
  *out = NULL;
  if (size < 8) { mem_free(data); return fail(LACOS_EFORMAT, "%s: image of %zu bytes is too short for a safetensors header", name, size); }
  lacos_safetensors *st = NULL;
  mapping *m = NULL;
  int st_ = meta_calloc(&st, 1, sizeof *st, "safetensors");
  if (!st_) st_ = meta_calloc(&m, 1, sizeof *m, "safetensors image");
  if (!st_) st_ = meta_strdup(&m->path, name, "safetensors image");
  if (!st_) st_ = meta_strdup(&st->path, name, "safetensors image");
  if (st_) {
    if (m) mem_free(m->path);
    mem_free(m);
    mem_free(st);
    mem_free(data);
    return st_;
  }
  atomic_init(&m->refs, 1);
  m->base = data;
  m->size = size;
  m->heap = true;
  int mi = -1;
  int s = keep_map(st, m, &mi);
  if (!s) s = parse_file(st, mi, true);
  if (!s) s = build_lookup(st);
  if (s) { lacos_safetensors_free(st); return s; }
  *out = st;
  return LACOS_OK;
}

int lacos_safetensors_count(const lacos_safetensors *st) { return st ? st->n : 0; }
const char *lacos_safetensors_name(const lacos_safetensors *st, int i) { return st && i >= 0 && i < st->n ? st->e[i].name : NULL; }
const char *lacos_safetensors_file(const lacos_safetensors *st, int i) {
  return st && i >= 0 && i < st->n ? st->maps[st->e[i].map]->path : NULL;
}
const char *lacos_safetensors_path(const lacos_safetensors *st) { return st ? st->path : NULL; }

/* The index of tensor `name` in *index, -1 when absent; an error when both
   spellings are present. */
static int find_entry(int *index, const lacos_safetensors *st, const char *name) {
  *index = -1;
  const char *c = canonical(name);
  json_t *v = json_object_get(st->by_canon, c);
  if (!v) return LACOS_OK;
  json_int_t i = json_integer_value(v);
  if (i >= 0) { *index = (int)i; return LACOS_OK; }
  json_t *plain = json_object_get(st->by_name, c);   /* the two names are c and "transformer." c */
  const char *file = plain ? st->maps[st->e[json_integer_value(plain)].map]->path : st->path;
  return fail(LACOS_EFORMAT, "%s: both \"%.200s\" and \"%s%.200s\" are present, so \"%.200s\" is ambiguous", file, c,
              PREFIX, c, name);
}

int lacos_safetensors_find(const lacos_safetensors *st, const char *name) {
  if (!st || !name) return -1;
  int i;
  return find_entry(&i, st, name) ? -2 : i;
}

int lacos_safetensors_info(const lacos_safetensors *st, int i, int *dtype, int *ndim, int64_t *shape, int max_dims) {
  if (!st || i < 0 || i >= st->n) return fail(LACOS_EINVAL, "tensor index %d out of range (%d tensors)", i, st ? st->n : 0);
  const entry *e = &st->e[i];
  if (dtype) *dtype = kinds[e->kind].dtype;
  if (ndim) *ndim = e->ndim;
  if (shape) for (int d = 0; d < e->ndim && d < max_dims; d++) shape[d] = st->dims[e->dims + (size_t)d];
  return LACOS_OK;
}

const char *lacos_safetensors_dtype_string(const lacos_safetensors *st, int i) {
  return st && i >= 0 && i < st->n ? kinds[st->e[i].kind].s : NULL;
}

double lacos_safetensors_nbytes(const lacos_safetensors *st, int i) {
  return st && i >= 0 && i < st->n ? (double)(st->e[i].end - st->e[i].begin) : -1;
}

int lacos_safetensors_get(lacos_tensor **out, lacos_safetensors *st, const char *name) {
  if (!out) return fail(LACOS_EINVAL, "lacos_safetensors_get: no output pointer");
  *out = NULL;
  if (!st || !name) return fail(LACOS_EINVAL, "lacos_safetensors_get: no checkpoint or name");
  int i;
  TRY(find_entry(&i, st, name));
  if (i < 0) {
    const char *c = canonical(name);
    if (c != name || st->n == 0) return fail(LACOS_ENOTFOUND, "%s: no tensor named \"%.200s\" (nor \"%.200s\")", st->path, name, c);
    return fail(LACOS_ENOTFOUND, "%s: no tensor named \"%.200s\" (nor \"%s%.200s\")", st->path, name, PREFIX, name);
  }
  const entry *e = &st->e[i];
  mapping *m = st->maps[e->map];
  const struct kind *k = &kinds[e->kind];
  if (k->dtype < 0)
    return fail(LACOS_EUNSUPPORTED, "%s: unsupported dtype %s for tensor \"%.200s\" (lacos reads F32, F16, BF16, I8, U8, I32, I64 and F64)",
                m->path, k->s, e->name);
  if (e->ndim > 4)
    return fail(LACOS_EUNSUPPORTED, "%s: tensor \"%.200s\" has %d dimensions; lacos tensors have at most 4", m->path, e->name, e->ndim);
  const int64_t *shape = dims_of(st, e);
  void *data = (char *)m->base + e->begin;
  int size = lacos_dtype_size(k->dtype);
  if ((uintptr_t)data % (uintptr_t)size == 0) {
    /* the usual case (the writers' order aligns every tensor): a view */
    TRY(tensor_wrap(out, data, k->dtype, e->ndim, shape, map_release_cb, m));
    atomic_fetch_add(&m->refs, 1);
    return LACOS_OK;
  }
  /* a misaligned tensor (an old or foreign writer): an aligned copy */
  int s = lacos_tensor_empty(out, k->dtype, LACOS_CPU, e->ndim, shape);
  if (s) return fail_context("%s: tensor \"%.200s\"", m->path, e->name);
  memcpy((*out)->data, data, e->end - e->begin);
  return LACOS_OK;
}

const char *lacos_safetensors_metadata(const lacos_safetensors *st, const char *key) {
  if (!st || !key) return NULL;
  for (int i = 0; i < st->nmeta; i++) if (strcmp(st->mkeys[i], key) == 0) return st->mvals[i];
  return NULL;
}
int lacos_safetensors_metadata_count(const lacos_safetensors *st) { return st ? st->nmeta : 0; }
const char *lacos_safetensors_metadata_key(const lacos_safetensors *st, int i) {
  return st && i >= 0 && i < st->nmeta ? st->mkeys[i] : NULL;
}

/* ------------------------------------------------------------- writer */

typedef struct item { const char *name; const lacos_tensor *t; int rank; } item;

/* Upstream's order: descending dtype (its enum lists dtypes by increasing
   alignment), then name. With the header padded to a multiple of 8 every
   tensor then starts on a multiple of its element size. */
static int cmp_item(const void *a, const void *b) {
  const item *x = a, *y = b;
  if (x->rank != y->rank) return y->rank - x->rank;
  return strcmp(x->name, y->name);
}

/* Names must be unique valid UTF-8 other than "__metadata__"; metadata keys
   unique, keys and values valid UTF-8. json_string() checks the UTF-8. */
static int check_name(const char *where, const char *name, json_t *seen, const char *what) {
  if (!name) return fail(LACOS_EINVAL, "%s: a %s is missing", where, what);
  json_t *probe = json_string(name);
  if (!probe) return fail(LACOS_EINVAL, "%s: %s \"%.200s\" is not valid UTF-8", where, what, name);
  json_decref(probe);
  if (json_object_get(seen, name)) return fail(LACOS_EINVAL, "%s: %s \"%.200s\" appears twice", where, what, name);
  if (json_object_set_new(seen, name, json_true()) != 0) return fail(LACOS_ENOMEM, "out of memory");
  return LACOS_OK;
}

static int check_meta(const char *where, int nmeta, const char *const *mk, const char *const *mv) {
  if (nmeta < 0) return fail(LACOS_EINVAL, "%s: negative metadata count", where);
  if (nmeta > 0 && (!mk || !mv)) return fail(LACOS_EINVAL, "%s: metadata keys or values missing", where);
  json_t *seen = json_object();
  if (!seen) return fail(LACOS_ENOMEM, "out of memory");
  int s = LACOS_OK;
  for (int i = 0; i < nmeta && !s; i++) {
    s = check_name(where, mk[i], seen, "metadata key");
    if (!s && !mv[i]) s = fail(LACOS_EINVAL, "%s: metadata \"%.200s\" has no value", where, mk[i]);
    json_t *probe = s ? NULL : json_string(mv[i]);
    if (!s && !probe) s = fail(LACOS_EINVAL, "%s: metadata value for \"%.200s\" is not valid UTF-8", where, mk[i]);
    json_decref(probe);
  }
  json_decref(seen);
  return s;
}

static int check_names(const char *where, int n, const char *const *names) {
  if (n < 0) return fail(LACOS_EINVAL, "%s: negative tensor count", where);
  if (n > 0 && !names) return fail(LACOS_EINVAL, "%s: tensor names missing", where);
  json_t *seen = json_object();
  if (!seen) return fail(LACOS_ENOMEM, "out of memory");
  int s = LACOS_OK;
  for (int i = 0; i < n && !s; i++) {
    s = check_name(where, names[i], seen, "tensor name");
    if (!s && strcmp(names[i], "__metadata__") == 0) s = fail(LACOS_EINVAL, "%s: \"__metadata__\" cannot name a tensor", where);
  }
  json_decref(seen);
  return s;
}

static int check_tensor(const char *where, const char *name, const lacos_tensor *t) {
  if (!t) return fail(LACOS_EINVAL, "%s: tensor \"%.200s\" is missing", where, name);
  if (t->flags & LACOS_TENSOR_RELEASED) return fail(LACOS_ESTATE, "%s: tensor \"%.200s\" was freed", where, name);
  if (kind_of_dtype(t->dtype) < 0) return fail(LACOS_EINVAL, "%s: tensor \"%.200s\" has unknown dtype %d", where, name, t->dtype);
  if (t->device != LACOS_CPU)
    return fail(LACOS_EDEVICE, "%s: tensor \"%.200s\" is on cuda; call :to('cpu') before saving", where, name);
  return LACOS_OK;
}

/* Adds keys/values to obj (metadata maps), failing cleanly. */
static int put_strings(json_t *obj, int n, const char *const *k, const char *const *v) {
  for (int i = 0; i < n; i++)
    if (json_object_set_new(obj, k[i], json_string(v[i])) != 0) return fail(LACOS_ENOMEM, "out of memory");
  return LACOS_OK;
}

static int write_all(FILE *f, const void *p, size_t n, const char *path) {
  if (n && fwrite(p, 1, n, f) != n) return fail_errno("%s: write failed", path);
  return LACOS_OK;
}

/* A complete image to f. meta holds both the extra "format" entry of
   sharded saves and the caller's, so the sharded writer can reuse this.
   Inputs are checked by the callers. */
static int write_image(FILE *f, const char *path, int n, const char *const *names, lacos_tensor *const *tensors, json_t *meta) {
  item *items = NULL;
  json_t *root = json_object();
  char *hdr = NULL;
  int s = root ? meta_calloc(&items, (size_t)(n ? n : 1), sizeof *items, "safetensors header")
               : fail(LACOS_ENOMEM, "out of memory for the safetensors header");
  for (int i = 0; i < n && !s; i++) {
    items[i].name = names[i];
    items[i].t = tensors[i];
    items[i].rank = kind_of_dtype(tensors[i]->dtype);
  }
  if (!s) qsort(items, (size_t)n, sizeof *items, cmp_item);
  if (!s && meta && json_object_size(meta) > 0 && json_object_set(root, "__metadata__", meta) != 0) s = fail(LACOS_ENOMEM, "out of memory");
  uint64_t at = 0;
  for (int i = 0; i < n && !s; i++) {
    const lacos_tensor *t = items[i].t;
    json_t *shape = json_array();
    for (int d = 0; shape && d < t->ndim; d++)
      if (json_array_append_new(shape, json_integer(t->shape[d])) != 0) { json_decref(shape); shape = NULL; }
    uint64_t bytes = (uint64_t)lacos_tensor_nbytes(t);
    json_t *info = shape ? json_pack("{s:s, s:o, s:[I, I]}", "dtype", kinds[items[i].rank].s, "shape", shape, "data_offsets",
                                     (json_int_t)at, (json_int_t)(at + bytes))
                         : NULL;
    if (!info || json_object_set_new(root, items[i].name, info) != 0) s = fail(LACOS_ENOMEM, "out of memory");
    at += bytes;
  }
  if (!s && !(hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER))) s = fail(LACOS_ENOMEM, "%s: cannot format the header", path);
  json_decref(root);
  size_t hl = hdr ? strlen(hdr) : 0, padded = (hl + 7) / 8 * 8;
  if (!s && padded > MAX_HEADER) s = fail(LACOS_ELIMIT, "%s: the header would be %zu bytes, over the 100,000,000-byte limit", path, padded);
  if (!s) {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    s = write_all(f, len8, 8, path);
    if (!s) s = write_all(f, hdr, hl, path);
    if (!s) s = write_all(f, spaces, padded - hl, path);
    for (int i = 0; i < n && !s; i++) {
      lacos_tensor *c = NULL;
      s = lacos_tensor_contiguous(&c, items[i].t);
      if (s) fail_context("%s: tensor \"%.200s\"", path, items[i].name);
      else s = write_all(f, c->data, (size_t)lacos_tensor_nbytes(c), path);
      lacos_tensor_free(c);
    }
  }
  free(hdr);
  mem_free(items);
  return s;
}

/* One file, atomically. */
static int write_one(const char *path, int n, const char *const *names, lacos_tensor *const *tensors, json_t *meta) {
  atomic_file af;
  TRY(atomic_file_open(&af, path));
  int s = write_image(af.f, path, n, names, tensors, meta);
  if (s) { atomic_file_abort(&af); return s; }
  return atomic_file_commit(&af);
}

static int check_inputs(const char *where, int n, const char *const *names, lacos_tensor *const *tensors, int nmeta,
                        const char *const *mk, const char *const *mv, json_t **meta) {
  *meta = NULL;
  TRY(check_names(where, n, names));
  if (n > 0 && !tensors) return fail(LACOS_EINVAL, "%s: tensors missing", where);
  for (int i = 0; i < n; i++) TRY(check_tensor(where, names[i], tensors[i]));
  TRY(check_meta(where, nmeta, mk, mv));
  if (!(*meta = json_object())) return fail(LACOS_ENOMEM, "out of memory");
  int s = put_strings(*meta, nmeta, mk, mv);
  if (s) { json_decref(*meta); *meta = NULL; }
  return s;
}

/* The image to a stream the caller owns (run checkpoints compress it). */
int safetensors_write_stream(FILE *f, const char *path, int n, const char *const *names, lacos_tensor *const *tensors,
                             int nmeta, const char *const *mk, const char *const *mv) {
  json_t *meta;
  TRY(check_inputs(path, n, names, tensors, nmeta, mk, mv, &meta));
  int s = write_image(f, path, n, names, tensors, meta);
  json_decref(meta);
  return s;
}

int lacos_safetensors_write(const char *path, int n, const char *const *names, lacos_tensor *const *tensors,
                            int nmeta, const char *const *mk, const char *const *mv) {
  if (!path || !*path) return fail(LACOS_EINVAL, "lacos_safetensors_write: empty path");
  json_t *meta;
  TRY(check_inputs(path, n, names, tensors, nmeta, mk, mv, &meta));
  int s = write_one(path, n, names, tensors, meta);
  json_decref(meta);
  return s;
}

/* ------------------------------------------------------------- sharded writer */

/* huggingface_hub's split_state_dict_into_shards_factory: walk the tensors in
   the given order; one larger than the limit gets a shard of its own (placed
   when it is met); otherwise start a new shard when the next tensor would
   tip the current one over the limit. The shard count in *count. */
static int plan_shards(int *count, int n, const double *bytes, double max_bytes, int *shard_of) {
  /* A shard takes its number when it is closed, as the hub appends it to its
     list then: (small a, huge b, small c) gives [b], [a, c]. */
  int shards = 0, open = 0;
  int *pending;
  *count = 0;
  TRY(meta_alloc(&pending, sizeof *pending * (size_t)(n ? n : 1), "shard plan"));
  double size = 0;
  for (int i = 0; i < n; i++) {
    if (bytes[i] > max_bytes) { shard_of[i] = shards++; continue; }
    if (open && size + bytes[i] > max_bytes) {
      for (int j = 0; j < open; j++) shard_of[pending[j]] = shards;
      shards++;
      open = 0;
      size = 0;
    }
    pending[open++] = i;
    size += bytes[i];
  }
  if (open) {
    for (int j = 0; j < open; j++) shard_of[pending[j]] = shards;
    shards++;
  }
  mem_free(pending);
  *count = shards;
  return LACOS_OK;
}

static bool is_shard_name(const char *f) {
  /* model-00001-of-00002.safetensors (five or more digits each) */
  if (strncmp(f, "model-", 6) != 0) return false;
  const char *p = f + 6, *q = p;
  while (isdigit((unsigned char)*q)) q++;
  if (q - p < 5 || strncmp(q, "-of-", 4) != 0) return false;
  p = q + 4;
  q = p;
  while (isdigit((unsigned char)*q)) q++;
  return q - p >= 5 && strcmp(q, ".safetensors") == 0;
}

/* After a save, files a reader could take for this checkpoint but that the
   save did not write: other shards of our naming, and the single file or
   index of the other layout (transformers prefers model.safetensors to an
   index, so a stale one would shadow the new shards). Nothing else in the
   directory is touched. */
static void remove_stale(const char *dir, json_t *written, bool sharded) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d))) {
    const char *f = de->d_name;
    bool ours = is_shard_name(f) || strcmp(f, sharded ? "model.safetensors" : "model.safetensors.index.json") == 0;
    if (!ours || json_object_get(written, f)) continue;
    char *p;
    if (join(&p, dir, f)) { lacos_error_clear(); break; }   /* best effort: stale files stay */
    if (is_file(p)) unlink(p);
    mem_free(p);
  }
  closedir(d);
  fsync_dir_of(dir);
}

static int write_index(const char *dir, json_t *index) {
  char *text = json_dumps(index, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
  if (!text) return fail(LACOS_ENOMEM, "out of memory");
  char *path = NULL;
  atomic_file af;
  int s = join(&path, dir, "model.safetensors.index.json");
  if (!s) s = atomic_file_open(&af, path);
  if (!s) {
    s = write_all(af.f, text, strlen(text), path);
    if (!s) s = write_all(af.f, "\n", 1, path);
    if (s) atomic_file_abort(&af);
    else s = atomic_file_commit(&af);
  }
  mem_free(path);
  free(text);
  return s;
}

int safetensors_write_sharded_meta(const char *dir, int n, const char *const *names, const double *bytes, double max_shard_bytes,
                                   tensor_provider provider, void *ctx, int nmeta, const char *const *mk,
                                   const char *const *mv) {
  if (!dir || !*dir) return fail(LACOS_EINVAL, "sharded save: empty directory name");
  if (max_shard_bytes == 0) max_shard_bytes = 5e9;   /* huggingface_hub's MAX_SHARD_SIZE, "5GB" */
  if (!(max_shard_bytes > 0)) return fail(LACOS_EINVAL, "%s: the maximum shard size must be positive", dir);
  TRY(check_names(dir, n, names));
  TRY(check_meta(dir, nmeta, mk, mv));
  for (int i = 0; i < n; i++)
    if (!(bytes[i] >= 0)) return fail(LACOS_EINVAL, "%s: tensor \"%.200s\" has a negative size", dir, names[i]);
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) return fail_errno("%s: cannot create the directory", dir);
  int *shard_of = NULL;
  const char **nm = NULL;
  lacos_tensor **ts = NULL;
  json_t *wm = json_object(), *written = json_object(), *meta = json_object();
  int s = wm && written && meta ? LACOS_OK : fail(LACOS_ENOMEM, "out of memory for the shard index");
  if (!s) s = meta_calloc(&shard_of, (size_t)(n ? n : 1), sizeof *shard_of, "shard plan");
  if (!s) s = meta_calloc(&nm, (size_t)(n ? n : 1), sizeof *nm, "shard plan");
  if (!s) s = meta_calloc(&ts, (size_t)(n ? n : 1), sizeof *ts, "shard plan");
  int shards = 0;
  if (!s) s = plan_shards(&shards, n, bytes, max_shard_bytes, shard_of);
  bool sharded = shards > 1;
  double total = 0;
  for (int i = 0; i < n; i++) total += bytes[i];
  /* as huggingface_hub: every file says format "pt"; the caller's metadata
     goes into the single file, or into the index when sharded */
  if (!s && json_object_set_new(meta, "format", json_string("pt")) != 0) s = fail(LACOS_ENOMEM, "out of memory");
  if (!s && !sharded) s = put_strings(meta, nmeta, mk, mv);
  for (int sh = 0; sh < (shards ? shards : 1) && !s; sh++) {
    char fname[64];
    if (!sharded) snprintf(fname, sizeof fname, "model.safetensors");
    else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", sh + 1, shards);
    int k = 0;
    for (int i = 0; i < n && !s; i++) {
      if (shard_of[i] != sh) continue;
      nm[k] = names[i];
      s = provider(ctx, i, &ts[k]);
      if (!s) s = check_tensor(dir, names[i], ts[k]);
      if (!s && lacos_tensor_nbytes(ts[k]) != bytes[i])
        s = fail(LACOS_EINVAL, "%s: tensor \"%.200s\" has %.0f bytes, not the %.0f planned", dir, names[i], lacos_tensor_nbytes(ts[k]), bytes[i]);
      k++;
      if (!s && json_object_set_new(wm, names[i], json_string(fname)) != 0) s = fail(LACOS_ENOMEM, "out of memory");
    }
    char *path = NULL;
    if (!s) s = join(&path, dir, fname);
    if (!s) s = write_one(path, k, nm, ts, meta);
    mem_free(path);
    for (int j = 0; j < k; j++) { lacos_tensor_free(ts[j]); ts[j] = NULL; }
    if (!s && json_object_set_new(written, fname, json_true()) != 0) s = fail(LACOS_ENOMEM, "out of memory");
  }
  if (!s && sharded) {
    json_t *imeta = json_object();
    if (!imeta || json_object_set_new(imeta, "total_size", json_integer((json_int_t)total)) != 0 || put_strings(imeta, nmeta, mk, mv)) {
      json_decref(imeta);
      s = fail(LACOS_ENOMEM, "out of memory");
    } else {
      json_t *index = json_object();
      if (!index || json_object_set_new(index, "metadata", imeta) != 0 || json_object_set(index, "weight_map", wm) != 0)
        s = fail(LACOS_ENOMEM, "out of memory");
      if (!s) s = write_index(dir, index);
      json_decref(index);
    }
    if (!s && json_object_set_new(written, "model.safetensors.index.json", json_true()) != 0) s = fail(LACOS_ENOMEM, "out of memory");
  }
  if (!s) remove_stale(dir, written, sharded);
  json_decref(wm);
  json_decref(written);
  json_decref(meta);
  mem_free(nm);
  mem_free(ts);
  mem_free(shard_of);
  return s;
}

int safetensors_write_sharded_with(const char *dir, int n, const char *const *names, const double *bytes,
                                   double max_shard_bytes, tensor_provider provider, void *ctx) {
  return safetensors_write_sharded_meta(dir, n, names, bytes, max_shard_bytes, provider, ctx, 0, NULL, NULL);
}

typedef struct given { lacos_tensor *const *t; } given;
static int given_tensor(void *ctx, int i, lacos_tensor **out) {
  return lacos_tensor_contiguous(out, ((given *)ctx)->t[i]);
}

int lacos_safetensors_write_sharded(const char *dir, int n, const char *const *names, lacos_tensor *const *tensors,
                                    double max_shard_bytes, int nmeta, const char *const *mk, const char *const *mv) {
  if (!dir || !*dir) return fail(LACOS_EINVAL, "lacos_safetensors_write_sharded: empty directory name");
  TRY(check_names(dir, n, names));
  if (n > 0 && !tensors) return fail(LACOS_EINVAL, "%s: tensors missing", dir);
  double *bytes;
  TRY(meta_alloc(&bytes, sizeof *bytes * (size_t)(n ? n : 1), "tensor sizes"));
  int s = LACOS_OK;
  for (int i = 0; i < n && !s; i++) {
    s = check_tensor(dir, names[i], tensors[i]);
    if (!s) bytes[i] = lacos_tensor_nbytes(tensors[i]);
  }
  given g = {tensors};
  if (!s) s = safetensors_write_sharded_meta(dir, n, names, bytes, max_shard_bytes, given_tensor, &g, nmeta, mk, mv);
  mem_free(bytes);
  return s;
}
