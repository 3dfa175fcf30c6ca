/* checkpoint.c: crash-safe training checkpoints (see lacos.h). The tensors
   travel as one safetensors image compressed with zstd; the manifest's
   SHA-256 values are checked before the image is decompressed, so a torn or
   tampered checkpoint is refused instead of half-loaded. */
#include "engine.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <zstd.h>

struct lacos_checkpoint {
  char *state;
  lacos_safetensors *tensors;
};

enum { MAX_CKPT_FILE = 1 << 30 };

static int write_file_synced(const char *path, const void *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail_errno("%s: cannot create", path);
  const char *p = data;
  size_t left = n;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0) { if (errno == EINTR) continue; int s = fail_errno("%s: write failed", path); close(fd); return s; }
    p += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0 && errno != EINVAL) { int s = fail_errno("%s: fsync failed", path); close(fd); return s; }
  if (close(fd) != 0) return fail_errno("%s: close failed", path);
  return LACOS_OK;
}

/* `lacos train --out new/dir` keeps its checkpoints in new/dir/checkpoints,
   two levels that may not exist yet: made here before the first step. */
int lacos_checkpoint_dir_prepare(const char *dir) {
  if (!dir || !*dir) return fail(LACOS_EINVAL, "checkpoint directory: empty path");
  TRY(mkdir_parents(dir));
  if (access(dir, W_OK | X_OK) != 0) return fail_errno("%s: cannot write checkpoints there", dir);
  return LACOS_OK;
}

int lacos_checkpoint_save(const char *dir, int step, int n, const char *const *names,
                          lacos_tensor *const *tensors, const char *state_json) {
  if (step < 0) return fail(LACOS_EINVAL, "checkpoint step must be >= 0");
  TRY(mkdir_parents(dir));
  json_error_t jerr;
  json_t *state = json_loads(state_json ? state_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
  if (!state) return fail(LACOS_EINVAL, "checkpoint state is not valid JSON: %s", jerr.text);
  json_decref(state);
  char final[4096], tmp[4200], path[4400];
  if (snprintf(final, sizeof final, "%s/ckpt-%08d", dir, step) >= (int)sizeof final)
    return fail(LACOS_EINVAL, "%s: path too long", dir);
  TRY(lacos_dir_temp(tmp, sizeof tmp, final));   /* ckpt-N.tmp.PID, beside it */
  /* the tensors: safetensors image in memory, zstd-compressed */
  FILE *mf;
  mem_stream ms;
  int s = mem_stream_open(&mf, &ms);
  if (s) { remove_tree(tmp); return s; }
  s = safetensors_write_stream(mf, final, n, names, tensors, 0, NULL, NULL);
  fclose(mf);
  char *img = ms.p;
  size_t img_n = ms.n;
  void *z = NULL;
  size_t zn = 0;
  if (!s) {
    size_t cap = ZSTD_compressBound(img_n);
    s = mem_alloc(&z, cap, "the compressed checkpoint");
    if (!s) {
      zn = ZSTD_compress(z, cap, img, img_n, 3);
      if (ZSTD_isError(zn)) s = fail(LACOS_EIO, "%s: zstd compression failed: %s", final, ZSTD_getErrorName(zn));
    }
  }
  mem_free(img);
  char hz[65], hs[65];
  const char *st = state_json ? state_json : "{}";
  if (!s) { snprintf(path, sizeof path, "%s/tensors.safetensors.zst", tmp); s = write_file_synced(path, z, zn); }
  if (!s) s = lacos_sha256_buffer(z, (double)zn, hz);
  mem_free(z);
  if (!s) { snprintf(path, sizeof path, "%s/state.json", tmp); s = write_file_synced(path, st, strlen(st)); }
  if (!s) s = lacos_sha256_buffer(st, (double)strlen(st), hs);
  if (!s) {
    json_t *man = json_pack("{s:s, s:i, s:i, s:s, s:{s:{s:s, s:I, s:I}, s:{s:s, s:I}}}",
                            "format", "lacos-checkpoint", "version", 1, "step", step, "lacos", lacos_version(),
                            "files", "tensors.safetensors.zst", "sha256", hz, "bytes", (json_int_t)zn, "raw_bytes", (json_int_t)img_n,
                            "state.json", "sha256", hs, "bytes", (json_int_t)strlen(st));
    char *text = man ? json_dumps(man, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(man);
    if (!text) s = fail(LACOS_ENOMEM, "out of memory");
    else { snprintf(path, sizeof path, "%s/manifest.json", tmp); s = write_file_synced(path, text, strlen(text)); free(text); }
  }
  /* into place in one rename (an older checkpoint of the same step is replaced whole) */
  if (!s) s = lacos_dir_commit(tmp, final, 1);
  if (s) remove_tree(tmp);
  return s;
}

void lacos_checkpoint_free(lacos_checkpoint *ck) {
  if (!ck) return;
  mem_free(ck->state);
  lacos_safetensors_free(ck->tensors);
  mem_free(ck);
}

const char *lacos_checkpoint_state(const lacos_checkpoint *ck) { return ck->state; }
lacos_safetensors *lacos_checkpoint_tensors(lacos_checkpoint *ck) { return ck->tensors; }

static int verified(const char *path, const char *file, json_t *files, char **data, size_t *n, json_int_t *raw) {
  json_t *f = json_object_get(files, file);
  json_t *h = json_object_get(f, "sha256"), *b = json_object_get(f, "bytes");
  if (!json_is_string(h) || !json_is_integer(b)) return fail(LACOS_EFORMAT, "%s: manifest lacks the size or hash of %s", path, file);
  if (raw) {
    json_t *r = json_object_get(f, "raw_bytes");
    *raw = json_is_integer(r) ? json_integer_value(r) : -1;
  }
  char fp[4400], hex[65];
  snprintf(fp, sizeof fp, "%s/%s", path, file);
  TRY(file_read_all(fp, MAX_CKPT_FILE, data, n));
  if ((json_int_t)*n != json_integer_value(b)) {
    mem_free(*data); *data = NULL;
    return fail(LACOS_EFORMAT, "%s: %s has %zu bytes, the manifest says %lld (truncated or replaced)", path, file, *n, (long long)json_integer_value(b));
  }
  TRY(lacos_sha256_buffer(*data, (double)*n, hex));
  if (strcmp(hex, json_string_value(h)) != 0) {
    mem_free(*data); *data = NULL;
    return fail(LACOS_EFORMAT, "%s: %s does not match its SHA-256 in the manifest (corrupted)", path, file);
  }
  return LACOS_OK;
}

int lacos_checkpoint_open(lacos_checkpoint **out, const char *path) {
  *out = NULL;
  char mp[4400];
  snprintf(mp, sizeof mp, "%s/manifest.json", path);
  char *text;
  size_t len;
  TRY(file_read_all(mp, 1 << 20, &text, &len));
  json_error_t jerr;
  json_t *man = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  mem_free(text);
  if (!man) return fail(LACOS_EFORMAT, "%s:%d: invalid JSON: %s", mp, jerr.line, jerr.text);
  int s = LACOS_OK;
  json_t *fmt = json_object_get(man, "format"), *ver = json_object_get(man, "version"), *files = json_object_get(man, "files");
  char *z = NULL, *state = NULL;
  size_t zn = 0, sn = 0;
  json_int_t raw = -1;
  if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "lacos-checkpoint") != 0 || !json_is_object(files))
    s = fail(LACOS_EFORMAT, "%s: not a lacos checkpoint manifest", mp);
  else if (!json_is_integer(ver) || json_integer_value(ver) != 1)
    s = fail(LACOS_EUNSUPPORTED, "%s: checkpoint format version %lld is not supported (this lacos reads version 1)",
             mp, json_is_integer(ver) ? (long long)json_integer_value(ver) : -1LL);
  if (!s) s = verified(path, "state.json", files, &state, &sn, NULL);
  if (!s) s = verified(path, "tensors.safetensors.zst", files, &z, &zn, &raw);
  json_decref(man);
  lacos_checkpoint *ck = NULL;
  if (!s) {
    unsigned long long size = ZSTD_getFrameContentSize(z, zn);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > MAX_CKPT_FILE || (raw >= 0 && (json_int_t)size != raw))
      s = fail(LACOS_EFORMAT, "%s: tensors.safetensors.zst is not a zstd frame of the recorded size", path);
    void *img = NULL;
    if (!s) s = mem_alloc(&img, size ? size : 1, "the decompressed checkpoint");
    if (!s) {
      size_t got = ZSTD_decompress(img, size, z, zn);
      if (ZSTD_isError(got) || got != size) { mem_free(img); s = fail(LACOS_EFORMAT, "%s: zstd decompression failed", path); }
      else {
        char name[4400];
        snprintf(name, sizeof name, "%s/tensors.safetensors.zst", path);
        s = meta_calloc(&ck, 1, sizeof *ck, "checkpoint");
        if (s) mem_free(img);
        else s = safetensors_open_buffer(&ck->tensors, img, size, name);
      }
    }
  }
  mem_free(z);
  if (s) { mem_free(state); lacos_checkpoint_free(ck); return s; }
  ck->state = state;
  *out = ck;
  return LACOS_OK;
}

static int step_of(const char *name) {
  if (strncmp(name, "ckpt-", 5) != 0) return -1;
  const char *p = name + 5;
  if (!*p) return -1;
  long v = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return -1;   /* ckpt-N.tmp.PID and friends are not checkpoints */
    v = v * 10 + (*p - '0');
    if (v > 1000000000L) return -1;
  }
  return (int)v;
}

static int cmp_desc(const void *a, const void *b) { return *(const int *)b - *(const int *)a; }

static int list_steps(const char *dir, int **steps, int *n) {
  *steps = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? LACOS_OK : fail_errno("%s", dir);
  struct dirent *e;
  int cap = 0;
  while ((e = readdir(d))) {
    int s = step_of(e->d_name);
    if (s < 0) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      int st = meta_realloc(steps, sizeof **steps * (size_t)cap, "checkpoint list");
      if (st) {
        closedir(d);
        mem_free(*steps);
        *steps = NULL;
        return st;
      }
    }
    (*steps)[(*n)++] = s;
  }
  closedir(d);
  if (*n > 1) qsort(*steps, (size_t)*n, sizeof **steps, cmp_desc);   /* qsort(NULL, 0) is undefined */
  return LACOS_OK;
}

int lacos_checkpoint_find(const char *dir, int i, char *path, int cap, int *step) {
  int *steps, n;
  TRY(list_steps(dir, &steps, &n));
  if (i < 0 || i >= n) { mem_free(steps); return fail(LACOS_ENOTFOUND, "%s: no checkpoint %d", dir, i); }
  snprintf(path, (size_t)cap, "%s/ckpt-%08d", dir, steps[i]);
  if (step) *step = steps[i];
  mem_free(steps);
  return LACOS_OK;
}

int lacos_checkpoint_prune(const char *dir, int keep) {
  if (keep < 1) return fail(LACOS_EINVAL, "keep at least one checkpoint");
  int *steps, n;
  TRY(list_steps(dir, &steps, &n));
  char path[4400];
  for (int i = keep; i < n; i++) {
    snprintf(path, sizeof path, "%s/ckpt-%08d", dir, steps[i]);
    remove_tree(path);
  }
  mem_free(steps);
  /* temporaries from interrupted writes (a kill between the two renames of
     a same-step replacement leaves a .old. next to the .tmp.) */
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)))
      if (strncmp(e->d_name, "ckpt-", 5) == 0 && (strstr(e->d_name, ".tmp.") || strstr(e->d_name, ".old."))) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove_tree(path);
      }
    closedir(d);
  }
  return LACOS_OK;
}
