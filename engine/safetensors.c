/* safetensors.c: the safetensors format (huggingface/safetensors,
   safetensors/src/tensor.rs) — a validated, memory-mapped reader for single
   files and sharded checkpoints, and an atomic writer.

   Layout: u64 little-endian header length N, N bytes of JSON (an object of
   {"dtype", "shape", "data_offsets": [begin, end)} entries plus an optional
   "__metadata__" string map, right-padded with spaces), then the data. The
   reader refuses anything a hostile file could use: N above 100 MB or past
   the file, duplicate keys, unknown dtypes, shapes whose element count or
   byte size overflows or disagrees with the offsets, and tensors that do not
   tile the data buffer exactly (no hole, no overlap, nothing left over). */
#include "engine.h"
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

enum { MAX_HEADER = 100000000, MAX_RANK = 8 };

typedef struct mapping {
  _Atomic int refs;
  void *base;
  size_t size;
  char *path;
  bool heap;            /* an in-memory image (malloc'd), not a mapped file */
} mapping;

typedef struct entry {
  char *name;
  int dtype;            /* lacos_dtype, or -1 for valid-but-unheld */
  char stype[16];       /* the file's dtype string */
  int ndim;
  int64_t shape[MAX_RANK];
  size_t begin, end;    /* absolute offsets in the mapping */
  mapping *map;
} entry;

struct lacos_safetensors {
  entry *e;
  int n, cap;
  mapping **maps;
  int nmaps;
  char **mkeys, **mvals;
  int nmeta;
};

static const struct { const char *s; int dtype; int bits; } dtypes[] = {
  {"F32", LACOS_F32, 32}, {"F16", LACOS_F16, 16}, {"BF16", LACOS_BF16, 16}, {"I8", LACOS_I8, 8},
  {"I32", LACOS_I32, 32}, {"U8", LACOS_U8, 8}, {"I64", LACOS_I64, 64}, {"F64", LACOS_F64, 64},
  {"BOOL", -1, 8}, {"I16", -1, 16}, {"U16", -1, 16}, {"U32", -1, 32}, {"U64", -1, 64},
  {"F8_E5M2", -1, 8}, {"F8_E4M3", -1, 8}, {"F8_E4M3FNUZ", -1, 8}, {"F8_E5M2FNUZ", -1, 8},
  {"F8_E8M0", -1, 8}, {"C64", -1, 64}, {"F4", -1, 4}, {"F6_E2M3", -1, 6}, {"F6_E3M2", -1, 6},
};

static void map_release(mapping *m) {
  if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
  if (m->heap) free(m->base);
  else {
    if (m->base && m->size) munmap(m->base, m->size);
    mem_mapped_add(-(double)m->size);
  }
  free(m->path);
  free(m);
}
static void map_release_cb(void *ctx) { map_release(ctx); }

static int map_open(const char *path, mapping **out) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno("%s", path);
  struct stat st;
  if (fstat(fd, &st) != 0) { int s = fail_errno("%s", path); close(fd); return s; }
  if (S_ISDIR(st.st_mode)) { close(fd); return fail(LACOS_EFORMAT, "%s: is a directory, expected a .safetensors file", path); }
  if (st.st_size < 8) { close(fd); return fail(LACOS_EFORMAT, "%s: file of %lld bytes is too short for a safetensors header", path, (long long)st.st_size); }
  void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (base == MAP_FAILED) return fail_errno("%s: cannot map the file", path);
  mapping *m = calloc(1, sizeof *m);
  if (!m || !(m->path = strdup(path))) { munmap(base, (size_t)st.st_size); free(m); return fail(LACOS_ENOMEM, "out of memory"); }
  atomic_init(&m->refs, 1);
  m->base = base;
  m->size = (size_t)st.st_size;
  mem_mapped_add((double)m->size);
  *out = m;
  return LACOS_OK;
}

static int add_entry(lacos_safetensors *st, entry *e) {
  if (st->n == st->cap) {
    int cap = st->cap ? st->cap * 2 : 64;
    entry *ne = realloc(st->e, sizeof *ne * (size_t)cap);
    if (!ne) return fail(LACOS_ENOMEM, "out of memory");
    st->e = ne;
    st->cap = cap;
  }
  st->e[st->n++] = *e;
  return LACOS_OK;
}

static int cmp_begin(const void *a, const void *b) {
  const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* Parses and validates one file's header; appends its entries (all of them,
   or only those `wanted` by an index, when given). */
static int parse_file(lacos_safetensors *st, mapping *m, bool keep_meta) {
  const char *path = m->path;
  const unsigned char *p = m->base;
  uint64_t N = 0;
  for (int i = 0; i < 8; i++) N |= (uint64_t)p[i] << (8 * i);
  if (N > MAX_HEADER) return fail(LACOS_EFORMAT, "%s: header length %llu exceeds the 100,000,000-byte limit", path, (unsigned long long)N);
  if (N > m->size - 8) return fail(LACOS_EFORMAT, "%s: header length %llu runs past the end of the %zu-byte file", path, (unsigned long long)N, m->size);
  if (N < 2 || p[8] != '{') return fail(LACOS_EFORMAT, "%s: the header is not a JSON object", path);
  json_error_t jerr;
  json_t *root = json_loadb((const char *)p + 8, (size_t)N, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) return fail(LACOS_EFORMAT, "%s: invalid header JSON at byte %d: %s", path, jerr.position, jerr.text);
  int s = LACOS_OK;
  if (!json_is_object(root)) { s = fail(LACOS_EFORMAT, "%s: the header is not a JSON object", path); goto done; }
  size_t data0 = 8 + (size_t)N, dsize = m->size - data0;
  int first = st->n;
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    if (strcmp(key, "__metadata__") == 0) {
      if (!json_is_object(val)) { s = fail(LACOS_EFORMAT, "%s: __metadata__ must be an object of strings", path); goto done; }
      const char *mk;
      json_t *mv;
      json_object_foreach(val, mk, mv) {
        if (!json_is_string(mv)) { s = fail(LACOS_EFORMAT, "%s: __metadata__ value for \"%s\" is not a string", path, mk); goto done; }
        if (!keep_meta) continue;
        char **nk = realloc(st->mkeys, sizeof *nk * (size_t)(st->nmeta + 1)), **nv;
        if (!nk) { s = fail(LACOS_ENOMEM, "out of memory"); goto done; }
        st->mkeys = nk;
        nv = realloc(st->mvals, sizeof *nv * (size_t)(st->nmeta + 1));
        if (!nv) { s = fail(LACOS_ENOMEM, "out of memory"); goto done; }
        st->mvals = nv;
        st->mkeys[st->nmeta] = strdup(mk);
        st->mvals[st->nmeta] = strdup(json_string_value(mv));
        st->nmeta++;
      }
      continue;
    }
    entry e = {0};
    e.map = m;
    if (!json_is_object(val)) { s = fail(LACOS_EFORMAT, "%s: entry \"%s\" is not an object", path, key); goto done; }
    json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"), *jo = json_object_get(val, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2) {
      s = fail(LACOS_EFORMAT, "%s: tensor \"%s\" needs a dtype string, a shape array and two data_offsets", path, key);
      goto done;
    }
    int bits = 0;
    const char *ds = json_string_value(jd);
    e.dtype = -2;
    for (size_t k = 0; k < sizeof dtypes / sizeof *dtypes; k++)
      if (strcmp(ds, dtypes[k].s) == 0) { e.dtype = dtypes[k].dtype; bits = dtypes[k].bits; }
    if (e.dtype == -2) { s = fail(LACOS_EFORMAT, "%s: tensor \"%s\" has unknown dtype \"%.20s\"", path, key, ds); goto done; }
    snprintf(e.stype, sizeof e.stype, "%s", ds);
    if (json_array_size(js) > MAX_RANK) { s = fail(LACOS_EFORMAT, "%s: tensor \"%s\" has rank %zu (at most %d)", path, key, json_array_size(js), MAX_RANK); goto done; }
    e.ndim = (int)json_array_size(js);
    uint64_t numel = 1;
    for (int d = 0; d < e.ndim; d++) {
      json_t *x = json_array_get(js, (size_t)d);
      if (!json_is_integer(x) || json_integer_value(x) < 0) { s = fail(LACOS_EFORMAT, "%s: tensor \"%s\" has a negative or non-integer size", path, key); goto done; }
      e.shape[d] = json_integer_value(x);
      if (__builtin_mul_overflow(numel, (uint64_t)e.shape[d], &numel)) { s = fail(LACOS_EFORMAT, "%s: tensor \"%s\": element count overflows", path, key); goto done; }
    }
    json_t *b0 = json_array_get(jo, 0), *b1 = json_array_get(jo, 1);
    if (!json_is_integer(b0) || !json_is_integer(b1) || json_integer_value(b0) < 0 || json_integer_value(b1) < json_integer_value(b0)) {
      s = fail(LACOS_EFORMAT, "%s: tensor \"%s\" has invalid data_offsets", path, key);
      goto done;
    }
    uint64_t begin = (uint64_t)json_integer_value(b0), end = (uint64_t)json_integer_value(b1), nbits;
    if (__builtin_mul_overflow(numel, (uint64_t)bits, &nbits) || (nbits + 7) / 8 != end - begin) {
      s = fail(LACOS_EFORMAT, "%s: tensor \"%s\" occupies %llu bytes but its %s shape needs %llu", path, key,
               (unsigned long long)(end - begin), ds, (unsigned long long)((nbits + 7) / 8));
      goto done;
    }
    if (end > dsize) { s = fail(LACOS_EFORMAT, "%s: tensor \"%s\" ends at byte %llu, past the %zu data bytes", path, key, (unsigned long long)end, dsize); goto done; }
    e.begin = data0 + begin;
    e.end = data0 + end;
    if (!(e.name = strdup(key))) { s = fail(LACOS_ENOMEM, "out of memory"); goto done; }
    if ((s = add_entry(st, &e))) { free(e.name); goto done; }
  }
  /* the tensors of this file must tile its data buffer exactly */
  int cnt = st->n - first;
  entry **sorted = malloc(sizeof *sorted * (size_t)(cnt ? cnt : 1));
  if (!sorted) { s = fail(LACOS_ENOMEM, "out of memory"); goto done; }
  for (int i = 0; i < cnt; i++) sorted[i] = &st->e[first + i];
  qsort(sorted, (size_t)cnt, sizeof *sorted, cmp_begin);
  size_t at = data0;
  for (int i = 0; i < cnt && !s; i++) {
    if (sorted[i]->begin > at) s = fail(LACOS_EFORMAT, "%s: %zu unused bytes before tensor \"%s\"", path, sorted[i]->begin - at, sorted[i]->name);
    else if (sorted[i]->begin < at) s = fail(LACOS_EFORMAT, "%s: tensor \"%s\" overlaps the tensor before it", path, sorted[i]->name);
    at = sorted[i]->end;
  }
  if (!s && at != m->size) s = fail(LACOS_EFORMAT, "%s: %zu bytes after the last tensor are not described by the header", path, m->size - at);
  free(sorted);
done:
  json_decref(root);
  return s;
}

void lacos_safetensors_free(lacos_safetensors *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) free(st->e[i].name);
  free(st->e);
  for (int i = 0; i < st->nmaps; i++) map_release(st->maps[i]);
  free(st->maps);
  for (int i = 0; i < st->nmeta; i++) { free(st->mkeys[i]); free(st->mvals[i]); }
  free(st->mkeys);
  free(st->mvals);
  free(st);
}

static int keep_map(lacos_safetensors *st, mapping *m) {
  mapping **nm = realloc(st->maps, sizeof *nm * (size_t)(st->nmaps + 1));
  if (!nm) { map_release(m); return fail(LACOS_ENOMEM, "out of memory"); }
  st->maps = nm;
  st->maps[st->nmaps++] = m;
  return LACOS_OK;
}

static int open_file(lacos_safetensors *st, const char *path, bool keep_meta) {
  mapping *m;
  TRY(map_open(path, &m));
  TRY(keep_map(st, m));
  return parse_file(st, m, keep_meta);
}

/* Sharded: the index names a shard per tensor; each shard is validated
   whole, and only the tensors the index assigns to it are kept. */
static int open_index(lacos_safetensors *st, const char *dir, const char *index_path) {
  char *text;
  size_t len;
  TRY(file_read_all(index_path, 64u << 20, &text, &len));
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  if (!root) return fail(LACOS_EFORMAT, "%s:%d: invalid JSON: %s", index_path, jerr.line, jerr.text);
  int s = LACOS_OK;
  json_t *wm = json_object_get(root, "weight_map");
  if (!json_is_object(wm)) { s = fail(LACOS_EFORMAT, "%s: missing \"weight_map\" object", index_path); goto done; }
  /* distinct shard files, in order of first appearance */
  const char *key;
  json_t *val;
  json_object_foreach(wm, key, val) {
    if (!json_is_string(val)) { s = fail(LACOS_EFORMAT, "%s: weight_map entry \"%s\" is not a file name", index_path, key); goto done; }
    const char *f = json_string_value(val);
    if (strchr(f, '/') || strcmp(f, "..") == 0 || !*f) { s = fail(LACOS_EFORMAT, "%s: shard name \"%s\" must be a plain file name", index_path, f); goto done; }
    bool seen = false;
    for (int i = 0; i < st->nmaps; i++) {
      const char *base = strrchr(st->maps[i]->path, '/');
      if (strcmp(base ? base + 1 : st->maps[i]->path, f) == 0) seen = true;
    }
    if (seen) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, f);
    int first = st->n;
    if ((s = open_file(st, path, st->nmaps == 0))) {
      if (s == LACOS_ENOTFOUND) fail(LACOS_ENOTFOUND, "%s: names shard %s, which is missing", index_path, f);
      goto done;
    }
    /* drop what the index does not assign to this shard */
    int w = first;
    for (int i = first; i < st->n; i++) {
      json_t *where = json_object_get(wm, st->e[i].name);
      if (where && strcmp(json_string_value(where), f) == 0) st->e[w++] = st->e[i];
      else free(st->e[i].name);
    }
    st->n = w;
  }
  /* every tensor the index names must be in its shard */
  json_object_foreach(wm, key, val) {
    bool found = false;
    for (int i = 0; i < st->n && !found; i++) found = strcmp(st->e[i].name, key) == 0;
    if (!found) { s = fail(LACOS_EFORMAT, "%s: tensor \"%s\" is not in shard %s", index_path, key, json_string_value(val)); goto done; }
  }
done:
  json_decref(root);
  return s;
}

int lacos_safetensors_open(lacos_safetensors **out, const char *path) {
  *out = NULL;
  struct stat sb;
  if (stat(path, &sb) != 0) return fail_errno("%s", path);
  lacos_safetensors *st = calloc(1, sizeof *st);
  if (!st) return fail(LACOS_ENOMEM, "out of memory");
  int s;
  if (S_ISDIR(sb.st_mode)) {
    char idx[4096], one[4096];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", path);
    snprintf(one, sizeof one, "%s/model.safetensors", path);
    if (access(idx, F_OK) == 0) s = open_index(st, path, idx);
    else if (access(one, F_OK) == 0) s = open_file(st, one, true);
    else s = fail(LACOS_ENOTFOUND, "%s: no model.safetensors or model.safetensors.index.json in this directory", path);
  } else {
    s = open_file(st, path, true);
  }
  if (s) { lacos_safetensors_free(st); return s; }
  *out = st;
  return LACOS_OK;
}

/* Takes ownership of a malloc'd safetensors image (a decompressed checkpoint);
   `name` is used in messages. */
int safetensors_open_buffer(lacos_safetensors **out, void *data, size_t size, const char *name) {
  *out = NULL;
  if (size < 8) { free(data); return fail(LACOS_EFORMAT, "%s: image of %zu bytes is too short for a safetensors header", name, size); }
  lacos_safetensors *st = calloc(1, sizeof *st);
  mapping *m = calloc(1, sizeof *m);
  if (!st || !m || !(m->path = strdup(name))) { free(st); free(m); free(data); return fail(LACOS_ENOMEM, "out of memory"); }
  atomic_init(&m->refs, 1);
  m->base = data;
  m->size = size;
  m->heap = true;
  int s = keep_map(st, m);
  if (!s) s = parse_file(st, m, true);
  if (s) { lacos_safetensors_free(st); return s; }
  *out = st;
  return LACOS_OK;
}

int lacos_safetensors_count(const lacos_safetensors *st) { return st->n; }
const char *lacos_safetensors_name(const lacos_safetensors *st, int i) { return i >= 0 && i < st->n ? st->e[i].name : NULL; }
const char *lacos_safetensors_file(const lacos_safetensors *st, int i) { return i >= 0 && i < st->n ? st->e[i].map->path : NULL; }

static const char *unprefixed(const char *s) { return strncmp(s, "transformer.", 12) == 0 ? s + 12 : s; }

int lacos_safetensors_find(const lacos_safetensors *st, const char *name) {
  for (int i = 0; i < st->n; i++) if (strcmp(st->e[i].name, name) == 0) return i;
  const char *want = unprefixed(name);
  int hit = -1;
  for (int i = 0; i < st->n; i++)
    if (strcmp(unprefixed(st->e[i].name), want) == 0) {
      if (hit >= 0) { fail(LACOS_EFORMAT, "%s: both \"%s\" and \"%s\" are present", st->e[i].map->path, st->e[hit].name, st->e[i].name); return -2; }
      hit = i;
    }
  return hit;
}

int lacos_safetensors_info(const lacos_safetensors *st, int i, int *dtype, int *ndim, int64_t *shape) {
  if (i < 0 || i >= st->n) return fail(LACOS_EINVAL, "tensor index %d out of range", i);
  const entry *e = &st->e[i];
  if (dtype) *dtype = e->dtype;
  if (ndim) *ndim = e->ndim;
  if (shape) for (int d = 0; d < e->ndim; d++) shape[d] = e->shape[d];
  return LACOS_OK;
}

int lacos_safetensors_get(lacos_tensor **out, lacos_safetensors *st, const char *name) {
  *out = NULL;
  int i = lacos_safetensors_find(st, name);
  if (i == -2) return lacos_last_status();
  if (i < 0) {
    const char *file = st->nmaps ? st->maps[0]->path : "checkpoint";
    return fail(LACOS_ENOTFOUND, "%s: no tensor named \"%s\"", st->nmaps > 1 ? "checkpoint shards" : file, name);
  }
  entry *e = &st->e[i];
  if (e->dtype < 0) return fail(LACOS_EUNSUPPORTED, "%s: tensor \"%s\" has dtype %s, which lacos does not hold", e->map->path, e->name, e->stype);
  if (e->ndim > 4) return fail(LACOS_EUNSUPPORTED, "%s: tensor \"%s\" has rank %d; lacos tensors have at most 4", e->map->path, e->name, e->ndim);
  TRY(tensor_wrap(out, (char *)e->map->base + e->begin, e->dtype, e->ndim, e->shape, map_release_cb, e->map));
  atomic_fetch_add(&e->map->refs, 1);
  return LACOS_OK;
}

const char *lacos_safetensors_metadata(const lacos_safetensors *st, const char *key) {
  for (int i = 0; i < st->nmeta; i++) if (strcmp(st->mkeys[i], key) == 0) return st->mvals[i];
  return NULL;
}
int lacos_safetensors_metadata_count(const lacos_safetensors *st) { return st->nmeta; }
const char *lacos_safetensors_metadata_key(const lacos_safetensors *st, int i) { return i >= 0 && i < st->nmeta ? st->mkeys[i] : NULL; }

/* ------------------------------------------------------------- writer */

static const char *dtype_string(int d) {
  for (size_t k = 0; k < sizeof dtypes / sizeof *dtypes; k++) if (dtypes[k].dtype == d) return dtypes[k].s;
  return NULL;
}

typedef struct order_item { const char *name; const lacos_tensor *t; } order_item;
static int cmp_align(const void *a, const void *b) {
  const order_item *x = a, *y = b;
  int ax = lacos_dtype_size(x->t->dtype), ay = lacos_dtype_size(y->t->dtype);
  if (ax != ay) return ay - ax;
  return strcmp(x->name, y->name);
}

/* Writes a complete safetensors image to f. */
int safetensors_write_stream(FILE *f, const char *path, int n, const char *const *names, lacos_tensor *const *tensors,
                             int nmeta, const char *const *mk, const char *const *mv) {
  if (n < 0 || nmeta < 0) return fail(LACOS_EINVAL, "%s: negative tensor or metadata count", path);
  order_item *items = calloc((size_t)(n ? n : 1), sizeof *items);
  if (!items) return fail(LACOS_ENOMEM, "out of memory");
  for (int i = 0; i < n; i++) {
    if (!names[i] || !tensors[i] || !dtype_string(tensors[i]->dtype) || (tensors[i]->flags & LACOS_TENSOR_RELEASED)) {
      free(items);
      return fail(LACOS_EINVAL, "%s: tensor %d has no name, a freed tensor or an unsupported dtype", path, i);
    }
    if (strcmp(names[i], "__metadata__") == 0) { free(items); return fail(LACOS_EINVAL, "%s: \"__metadata__\" is not a tensor name", path); }
    if (tensors[i]->device != LACOS_CPU) {
      free(items);
      return fail(LACOS_EDEVICE, "%s: tensor \"%s\" is on cuda; call :to('cpu') before saving", path, names[i]);
    }
    for (int j = 0; j < i; j++)
      if (strcmp(names[i], names[j]) == 0) { free(items); return fail(LACOS_EINVAL, "%s: tensor name \"%s\" appears twice", path, names[i]); }
    items[i].name = names[i];
    items[i].t = tensors[i];
  }
  qsort(items, (size_t)n, sizeof *items, cmp_align);
  json_t *root = json_object();
  if (nmeta > 0) {
    json_t *meta = json_object();
    for (int i = 0; i < nmeta; i++) json_object_set_new(meta, mk[i], json_string(mv[i]));
    json_object_set_new(root, "__metadata__", meta);
  }
  uint64_t at = 0;
  for (int i = 0; i < n; i++) {
    const lacos_tensor *t = items[i].t;
    json_t *shape = json_array();
    for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
    uint64_t bytes = (uint64_t)lacos_tensor_nbytes(t);
    json_object_set_new(root, items[i].name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtype_string(t->dtype),
                                                        "shape", shape, "data_offsets", (json_int_t)at, (json_int_t)(at + bytes)));
    at += bytes;
  }
  char *hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (!hdr) { free(items); return fail(LACOS_ENOMEM, "%s: cannot format the header", path); }
  size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  fwrite(len8, 1, 8, f);
  fwrite(hdr, 1, hl, f);
  for (size_t i = hl; i < padded; i++) fputc(' ', f);
  free(hdr);
  int s = LACOS_OK;
  for (int i = 0; i < n && !s; i++) {
    lacos_tensor *c = NULL;
    s = lacos_tensor_contiguous(&c, items[i].t);
    if (!s && fwrite(c->data, 1, (size_t)lacos_tensor_nbytes(c), f) != (size_t)lacos_tensor_nbytes(c))
      s = fail_errno("%s: write failed", path);
    lacos_tensor_free(c);
  }
  free(items);
  return s;
}

int lacos_safetensors_write(const char *path, int n, const char *const *names, lacos_tensor *const *tensors,
                            int nmeta, const char *const *mk, const char *const *mv) {
  atomic_file af;
  TRY(atomic_file_open(&af, path));
  int s = safetensors_write_stream(af.f, path, n, names, tensors, nmeta, mk, mv);
  if (s) { atomic_file_abort(&af); return s; }
  return atomic_file_commit(&af);
}

/* Sharded writing with tensors produced on demand: provider(ctx, i, &t)
   returns tensor i (owned by the caller of the provider, freed after
   writing), so a checkpoint larger than memory is converted shard by shard. */
int safetensors_write_sharded_with(const char *dir, int n, const char *const *names, const double *bytes,
                                   double max_shard_bytes, tensor_provider provider, void *ctx) {
  if (max_shard_bytes <= 0) max_shard_bytes = 5e9;   /* the hub's default */
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) return fail_errno("%s: cannot create the directory", dir);
  int *shard_of = calloc((size_t)(n ? n : 1), sizeof *shard_of);
  if (!shard_of) return fail(LACOS_ENOMEM, "out of memory");
  int shards = 0;
  double cur = 0, total = 0;
  for (int i = 0; i < n; i++) {
    if (shards == 0 || (cur > 0 && cur + bytes[i] > max_shard_bytes)) { shards++; cur = 0; }
    shard_of[i] = shards - 1;
    cur += bytes[i];
    total += bytes[i];
  }
  if (shards == 0) shards = 1;
  const char **nm = malloc(sizeof *nm * (size_t)(n ? n : 1));
  lacos_tensor **ts = calloc((size_t)(n ? n : 1), sizeof *ts);
  json_t *wm = json_object();
  char path[4096];
  int s = nm && ts ? LACOS_OK : fail(LACOS_ENOMEM, "out of memory");
  const char *mk[1] = {"format"}, *mv[1] = {"pt"};
  for (int sh = 0; sh < shards && !s; sh++) {
    int k = 0;
    char fname[64];
    if (shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
    else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", sh + 1, shards);
    for (int i = 0; i < n && !s; i++)
      if (shard_of[i] == sh) {
        nm[k] = names[i];
        s = provider(ctx, i, &ts[k]);
        k++;
        json_object_set_new(wm, names[i], json_string(fname));
      }
    snprintf(path, sizeof path, "%s/%s", dir, fname);
    if (!s) s = lacos_safetensors_write(path, k, nm, ts, 1, mk, mv);
    for (int j = 0; j < k; j++) { lacos_tensor_free(ts[j]); ts[j] = NULL; }
  }
  free(nm); free(ts); free(shard_of);
  if (s || shards == 1) { json_decref(wm); return s; }
  json_t *index = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", wm);
  char *text = json_dumps(index, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(index);
  if (!text) return fail(LACOS_ENOMEM, "out of memory");
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  atomic_file af;
  s = atomic_file_open(&af, path);
  if (!s) { fputs(text, af.f); fputc('\n', af.f); s = atomic_file_commit(&af); }
  free(text);
  return s;
}

typedef struct given { lacos_tensor *const *t; } given;
static int given_tensor(void *ctx, int i, lacos_tensor **out) {
  return lacos_tensor_contiguous(out, ((given *)ctx)->t[i]);
}

int lacos_safetensors_write_sharded(const char *dir, int n, const char *const *names, lacos_tensor *const *tensors,
                                    double max_shard_bytes) {
  double *bytes = malloc(sizeof *bytes * (size_t)(n ? n : 1));
  if (!bytes) return fail(LACOS_ENOMEM, "out of memory");
  for (int i = 0; i < n; i++) {
    if (!tensors[i]) { free(bytes); return fail(LACOS_EINVAL, "%s: tensor %d is missing", dir, i); }
    bytes[i] = lacos_tensor_nbytes(tensors[i]);
  }
  given g = {tensors};
  int s = safetensors_write_sharded_with(dir, n, names, bytes, max_shard_bytes, given_tensor, &g);
  free(bytes);
  return s;
}
