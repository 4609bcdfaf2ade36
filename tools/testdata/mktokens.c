/* Token files for the CLI's language-model tests (llm.c's format: 256
 * little-endian int32 of header, then uint16 tokens): good.bin (ids below
 * 40, a repeating pattern), bigid.bin (one id of 45 among ids below 40, for
 * --vocab-size 40), badcount.bin (a header count that does not match the
 * size), badmagic.bin. Usage: mktokens DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int write_file(const char *dir, const char *name, int magic, int count, int n, int big_at) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    unsigned char h[1024] = {0};
    int hv[3] = {magic, 1, count};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) h[4 * i + k] = (unsigned char)((unsigned)hv[i] >> (8 * k));
    fwrite(h, 1, sizeof h, f);
    for (int i = 0; i < n; i++) {
        int v = i == big_at ? 45 : (i * 7 + i / 5) % 40;
        unsigned char b[2] = {(unsigned char)(v & 0xFF), (unsigned char)(v >> 8)};
        fwrite(b, 1, 2, f);
    }
    return fclose(f) != 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    mkdir(argv[1], 0777);
    int bad = write_file(argv[1], "good.bin", 20240520, 3000, 3000, -1);
    bad |= write_file(argv[1], "bigid.bin", 20240520, 3000, 3000, 1234);
    bad |= write_file(argv[1], "badcount.bin", 20240520, 5000, 3000, -1);
    bad |= write_file(argv[1], "badmagic.bin", 12345, 3000, 3000, -1);
    return bad;
}
