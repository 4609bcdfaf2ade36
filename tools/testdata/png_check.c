/* Checks an image `ctrain plot` wrote: it decodes as a PNG (cairo's own
 * reader, which uses libpng), has the size asked for, and is a drawing, not
 * a blank: enough non-white pixels and several colours (the curves', the
 * text's and the grid's).
 *
 *     png_check FILE WIDTH HEIGHT
 *
 * Prints "png WxH: N% not white, K colours" and exits 0, or says what is
 * wrong and exits 1. */
#include <cairo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_COLOURS 4096

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: png_check FILE WIDTH HEIGHT\n");
        return 2;
    }
    cairo_surface_t *s = cairo_image_surface_create_from_png(argv[1]);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        printf("%s: not a readable PNG: %s\n", argv[1], cairo_status_to_string(cairo_surface_status(s)));
        return 1;
    }
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *data = cairo_image_surface_get_data(s);
    static uint32_t colours[MAX_COLOURS];
    int n_colours = 0;
    long inked = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t px = ((const uint32_t *)(data + (size_t)y * stride))[x] & 0xFFFFFF;
            inked += px != 0xFFFFFF;
            int k = 0;
            while (k < n_colours && colours[k] != px) k++;
            if (k == n_colours && n_colours < MAX_COLOURS) colours[n_colours++] = px;
        }
    double pct = 100.0 * (double)inked / ((double)w * h);
    printf("png %dx%d: %.1f%% not white, %d colours\n", w, h, pct, n_colours);
    int rc = 0;
    if (w != atoi(argv[2]) || h != atoi(argv[3])) printf("wrong size: wanted %sx%s\n", argv[2], argv[3]), rc = 1;
    if (pct < 2 || n_colours < 8) printf("blank: too little drawn\n"), rc = 1;
    cairo_surface_destroy(s);
    return rc;
}
