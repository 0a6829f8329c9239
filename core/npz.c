/* .npz reader: zip central directory -> members; stored/deflated payloads; .npy headers.
 *
 * Zip layout used here (PKWARE APPNOTE): the end-of-central-directory record (EOCD,
 * "PK\5\6") in the last 64 KiB + 22 bytes gives the central directory's offset and entry
 * count (or a zip64 EOCD locator "PK\6\7" just before it points at the zip64 EOCD "PK\6\6").
 * Each central entry ("PK\1\2") holds method, CRC-32, sizes, name and the local header's
 * offset; 0xFFFFFFFF sizes/offsets are in its zip64 extra field (id 0x0001), in the order
 * uncompressed size, compressed size, local offset. The data follows the local header
 * ("PK\3\4", 30 bytes + name + its own extra). np.savez writes members with force_zip64. */
#include "npz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dtype.h"
#include "error.h"

typedef struct {
    char *name;        /* without ".npy" */
    int method;        /* 0 stored, 8 deflate */
    uint32_t crc;
    uint64_t csize, usize, local_off;
} npz_member;

struct hk_npz {
    char *path;
    const uint8_t *map;
    size_t size;
    npz_member *m;
    size_t n;
};

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32); }

void hk_npz_close(hk_npz *z) {
    if (!z) return;
    for (size_t i = 0; i < z->n; i++) free(z->m[i].name);
    free(z->m);
    if (z->map) munmap((void *)z->map, z->size);
    free(z->path);
    free(z);
}

/* The zip64 extra field of a central entry: fills the fields that were 0xFFFFFFFF. */
static hk_status read_zip64_extra(const hk_npz *z, const uint8_t *ex, size_t len, npz_member *e,
                                  bool need_u, bool need_c, bool need_o) {
    size_t k = 0;
    while (k + 4 <= len) {
        uint16_t id = le16(ex + k), sz = le16(ex + k + 2);
        if (k + 4 + sz > len) break;
        if (id == 0x0001) {
            const uint8_t *p = ex + k + 4, *end = p + sz;
            if (need_u) { if (p + 8 > end) goto bad; e->usize = le64(p); p += 8; }
            if (need_c) { if (p + 8 > end) goto bad; e->csize = le64(p); p += 8; }
            if (need_o) { if (p + 8 > end) goto bad; e->local_off = le64(p); }
            return HK_OK;
        }
        k += 4 + (size_t)sz;
    }
bad:
    return hk_errorf(HK_ERR_FORMAT, "%s: member '%s': sizes marked zip64 but no valid zip64 "
                                    "extra field", z->path, e->name ? e->name : "?");
}

static hk_status read_directory(hk_npz *z) {
    const uint8_t *b = z->map;
    const size_t size = z->size;
    if (size < 22) return hk_errorf(HK_ERR_FORMAT, "%s: %zu bytes is too short for a zip "
                                                   "archive (.npz)", z->path, size);
    size_t eocd = SIZE_MAX;
    size_t lo = size > 22 + 65535 ? size - 22 - 65535 : 0;
    for (size_t i = size - 22 + 1; i-- > lo;)
        if (le32(b + i) == 0x06054b50) {
            eocd = i;
            break;
        }
    if (eocd == SIZE_MAX)
        return hk_errorf(HK_ERR_FORMAT, "%s: no zip end-of-central-directory record: not a .npz "
                                        "(zip) file, or truncated", z->path);
    uint64_t n = le16(b + eocd + 10), cd_size = le32(b + eocd + 12), cd_off = le32(b + eocd + 16);
    if (eocd >= 20 && le32(b + eocd - 20) == 0x07064b50) { /* zip64 locator */
        uint64_t z64 = le64(b + eocd - 20 + 8);
        if (z64 > size - 56 || le32(b + z64) != 0x06064b50)
            return hk_errorf(HK_ERR_FORMAT, "%s: zip64 end-of-central-directory record is "
                                            "missing or out of the file", z->path);
        n = le64(b + z64 + 32);
        cd_size = le64(b + z64 + 40);
        cd_off = le64(b + z64 + 48);
    }
    if (cd_off > size || cd_size > size - cd_off)
        return hk_errorf(HK_ERR_FORMAT, "%s: the zip central directory (offset %llu, %llu "
                                        "bytes) lies outside the file (%zu bytes)", z->path,
                         (unsigned long long)cd_off, (unsigned long long)cd_size, size);
    if (n > cd_size / 46)
        return hk_errorf(HK_ERR_FORMAT, "%s: the zip directory claims %llu entries in %llu "
                                        "bytes", z->path, (unsigned long long)n,
                         (unsigned long long)cd_size);
    z->m = calloc(n ? n : 1, sizeof *z->m);
    if (!z->m) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", z->path);
    size_t p = cd_off;
    const size_t cd_end = cd_off + cd_size;
    for (uint64_t i = 0; i < n; i++) {
        if (p + 46 > cd_end || le32(b + p) != 0x02014b50)
            return hk_errorf(HK_ERR_FORMAT, "%s: zip central directory entry %llu is malformed",
                             z->path, (unsigned long long)i);
        npz_member *e = &z->m[z->n];
        uint16_t flags = le16(b + p + 8);
        e->method = le16(b + p + 10);
        e->crc = le32(b + p + 16);
        uint32_t cs = le32(b + p + 20), us = le32(b + p + 24), lo32 = le32(b + p + 42);
        size_t nlen = le16(b + p + 28), xlen = le16(b + p + 30), clen = le16(b + p + 32);
        if (p + 46 + nlen + xlen + clen > cd_end)
            return hk_errorf(HK_ERR_FORMAT, "%s: zip central directory entry %llu runs past the "
                                            "directory", z->path, (unsigned long long)i);
        e->name = malloc(nlen + 1);
        if (!e->name) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", z->path);
        memcpy(e->name, b + p + 46, nlen);
        e->name[nlen] = '\0';
        z->n++;
        if (nlen > 4 && strcmp(e->name + nlen - 4, ".npy") == 0) e->name[nlen - 4] = '\0';
        if (flags & 1)
            return hk_errorf(HK_ERR_UNSUPPORTED, "%s: member '%s' is encrypted", z->path,
                             e->name);
        e->csize = cs;
        e->usize = us;
        e->local_off = lo32;
        if (cs == 0xFFFFFFFFu || us == 0xFFFFFFFFu || lo32 == 0xFFFFFFFFu) {
            hk_status st = read_zip64_extra(z, b + p + 46 + nlen, xlen, e, us == 0xFFFFFFFFu,
                                            cs == 0xFFFFFFFFu, lo32 == 0xFFFFFFFFu);
            if (st) return st;
        }
        p += 46 + nlen + xlen + clen;
    }
    return HK_OK;
}

hk_status hk_npz_open(const char *path, hk_npz **out) {
    if (!path || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_npz_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return hk_errorf(HK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return hk_errorf(HK_ERR_IO, "%s: not a regular file", path);
    }
    hk_npz *z = calloc(1, sizeof *z);
    if (!z || !(z->path = strdup(path))) {
        close(fd);
        free(z);
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", path);
    }
    z->size = (size_t)sb.st_size;
    if (z->size > 0) {
        void *m = mmap(NULL, z->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            hk_npz_close(z);
            return hk_errorf(HK_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        z->map = m;
    }
    close(fd);
    hk_status st = read_directory(z);
    if (st != HK_OK) {
        hk_npz_close(z);
        return st;
    }
    *out = z;
    return HK_OK;
}

size_t hk_npz_count(const hk_npz *z) { return z ? z->n : 0; }
const char *hk_npz_name(const hk_npz *z, size_t i) { return z && i < z->n ? z->m[i].name : NULL; }
int hk_npz_method(const hk_npz *z, size_t i) { return z && i < z->n ? z->m[i].method : -1; }

/* Find value of 'key' in the header dict text: returns a pointer just after "'key':". */
static const char *dict_value(const char *h, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

hk_status hk_npy_parse(const char *label, const uint8_t *img, size_t size, char *descr,
                       size_t descr_cap, int *ndim, int64_t *shape, const uint8_t **payload,
                       size_t *payload_size) {
    if (size < 10 || memcmp(img, "\x93NUMPY", 6) != 0)
        return hk_errorf(HK_ERR_FORMAT, "%s: not an .npy array (no \\x93NUMPY magic)", label);
    const int major = img[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = le16(img + 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return hk_errorf(HK_ERR_FORMAT, "%s: truncated .npy header", label);
        hlen = le32(img + 8);
        hstart = 12;
    } else {
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: .npy format version %d (1, 2 and 3 are read)",
                         label, major);
    }
    if (hlen > size - hstart)
        return hk_errorf(HK_ERR_FORMAT, "%s: .npy header of %zu bytes runs past the member (%zu "
                                        "bytes)", label, hlen, size);
    char *h = malloc(hlen + 1);
    if (!h) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", label);
    memcpy(h, img + hstart, hlen);
    h[hlen] = '\0';
    hk_status st = HK_OK;
    const char *d = dict_value(h, "descr"), *fo = dict_value(h, "fortran_order"),
               *sh = dict_value(h, "shape");
    if (!d || (*d != '\'' && *d != '"') || !fo || !sh || *sh != '(') {
        st = hk_errorf(HK_ERR_FORMAT, "%s: .npy header '%s' lacks descr, fortran_order or "
                                      "shape", label, h);
        goto done;
    }
    const char q = *d++;
    size_t k = 0;
    while (*d && *d != q && k + 1 < descr_cap) descr[k++] = *d++;
    descr[k] = '\0';
    if (strncmp(fo, "False", 5) != 0) {
        st = hk_errorf(HK_ERR_UNSUPPORTED, "%s: fortran_order is not False (save the array "
                                           "C-contiguous)", label);
        goto done;
    }
    *ndim = 0;
    const char *p = sh + 1;
    for (;;) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || *ndim == HK_NPY_MAX_DIMS) {
            st = hk_errorf(HK_ERR_FORMAT, "%s: .npy shape in '%s' is not a tuple of at most %d "
                                          "sizes", label, h, HK_NPY_MAX_DIMS);
            goto done;
        }
        shape[(*ndim)++] = v;
        p = end;
    }
    size_t item = strcmp(descr, "<f4") == 0 ? 4 : strcmp(descr, "<f2") == 0 ? 2
                : strcmp(descr, "<f8") == 0 ? 8 : 0;
    if (!item) {
        st = hk_errorf(HK_ERR_UNSUPPORTED, "%s: dtype '%s' (hookformer reads <f4, <f2 and <f8)",
                       label, descr);
        goto done;
    }
    uint64_t count = 1;
    for (int i = 0; i < *ndim; i++) {
        if (shape[i] && count > UINT64_MAX / 8 / (uint64_t)shape[i]) {
            st = hk_errorf(HK_ERR_FORMAT, "%s: shape overflows", label);
            goto done;
        }
        count *= (uint64_t)shape[i];
    }
    const size_t off = hstart + hlen;
    if (count * item != size - off) {
        st = hk_errorf(HK_ERR_FORMAT, "%s: data is %zu bytes, the header's shape and dtype '%s' "
                                      "need %llu", label, size - off, descr,
                       (unsigned long long)(count * item));
        goto done;
    }
    *payload = img + off;
    *payload_size = size - off;
done:
    free(h);
    return st;
}

/* The member's uncompressed bytes: a pointer into the map (stored) or a malloc'd buffer
 * (*owned, deflated). */
static hk_status member_bytes(hk_npz *z, const npz_member *e, const uint8_t **out,
                              uint8_t **owned) {
    *owned = NULL;
    const uint8_t *b = z->map;
    if (e->local_off > z->size || z->size - e->local_off < 30 || le32(b + e->local_off) != 0x04034b50)
        return hk_errorf(HK_ERR_FORMAT, "%s: member '%s': no local header at offset %llu",
                         z->path, e->name, (unsigned long long)e->local_off);
    const uint8_t *lh = b + e->local_off;
    uint64_t data = e->local_off + 30 + le16(lh + 26) + le16(lh + 28);
    if (data > z->size || e->csize > z->size - data)
        return hk_errorf(HK_ERR_FORMAT, "%s: member '%s': %llu bytes at offset %llu run past the "
                                        "end of the file (truncated?)", z->path, e->name,
                         (unsigned long long)e->csize, (unsigned long long)data);
    if (e->usize > SIZE_MAX / 2)
        return hk_errorf(HK_ERR_FORMAT, "%s: member '%s' is too large", z->path, e->name);
    if (e->method == 0) {
        if (e->csize != e->usize)
            return hk_errorf(HK_ERR_FORMAT, "%s: stored member '%s': compressed size %llu != "
                                            "size %llu", z->path, e->name,
                             (unsigned long long)e->csize, (unsigned long long)e->usize);
        *out = b + data;
    } else if (e->method == 8) {
        uint8_t *buf = malloc(e->usize ? (size_t)e->usize : 1);
        if (!buf) return hk_errorf(HK_ERR_NOMEM, "%s: member '%s': out of memory", z->path, e->name);
        z_stream s;
        memset(&s, 0, sizeof s);
        if (inflateInit2(&s, -MAX_WBITS) != Z_OK) {
            free(buf);
            return hk_errorf(HK_ERR_INTERNAL, "%s: zlib inflateInit2 failed", z->path);
        }
        uint64_t in_left = e->csize, out_done = 0;
        const uint8_t *in = b + data;
        int zr = Z_OK;
        while (zr == Z_OK) {
            uInt in_chunk = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            s.next_in = (Bytef *)in;
            s.avail_in = in_chunk;
            uint64_t out_left = e->usize - out_done;
            s.next_out = buf + out_done;
            s.avail_out = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
            uInt ai = s.avail_in, ao = s.avail_out;
            zr = inflate(&s, Z_NO_FLUSH);
            in += ai - s.avail_in;
            in_left -= ai - s.avail_in;
            out_done += ao - s.avail_out;
            if (zr == Z_BUF_ERROR && (in_left == 0 || out_done == e->usize)) break;
            if (zr == Z_BUF_ERROR) zr = Z_OK;
        }
        inflateEnd(&s);
        if (zr != Z_STREAM_END || out_done != e->usize) {
            free(buf);
            return hk_errorf(HK_ERR_FORMAT, "%s: member '%s': corrupt deflate stream (%s; %llu of "
                                            "%llu bytes)", z->path, e->name,
                             zr == Z_STREAM_END ? "wrong size" : "zlib error",
                             (unsigned long long)out_done, (unsigned long long)e->usize);
        }
        *out = *owned = buf;
    } else {
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: member '%s': zip method %d (stored 0 and "
                                             "deflate 8 are read)", z->path, e->name, e->method);
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t k = 0; k < e->usize; k += (1u << 30)) {
        uInt n = e->usize - k > (1u << 30) ? (1u << 30) : (uInt)(e->usize - k);
        crc = crc32(crc, *out + k, n);
    }
    if ((uint32_t)crc != e->crc) {
        free(*owned);
        *owned = NULL;
        return hk_errorf(HK_ERR_FORMAT, "%s: member '%s': CRC-32 %08x, the directory says %08x "
                                        "(corrupt file)", z->path, e->name, (unsigned)crc,
                         (unsigned)e->crc);
    }
    return HK_OK;
}

hk_status hk_npz_read_f32(hk_npz *z, const char *name, int *ndim, int64_t *shape, float **data) {
    if (!z || !name || !ndim || !shape || !data)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_npz_read_f32: NULL argument");
    *data = NULL;
    const npz_member *e = NULL;
    for (size_t i = 0; i < z->n && !e; i++)
        if (strcmp(z->m[i].name, name) == 0) e = &z->m[i];
    if (!e) return hk_errorf(HK_ERR_NOT_FOUND, "%s: no array '%s' in the archive", z->path, name);
    const uint8_t *bytes = NULL;
    uint8_t *owned = NULL;
    hk_status st = member_bytes(z, e, &bytes, &owned);
    if (st) return st;
    char label[512], descr[16];
    snprintf(label, sizeof label, "%s: array '%s'", z->path, name);
    const uint8_t *payload;
    size_t psize;
    st = hk_npy_parse(label, bytes, (size_t)e->usize, descr, sizeof descr, ndim, shape, &payload,
                      &psize);
    if (st == HK_OK) {
        size_t item = descr[2] == '4' ? 4 : descr[2] == '2' ? 2 : 8, n = psize / item;
        float *f = malloc((n ? n : 1) * sizeof *f);
        if (!f) {
            st = hk_errorf(HK_ERR_NOMEM, "%s: out of memory", label);
        } else if (item == 8) {
            for (size_t i = 0; i < n; i++) {
                double v;
                memcpy(&v, payload + 8 * i, 8);
                f[i] = (float)v;
            }
        } else {
            hk_convert_to_f32(item == 4 ? HK_DTYPE_F32 : HK_DTYPE_F16, payload, f, n);
        }
        *data = f;
    }
    free(owned);
    return st;
}
