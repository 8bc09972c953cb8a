/*
 * image_resample.c — the geometric steps of LLaVA's image preprocessing:
 * padding to a square (LLaVA's expand2square) and Pillow's BICUBIC resize
 * (what CLIPImageProcessor calls through PIL.Image.resize).
 *
 * The resize reproduces Pillow's separable resampler (libImaging/Resample.c,
 * Pillow 7..10) so that pixels match bit for bit:
 *   - per output pixel xx of a pass: scale = in / out, filterscale =
 *     max(scale, 1) (downscaling widens the filter: antialiasing), support =
 *     2 * filterscale, center = (xx + 0.5) * scale, taps x in
 *     [(int)(center - support + 0.5), (int)(center + support + 0.5)) clipped
 *     to the image, weight = cubic((x - center + 0.5) / filterscale) with
 *     Keys' kernel at a = -0.5, normalized to sum 1 (in double);
 *   - weights become 22-bit fixed point (rounded half away from zero); a
 *     pixel is (2^21 + sum w * p) >> 22 clipped to 0..255;
 *   - the horizontal pass runs first (when the width changes) and its 8-bit
 *     result feeds the vertical pass (when the height changes).
 * Integer sums are kept in 64 bits; Pillow's 32-bit sums never overflow for
 * these weights, so the results are the same.
 */
#include "core/core.h"

#include <math.h>
#include <string.h>

#define PRECISION_BITS 22

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Coefficients of one pass: for each output index, bounds[2i] = first input
 * index, bounds[2i+1] = number of taps, and ksize fixed-point weights at
 * kk[i * ksize]. */
typedef struct coeffs {
    int      ksize;
    int     *bounds;  /* (out, 2) */
    int32_t *kk;      /* (out, ksize) */
} coeffs;

static orion_status precompute(int in_size, int out_size, coeffs *c) {
    const double scale = (double)in_size / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 2.0 * filterscale;
    const int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->bounds = orion__malloc(sizeof(int) * 2 * (size_t)out_size);
    c->kk = orion__malloc(sizeof(int32_t) * (size_t)ksize * (size_t)out_size);
    double *w = orion__malloc(sizeof(double) * (size_t)ksize);
    if (!c->bounds || !c->kk || !w) {
        orion__free(w);
        return orion__fail(ORION_ERR_NOMEM, "resize: out of memory for %d x %d coefficients", out_size, ksize);
    }
    for (int xx = 0; xx < out_size; xx++) {
        const double center = (xx + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->kk + (size_t)xx * (size_t)ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    orion__free(w);
    return ORION_OK;
}

static inline uint8_t clip8(int64_t v) {
    if (v < 0) return 0;
    v >>= PRECISION_BITS;
    return v > 255 ? 255 : (uint8_t)v;
}

/* in: (h, in_w, 3) -> out: (h, out_w, 3) */
static void pass_horizontal(const uint8_t *in, int in_w, int h, const coeffs *c, int out_w, uint8_t *out) {
    for (int y = 0; y < h; y++) {
        const uint8_t *row = in + (size_t)y * (size_t)in_w * 3;
        uint8_t *o = out + (size_t)y * (size_t)out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            const int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
            const int32_t *k = c->kk + (size_t)xx * (size_t)c->ksize;
            int64_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                const uint8_t *p = row + (size_t)(x + xmin) * 3;
                s0 += (int64_t)p[0] * k[x];
                s1 += (int64_t)p[1] * k[x];
                s2 += (int64_t)p[2] * k[x];
            }
            o[3 * xx] = clip8(s0), o[3 * xx + 1] = clip8(s1), o[3 * xx + 2] = clip8(s2);
        }
    }
}

/* in: (in_h, w, 3) -> out: (out_h, w, 3) */
static void pass_vertical(const uint8_t *in, int w, const coeffs *c, int out_h, uint8_t *out) {
    const size_t stride = (size_t)w * 3;
    for (int yy = 0; yy < out_h; yy++) {
        const int ymin = c->bounds[2 * yy], n = c->bounds[2 * yy + 1];
        const int32_t *k = c->kk + (size_t)yy * (size_t)c->ksize;
        uint8_t *o = out + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int64_t s = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < n; y++) s += (int64_t)in[(size_t)(y + ymin) * stride + i] * k[y];
            o[i] = clip8(s);
        }
    }
}

orion_status orion_image_resize_bicubic(const orion_image *img, int32_t width, int32_t height, orion_image **out) {
    if (!img || !out || !img->rgb || img->width <= 0 || img->height <= 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_image_resize_bicubic: bad image");
    *out = NULL;
    if (width <= 0 || height <= 0 || width > (1 << 16) || height > (1 << 16))
        return orion__fail(ORION_ERR_INVALID_ARG, "resize: target %d x %d is outside [1, 65536]", (int)width,
                           (int)height);
    const bool need_h = width != img->width, need_v = height != img->height;
    orion_image *tmp = NULL, *res = NULL;
    coeffs ch = {0, NULL, NULL}, cv = {0, NULL, NULL};
    orion_status st;
    if ((st = orion_image_new(width, height, &res)) != ORION_OK) goto done;
    if (!need_h && !need_v) {
        memcpy(res->rgb, img->rgb, (size_t)width * (size_t)height * 3);
        goto done;
    }
    const uint8_t *src = img->rgb;
    if (need_h) {
        if ((st = precompute(img->width, width, &ch)) != ORION_OK) goto done;
        if (need_v) {
            if ((st = orion_image_new(width, img->height, &tmp)) != ORION_OK) goto done;
            pass_horizontal(src, img->width, img->height, &ch, width, tmp->rgb);
            src = tmp->rgb;
        } else {
            pass_horizontal(src, img->width, img->height, &ch, width, res->rgb);
        }
    }
    if (need_v) {
        if ((st = precompute(img->height, height, &cv)) != ORION_OK) goto done;
        pass_vertical(src, width, &cv, height, res->rgb);
    }
done:
    orion__free(ch.bounds), orion__free(ch.kk), orion__free(cv.bounds), orion__free(cv.kk);
    orion_image_free(tmp);
    if (st != ORION_OK) {
        orion_image_free(res);
        return st;
    }
    *out = res;
    return ORION_OK;
}

orion_status orion_image_pad_square(const orion_image *img, const uint8_t fill[3], orion_image **out) {
    if (!img || !out || !fill || !img->rgb || img->width <= 0 || img->height <= 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_image_pad_square: bad image");
    *out = NULL;
    const int32_t w = img->width, h = img->height, side = w > h ? w : h;
    orion_image *res;
    orion_status st = orion_image_new(side, side, &res);
    if (st != ORION_OK) return st;
    const size_t n = (size_t)side * (size_t)side;
    for (size_t i = 0; i < n; i++) memcpy(res->rgb + 3 * i, fill, 3);
    const int32_t x0 = (side - w) / 2, y0 = (side - h) / 2;
    for (int32_t y = 0; y < h; y++)
        memcpy(res->rgb + ((size_t)(y + y0) * (size_t)side + (size_t)x0) * 3, img->rgb + (size_t)y * (size_t)w * 3,
               (size_t)w * 3);
    *out = res;
    return ORION_OK;
}
