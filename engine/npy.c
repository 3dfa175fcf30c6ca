/* npy.c: NumPy .npy files (format versions 1.0 to 3.0 read, 1.0 written),
   little-endian C-order arrays of the engine's dtypes. Output is written
   atomically; input headers are validated before any data is trusted. */
#include "engine.h"
#include <ctype.h>
#include <sys/stat.h>

static const struct { const char *descr; int dtype; } npy_types[] = {
  {"<f4", LACOS_F32}, {"<f2", LACOS_F16}, {"|i1", LACOS_I8}, {"<i4", LACOS_I32},
  {"|u1", LACOS_U8},  {"<i8", LACOS_I64}, {"<f8", LACOS_F64},
};

int lacos_tensor_save_npy(const lacos_tensor *t, const char *path) {
  if (tensor_on_cpu(t, "save_npy")) return fail_context("%s", path);
  const char *descr = NULL;
  for (size_t i = 0; i < sizeof npy_types / sizeof *npy_types; i++)
    if (npy_types[i].dtype == t->dtype) descr = npy_types[i].descr;
  if (!descr) return fail(LACOS_EUNSUPPORTED, "%s: NumPy has no %s dtype; convert first", path, lacos_dtype_name(t->dtype));
  char shape[160] = "";
  size_t k = 0;
  for (int d = 0; d < t->ndim; d++)
    k += (size_t)snprintf(shape + k, sizeof shape - k, "%lld,%s", (long long)t->shape[d], d + 1 < t->ndim ? " " : "");
  if (t->ndim > 1) shape[k - 1] = 0;   /* (3, 4) but (3,) */
  char header[256];
  int hl = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
  int total = 10 + hl + 1, pad = (64 - total % 64) % 64;
  memset(header + hl, ' ', (size_t)pad);
  header[hl + pad] = '\n';
  hl += pad + 1;
  lacos_tensor *c;
  TRY(lacos_tensor_contiguous(&c, t));
  atomic_file af;
  int s = atomic_file_open(&af, path);
  if (s) { lacos_tensor_free(c); return s; }
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
  fwrite(pre, 1, 10, af.f);
  fwrite(header, 1, (size_t)hl, af.f);
  fwrite(c->data, 1, (size_t)lacos_tensor_nbytes(c), af.f);
  lacos_tensor_free(c);
  return atomic_file_commit(&af);
}

static const char *skip_ws(const char *p) { while (*p && isspace((unsigned char)*p)) p++; return p; }

int lacos_tensor_load_npy(lacos_tensor **out, const char *path) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return fail_errno("%s", path);
  unsigned char pre[12];
  int s = LACOS_OK;
  char *hdr = NULL;
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    s = fail(LACOS_EFORMAT, "%s: not a NumPy .npy file (bad magic)", path);
    goto done;
  }
  size_t hl;
  if (pre[6] == 1) hl = pre[8] | (size_t)pre[9] << 8;
  else if (pre[6] == 2 || pre[6] == 3) {
    if (fread(pre + 10, 1, 2, f) != 2) { s = fail(LACOS_EFORMAT, "%s: truncated header", path); goto done; }
    hl = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  } else { s = fail(LACOS_EFORMAT, "%s: unsupported .npy version %d", path, pre[6]); goto done; }
  if (hl > 65536) { s = fail(LACOS_EFORMAT, "%s: header of %zu bytes is too large", path, hl); goto done; }
  if ((s = meta_calloc(&hdr, 1, hl + 1, ".npy header"))) goto done;
  if (fread(hdr, 1, hl, f) != hl) { s = fail(LACOS_EFORMAT, "%s: truncated header", path); goto done; }
  const char *d = strstr(hdr, "'descr'"), *fo = strstr(hdr, "'fortran_order'"), *sh = strstr(hdr, "'shape'");
  if (!d || !fo || !sh) { s = fail(LACOS_EFORMAT, "%s: header lacks descr, fortran_order or shape", path); goto done; }
  int dtype = -1;
  d = skip_ws(strchr(d + 7, ':') ? strchr(d + 7, ':') + 1 : d + 7);
  for (size_t i = 0; i < sizeof npy_types / sizeof *npy_types; i++) {
    size_t L = strlen(npy_types[i].descr);
    if (*d == '\'' && !strncmp(d + 1, npy_types[i].descr, L) && d[1 + L] == '\'') dtype = npy_types[i].dtype;
  }
  if (dtype < 0) { s = fail(LACOS_EUNSUPPORTED, "%s: unsupported array dtype in header: %.40s", path, d); goto done; }
  fo = skip_ws(strchr(fo + 15, ':') ? strchr(fo + 15, ':') + 1 : fo + 15);
  if (strncmp(fo, "False", 5) != 0) { s = fail(LACOS_EUNSUPPORTED, "%s: Fortran-order arrays are not supported", path); goto done; }
  const char *p = strchr(sh, '(');
  int64_t shape[4];
  int ndim = 0;
  if (!p) { s = fail(LACOS_EFORMAT, "%s: malformed shape in header", path); goto done; }
  p++;
  for (;;) {
    p = skip_ws(p);
    if (*p == ')') break;
    if (!isdigit((unsigned char)*p)) { s = fail(LACOS_EFORMAT, "%s: malformed shape in header", path); goto done; }
    if (ndim == 4) { s = fail(LACOS_EUNSUPPORTED, "%s: arrays of more than 4 dimensions are not supported", path); goto done; }
    char *end;
    long long v = strtoll(p, &end, 10);
    if (v < 0 || v > (1LL << 40)) { s = fail(LACOS_EFORMAT, "%s: shape entry out of range", path); goto done; }
    shape[ndim++] = v;
    p = skip_ws(end);
    if (*p == ',') p++;
  }
  /* The data must be in the file before anything is allocated for it: a
     header claiming a terabyte array in a 100-byte file fails here, with
     no allocation (found by fuzz_npy). */
  {
    long here = ftell(f);
    struct stat sb;
    uint64_t want = (uint64_t)lacos_dtype_size(dtype);
    bool overflow = false;
    for (int k = 0; k < ndim; k++) overflow |= __builtin_mul_overflow(want, (uint64_t)shape[k], &want);
    if (here >= 0 && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) &&
        (overflow || want > (uint64_t)(sb.st_size - here))) {
      s = fail(LACOS_EFORMAT, "%s: file is shorter than its header says (%s%.0f data bytes claimed, %lld present)",
               path, overflow ? "more than " : "", overflow ? 18446744073709551615.0 : (double)want,
               (long long)(sb.st_size - here));
      goto done;
    }
  }
  s = lacos_tensor_empty(out, dtype, LACOS_CPU, ndim, shape);
  if (s) { fail_context("%s", path); goto done; }
  size_t want = (size_t)lacos_tensor_nbytes(*out);
  if (fread((*out)->data, 1, want, f) != want) {
    lacos_tensor_free(*out); *out = NULL;
    s = fail(LACOS_EFORMAT, "%s: file is shorter than its header says (%zu data bytes expected)", path, want);
  }
done:
  mem_free(hdr);
  fclose(f);
  return s;
}
