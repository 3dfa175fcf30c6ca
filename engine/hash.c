/* hash.c: SHA-256 of files and buffers through OpenSSL's EVP interface, for
   checkpoint manifests, downloads and artifact records. */
#include "engine.h"
#include <openssl/evp.h>

static void to_hex(const unsigned char *md, unsigned n, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) { hex[2 * i] = digits[md[i] >> 4]; hex[2 * i + 1] = digits[md[i] & 15]; }
  hex[2 * n] = 0;
}

int lacos_sha256_buffer(const void *data, double nbytes, char *hex) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (nbytes < 0) return fail(LACOS_EINVAL, "sha256: negative length");
  if (!EVP_Digest(data, (size_t)nbytes, md, &n, EVP_sha256(), NULL)) return fail(LACOS_EIO, "sha256: digest failed");
  to_hex(md, n, hex);
  return LACOS_OK;
}

/* Digest of a file's bytes, optionally after a header (git's "blob <n>\0"). */
static int digest_file(const char *path, const EVP_MD *md_type, bool git_blob, char *hex) {
  FILE *f = fopen(path, "rb");
  if (!f) return fail_errno("%s", path);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || !EVP_DigestInit_ex(ctx, md_type, NULL)) { fclose(f); EVP_MD_CTX_free(ctx); return fail(LACOS_ENOMEM, "digest: out of memory"); }
  if (git_blob) {
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); EVP_MD_CTX_free(ctx); return fail_errno("%s", path); }
    long size = ftell(f);
    rewind(f);
    char head[64];
    int hl = snprintf(head, sizeof head, "blob %ld", size);
    EVP_DigestUpdate(ctx, head, (size_t)hl + 1);   /* the NUL terminator is part of the header */
  }
  static _Thread_local unsigned char buf[1 << 16];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(ctx, buf, got);
  int err = ferror(f);
  fclose(f);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  if (err) return fail(LACOS_EIO, "%s: read failed while hashing", path);
  to_hex(md, n, hex);
  return LACOS_OK;
}

int lacos_sha256_file(const char *path, char *hex) { return digest_file(path, EVP_sha256(), false, hex); }

int lacos_git_blob_sha1_file(const char *path, char *hex) { return digest_file(path, EVP_sha1(), true, hex); }
