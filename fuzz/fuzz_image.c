/*
 * fuzz_image.c — libFuzzer target for the image decoder (src/formats/image.c):
 * any byte string must either decode (and then the image has the size it
 * says, within the limits, and every pixel is readable) or fail with a
 * status and a message; never crash, over-read, leak, or allocate past the
 * limits. Limits are small here (1024 x 1024, 1 M pixels) so that runs stay
 * fast. Built by `make fuzz` with clang; seeds in fuzz/corpus/image.
 */
#include "core/core.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    orion_image_limits lim = orion_image_default_limits();
    lim.max_width = lim.max_height = 1024;
    lim.max_pixels = 1 << 20;
    orion_image *img = NULL;
    if (orion_image_load_memory(data, size, &lim, &img) != ORION_OK) {
        if (img || orion_last_error()[0] == '\0') __builtin_trap(); /* a failure says why and returns nothing */
        return 0;
    }
    if (!img || img->width <= 0 || img->height <= 0 || img->width > lim.max_width || img->height > lim.max_height ||
        (int64_t)img->width * img->height > lim.max_pixels)
        __builtin_trap();
    const size_t n = (size_t)img->width * (size_t)img->height * 3;
    volatile unsigned sink = (unsigned)img->rgb[0] + img->rgb[n - 1];
    (void)sink;
    orion_image_free(img);
    return 0;
}
