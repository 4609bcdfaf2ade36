/* Shared by the libFuzzer harnesses of tests/fuzz (docs/reliability.md).
 *
 * The library reads files by path, so each input is written to a file of
 * this process (one per slot: a harness that needs two files uses two) and
 * handed over by name. FUZZ_PROMISE aborts when a documented promise of the
 * API breaks: libFuzzer then keeps the input as a crash, exactly as for a
 * fault found by the sanitizers.
 */
#ifndef CTRAIN_FUZZ_UTIL_H
#define CTRAIN_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Aborts, naming the promise, when cond is false. */
#define FUZZ_PROMISE(cond, what)                                                         \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz: promise broken at %s:%d: %s\n", __FILE__, __LINE__,   \
                    what);                                                               \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* A path private to this process and slot, under $TMPDIR (else /tmp);
 * static storage, one per slot. */
static inline const char *fuzz_path(int slot, const char *suffix) {
    static char paths[4][512];
    const char *dir = getenv("TMPDIR");
    snprintf(paths[slot], sizeof paths[slot], "%s/ctrain-fuzz-%ld-%d%s", dir && *dir ? dir : "/tmp",
             (long)getpid(), slot, suffix ? suffix : "");
    return paths[slot];
}

/* Writes n bytes to the slot's file and returns its path; aborts if the
 * file cannot be written (the machine, not the input, is at fault then). */
static inline const char *fuzz_write(int slot, const char *suffix, const uint8_t *data, size_t n) {
    const char *path = fuzz_path(slot, suffix);
    FILE *f = fopen(path, "wb");
    FUZZ_PROMISE(f != NULL, "the temporary file can be created");
    FUZZ_PROMISE(n == 0 || fwrite(data, 1, n, f) == n, "the temporary file can be written");
    FUZZ_PROMISE(fclose(f) == 0, "the temporary file can be closed");
    return path;
}

/* Reads a little-endian uint16 from the input's front, consuming it (0 when
 * fewer than 2 bytes are left). */
static inline unsigned fuzz_take_u16(const uint8_t **data, size_t *n) {
    if (*n < 2) return 0;
    unsigned v = (unsigned)(*data)[0] | (unsigned)(*data)[1] << 8;
    *data += 2;
    *n -= 2;
    return v;
}

static inline unsigned fuzz_take_u8(const uint8_t **data, size_t *n) {
    if (*n < 1) return 0;
    unsigned v = (*data)[0];
    *data += 1;
    *n -= 1;
    return v;
}

#endif
