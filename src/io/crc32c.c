/* CRC-32C for TFRecord framing (crc32c.h): a byte-at-a-time table, built
 * once. Event files are a few records per validation pass, so a faster
 * slicing or SSE4.2 form would buy nothing measurable. */
#include "io/crc32c.h"

#include <pthread.h>

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */
#define CRC32C_MASK_DELTA 0xA282EAD8u

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        table[i] = c;
    }
}

uint32_t ct_crc32c_extend(uint32_t crc, const void *data, size_t n) {
    pthread_once(&table_once, build_table);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return ~c;
}

uint32_t ct_crc32c(const void *data, size_t n) { return ct_crc32c_extend(0, data, n); }

uint32_t ct_crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + CRC32C_MASK_DELTA; }
