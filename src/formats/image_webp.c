/*
 * image_webp.c — WebP decoding (libwebp) into 8-bit RGB, as Pillow's
 * Image.open(f).convert("RGB") gives it: lossy (VP8, with libwebp's default
 * "fancy" chroma upsampling, as Pillow's decoder uses) and lossless (VP8L),
 * with or without alpha; alpha is dropped, not composited (libwebp's RGB
 * output ignores the alpha plane, and Pillow decodes to non-premultiplied
 * RGBA and drops A). The header (WebPGetFeatures) is read first and the
 * declared size checked against the limits before any pixel memory is
 * allocated. Animated WebP is refused (ORION_ERR_UNSUPPORTED): Pillow would
 * show its first frame composited on a canvas, which is not what one image
 * in a prompt should silently be.
 */
#include "formats/image_internal.h"

#include <webp/decode.h>

orion_status orion__image_decode_webp(const uint8_t *data, size_t size, const char *label,
                                      const orion_image_limits *lim, orion_image **out) {
    *out = NULL;
    WebPBitstreamFeatures f;
    VP8StatusCode vs = WebPGetFeatures(data, size, &f);
    if (vs == VP8_STATUS_NOT_ENOUGH_DATA) return orion__fail(ORION_ERR_FORMAT, "%s: WebP: the file is truncated", label);
    if (vs != VP8_STATUS_OK)
        return orion__fail(ORION_ERR_FORMAT, "%s: WebP: not a valid header (libwebp status %d)", label, (int)vs);
    if (f.has_animation) return orion__fail(ORION_ERR_UNSUPPORTED, "%s: animated WebP is not supported", label);
    orion_status st = orion__image_check_size(label, "WebP", (uint64_t)(f.width > 0 ? f.width : 0),
                                              (uint64_t)(f.height > 0 ? f.height : 0), lim);
    if (st != ORION_OK) return st;
    orion_image *img = NULL;
    if ((st = orion_image_new(f.width, f.height, &img)) != ORION_OK)
        return orion__fail(st, "%s: %s", label, orion_last_error());
    const size_t stride = (size_t)f.width * 3;
    if (!WebPDecodeRGBInto(data, size, img->rgb, stride * (size_t)f.height, (int)stride)) {
        orion_image_free(img);
        return orion__fail(ORION_ERR_FORMAT, "%s: WebP: corrupt or truncated image data", label);
    }
    *out = img;
    return ORION_OK;
}
