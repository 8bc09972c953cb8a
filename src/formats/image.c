/*
 * image.c — PNG and JPEG decoding into 8-bit RGB (orion_image), for the
 * vision encoders (WebP: image_webp.c).
 *
 * How it works: the first bytes pick the decoder (PNG signature, the JPEG
 * SOI marker FF D8 FF, or RIFF....WEBP); anything else is refused. Each decoder reads the
 * header only, checks the declared width and height against the caller's
 * limits (dimensions, pixel count) with overflow-checked arithmetic, and
 * only then allocates the pixels and decodes. Both libraries report errors
 * through callbacks that longjmp back here; everything that must be freed
 * afterwards lives in one heap context (never in locals changed after
 * setjmp), so the error path releases it in one place.
 *
 * The result is what Pillow's Image.open(f).convert("RGB") gives, so that
 * preprocessing matches LLaVA's Python pipeline: PNG alpha is dropped (not
 * composited), grey is replicated to R = G = B, 1/2/4-bit grey is scaled to
 * 0..255, 16-bit samples keep their most significant byte, palettes are
 * expanded, and neither gamma nor EXIF orientation is applied. JPEG is
 * decoded by libjpeg-turbo with its defaults (the same library and settings
 * Debian's Pillow uses); a JPEG that ends early is an error (Pillow's
 * "image file is truncated"). CMYK and YCCK JPEGs become RGB as Pillow's
 * convert("RGB") makes them (inverted when an Adobe marker says so).
 */
#include "core/core.h"
#include "formats/image_internal.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#define JPEG_MAX_SCANS 1000 /* progressive scans; real files have ~10 */

orion_image_limits orion_image_default_limits(void) {
    orion_image_limits l = {16384, 16384, (int64_t)1 << 26, (size_t)64 << 20};
    return l;
}

orion_status orion_image_new(int32_t width, int32_t height, orion_image **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_image_new: out is NULL");
    *out = NULL;
    size_t n;
    if (width <= 0 || height <= 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "image: bad size %d x %d", (int)width, (int)height);
    if (!orion__mul_ok((size_t)width, (size_t)height, &n) || n > ((size_t)1 << 31) || !orion__mul_ok(n, 3, &n))
        return orion__fail(ORION_ERR_RANGE, "image: %d x %d pixels is more than 2^31", (int)width, (int)height);
    orion_image *img = orion__calloc(1, sizeof *img);
    if (!img) return orion__fail(ORION_ERR_NOMEM, "image: out of memory");
    img->rgb = orion__malloc(n);
    if (!img->rgb) {
        orion__free(img);
        return orion__fail(ORION_ERR_NOMEM, "image: out of memory for %d x %d pixels", (int)width, (int)height);
    }
    img->width = width;
    img->height = height;
    *out = img;
    return ORION_OK;
}

void orion_image_free(orion_image *img) {
    if (!img) return;
    orion__free(img->rgb);
    orion__free(img);
}

orion_status orion__image_check_size(const char *label, const char *kind, uint64_t w, uint64_t h,
                                     const orion_image_limits *lim) {
    if (w == 0 || h == 0)
        return orion__fail(ORION_ERR_FORMAT, "%s: %s declares a zero size (%llu x %llu)", label, kind,
                           (unsigned long long)w, (unsigned long long)h);
    if (w > (uint64_t)lim->max_width || h > (uint64_t)lim->max_height || w * h > (uint64_t)lim->max_pixels)
        return orion__fail(ORION_ERR_LIMIT, "%s: %s declares %llu x %llu pixels, over the limit (%d x %d, %lld pixels)",
                           label, kind, (unsigned long long)w, (unsigned long long)h, (int)lim->max_width,
                           (int)lim->max_height, (long long)lim->max_pixels);
    return ORION_OK;
}

/* ---- PNG ------------------------------------------------------------------------------------- */

typedef struct png_ctx {
    const uint8_t *data;
    size_t         size, pos;
    const char    *label;
    jmp_buf        jb;
    char           msg[200];
    png_structp    png;
    png_infop      info;
    orion_image   *img;
    uint8_t       *raw;   /* decoded rows before conversion to RGB (channels != 3) */
    png_bytep     *rows;  /* (height) */
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "error");
    longjmp(c->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep out, size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->size - c->pos) png_error(png, "the file is truncated");
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

static orion_status decode_png(png_ctx *c, const orion_image_limits *lim) {
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
    if (!c->png) return orion__fail(ORION_ERR_NOMEM, "%s: PNG: cannot create a decoder", c->label);
    c->info = png_create_info_struct(c->png);
    if (!c->info) return orion__fail(ORION_ERR_NOMEM, "%s: PNG: cannot create a decoder", c->label);
    if (setjmp(c->jb)) {
        bool trunc = strstr(c->msg, "truncated") != NULL;
        return orion__fail(ORION_ERR_FORMAT, "%s: PNG: %s%s", c->label, c->msg,
                           trunc ? "" : " (corrupt or truncated image)");
    }
    png_set_read_fn(c->png, c, png_on_read);
    /* our own limits are checked below; libpng's default caps (1e6) would
     * refuse sizes the caller allowed */
    png_set_user_limits(c->png, 0x7fffffff, 0x7fffffff);
    png_set_chunk_malloc_max(c->png, (size_t)8 << 20); /* text/ICC chunks: no decompression bombs */
    png_set_chunk_cache_max(c->png, 1000);
    png_read_info(c->png, c->info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(c->png, c->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    orion_status st = orion__image_check_size(c->label, "PNG", w, h, lim);
    if (st != ORION_OK) return st;
    if (depth == 16) png_set_strip_16(c->png); /* keeps the high byte, as Pillow */
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    const int ch = png_get_channels(c->png, c->info);
    const size_t rowbytes = png_get_rowbytes(c->png, c->info);
    if (ch < 1 || ch > 4 || png_get_bit_depth(c->png, c->info) != 8 || rowbytes != (size_t)w * (size_t)ch)
        return orion__fail(ORION_ERR_FORMAT, "%s: PNG: unexpected layout after expansion (%d channels)", c->label, ch);
    if ((st = orion_image_new((int32_t)w, (int32_t)h, &c->img)) != ORION_OK)
        return orion__fail(st, "%s: %s", c->label, orion_last_error());
    c->rows = orion__malloc(sizeof *c->rows * (size_t)h);
    if (ch != 3) c->raw = orion__malloc(rowbytes * (size_t)h);
    if (!c->rows || (ch != 3 && !c->raw))
        return orion__fail(ORION_ERR_NOMEM, "%s: out of memory for %u x %u pixels", c->label, (unsigned)w, (unsigned)h);
    uint8_t *base = ch == 3 ? c->img->rgb : c->raw;
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = base + (size_t)y * rowbytes;
    png_read_image(c->png, c->rows);
    if (ch != 3) {
        const size_t n = (size_t)w * (size_t)h;
        uint8_t *dst = c->img->rgb;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *s = c->raw + i * (size_t)ch;
            if (ch <= 2) dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = s[0]; /* grey (+ alpha) */
            else memcpy(dst + 3 * i, s, 3);                                   /* RGBA */
        }
    }
    return ORION_OK;
}

/* ---- JPEG ------------------------------------------------------------------------------------ */

typedef struct jpeg_ctx {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr         err;
    struct jpeg_progress_mgr      progress;
    bool                          created;
    jmp_buf                       jb;
    char                          msg[JMSG_LENGTH_MAX + 32];
    const char                   *label;
    orion_image                  *img;
    uint8_t                      *row;   /* one row, grey and CMYK images */
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->client_data;
    cinfo->err->format_message(cinfo, c->msg);
    longjmp(c->jb, 1);
}

/* Warnings are ignored (Pillow ignores them too), except running out of
 * data: libjpeg would pad the image with grey; Pillow refuses the file. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_ctx *c = (jpeg_ctx *)cinfo->client_data;
        snprintf(c->msg, sizeof c->msg, "the file is truncated");
        longjmp(c->jb, 1);
    }
}

static void jpeg_on_progress(j_common_ptr cinfo) {
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_ctx *c = (jpeg_ctx *)cinfo->client_data;
        snprintf(c->msg, sizeof c->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(c->jb, 1);
    }
}

static orion_status decode_jpeg(jpeg_ctx *c, const uint8_t *data, size_t size, const orion_image_limits *lim) {
    struct jpeg_decompress_struct *ci = &c->cinfo;
    ci->err = jpeg_std_error(&c->err);
    c->err.error_exit = jpeg_on_error;
    c->err.emit_message = jpeg_on_message;
    ci->client_data = c;
    if (setjmp(c->jb))
        return orion__fail(ORION_ERR_FORMAT, "%s: JPEG: %s", c->label, c->msg);
    jpeg_create_decompress(ci);
    c->created = true;
    c->progress.progress_monitor = jpeg_on_progress;
    ci->progress = &c->progress;
    ci->mem->max_memory_to_use = (long)512 << 20;
    jpeg_mem_src(ci, data, (unsigned long)size);
    jpeg_read_header(ci, TRUE);
    orion_status st = orion__image_check_size(c->label, "JPEG", ci->image_width, ci->image_height, lim);
    if (st != ORION_OK) return st;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE: ci->out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr:
    case JCS_RGB: ci->out_color_space = JCS_RGB; break;
    case JCS_CMYK:
    case JCS_YCCK: ci->out_color_space = JCS_CMYK; break; /* libjpeg turns YCCK into CMYK */
    default:
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: JPEG: colour space %d is not supported", c->label,
                           (int)ci->jpeg_color_space);
    }
    jpeg_start_decompress(ci);
    const int comps = ci->out_color_components;
    if ((comps != 1 && comps != 3 && comps != 4) || (comps == 4) != (ci->out_color_space == JCS_CMYK) ||
        ci->output_width != ci->image_width || ci->output_height != ci->image_height)
        return orion__fail(ORION_ERR_FORMAT, "%s: JPEG: unexpected output layout", c->label);
    if ((st = orion_image_new((int32_t)ci->output_width, (int32_t)ci->output_height, &c->img)) != ORION_OK)
        return orion__fail(st, "%s: %s", c->label, orion_last_error());
    if (comps != 3 && !(c->row = orion__malloc((size_t)ci->output_width * (size_t)comps)))
        return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", c->label);
    /* Adobe (Photoshop) CMYK is stored inverted; Pillow reads it as "CMYK;I" */
    const int inv = comps == 4 && ci->saw_Adobe_marker ? 255 : 0;
    const size_t stride = (size_t)ci->output_width * 3;
    while (ci->output_scanline < ci->output_height) {
        uint8_t *row = c->img->rgb + (size_t)ci->output_scanline * stride;
        JSAMPROW r = comps == 3 ? row : c->row;
        if (jpeg_read_scanlines(ci, &r, 1) != 1) {
            snprintf(c->msg, sizeof c->msg, "no scanline decoded");
            return orion__fail(ORION_ERR_FORMAT, "%s: JPEG: %s", c->label, c->msg);
        }
        if (comps == 1)
            for (JDIMENSION x = 0; x < ci->output_width; x++) row[3 * x] = row[3 * x + 1] = row[3 * x + 2] = c->row[x];
        if (comps == 4) /* Pillow's convert("RGB") from CMYK: (255 - k) * (1 - c / 255), rounded as it does */
            for (JDIMENSION x = 0; x < ci->output_width; x++) {
                const uint8_t *q = c->row + 4 * (size_t)x;
                const int nk = 255 - (q[3] ^ inv);
                for (int ch = 0; ch < 3; ch++) {
                    const int t = (q[ch] ^ inv) * nk + 128;
                    row[3 * x + (size_t)ch] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
                }
            }
    }
    jpeg_finish_decompress(ci);
    return ORION_OK;
}

/* ---- entry points ---------------------------------------------------------------------------- */

static orion_status decode(const uint8_t *data, size_t size, const char *label, const orion_image_limits *limits,
                           orion_image **out) {
    if (!out || (!data && size)) return orion__fail(ORION_ERR_INVALID_ARG, "orion_image_load: NULL argument");
    *out = NULL;
    orion_image_limits lim = limits ? *limits : orion_image_default_limits();
    if (lim.max_width <= 0 || lim.max_height <= 0 || lim.max_pixels <= 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_image_load: limits must be positive");
    if (size == 0) return orion__fail(ORION_ERR_FORMAT, "%s: empty file, not an image", label);
    if (size > lim.max_bytes)
        return orion__fail(ORION_ERR_LIMIT, "%s: %zu bytes, over the limit of %zu", label, size, lim.max_bytes);
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    orion_status st;
    if (size >= 8 && memcmp(data, png_sig, 8) == 0) {
        png_ctx *c = orion__calloc(1, sizeof *c);
        if (!c) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
        c->data = data, c->size = size, c->label = label;
        st = decode_png(c, &lim);
        if (c->png) png_destroy_read_struct(&c->png, c->info ? &c->info : NULL, NULL);
        orion__free(c->rows);
        orion__free(c->raw);
        if (st == ORION_OK) *out = c->img;
        else orion_image_free(c->img);
        orion__free(c);
        return st;
    }
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
        jpeg_ctx *c = orion__calloc(1, sizeof *c);
        if (!c) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
        c->label = label;
        st = decode_jpeg(c, data, size, &lim);
        if (c->created) jpeg_destroy_decompress(&c->cinfo);
        orion__free(c->row);
        if (st == ORION_OK) *out = c->img;
        else orion_image_free(c->img);
        orion__free(c);
        return st;
    }
    if (size >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0)
        return orion__image_decode_webp(data, size, label, &lim, out);
    return orion__fail(ORION_ERR_FORMAT, "%s: not a PNG, JPEG or WebP image (unknown signature)", label);
}

orion_status orion_image_load_memory(const void *data, size_t size, const orion_image_limits *limits,
                                     orion_image **out) {
    return decode(data, size, "<memory>", limits, out);
}

orion_status orion_image_load(const char *path, const orion_image_limits *limits, orion_image **out) {
    if (!path || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_image_load: NULL argument");
    *out = NULL;
    const uint8_t *data = NULL;
    size_t size = 0;
    orion_status st = orion__file_map(path, &data, &size);
    if (st != ORION_OK) return st;
    st = decode(data, size, path, limits, out);
    orion__file_unmap(data, size);
    return st;
}
