/*
 * image_internal.h — what the image decoders (image.c, image_webp.c) share
 * inside the formats layer.
 */
#ifndef ORION_IMAGE_INTERNAL_H
#define ORION_IMAGE_INTERNAL_H

#include "core/core.h"

/* ORION_ERR_FORMAT for a zero size, ORION_ERR_LIMIT past the limits (the
 * message names `label` and the format `kind`), else ORION_OK. */
orion_status orion__image_check_size(const char *label, const char *kind, uint64_t w, uint64_t h,
                                     const orion_image_limits *lim);

/* Decodes a WebP file (data starts with RIFF....WEBP) into *out. */
orion_status orion__image_decode_webp(const uint8_t *data, size_t size, const char *label,
                                      const orion_image_limits *lim, orion_image **out);

#endif /* ORION_IMAGE_INTERNAL_H */
