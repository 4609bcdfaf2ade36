/* The CUDA backend's coverage and its behaviour without a GPU; these run on
 * any machine.
 *
 * - In a build with CUDA, every op of src/core/op_list.h has a CUDA kernel
 *   (or is a source, bound by the program), and every op has a parity case
 *   in tests/test_cuda_parity_*.c (checked by name in the code of those
 *   files, comments left out, so an op added without a parity test fails
 *   here), unless it is listed as a known gap in not_yet[].
 * - Where no GPU can be used (no CUDA in the build, no driver, no device),
 *   asking for one is a clear error, never a crash: ct_device_check and
 *   ct_compile both say why. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "core/node.h"

/* Ops merged before their CUDA kernel and parity case exist, by name
 * ("conv2d"): each entry is a known gap, to be listed in docs/cuda.md and
 * removed when the kernel lands. Empty: every op is covered. */
static const char *const not_yet[] = {NULL};

static bool known_gap(int op) {
    for (int i = 0; not_yet[i]; i++)
        if (strcmp(not_yet[i], ct_op_name(op)) == 0) return true;
    return false;
}

/* Both checks are about the CUDA backend, so they run in every CUDA build
 * (GPU or not) and are skipped in a CPU-only one. */
static void need_cuda_build(void) {
    char why[512];
    ct_cuda_device_count(why, sizeof why);
    if (strstr(why, "no CUDA support")) cr_skip_test("%s", why);
}

Test(cuda_coverage, every_op_has_a_cuda_kernel) {
    need_cuda_build();
    for (int op = 0; op < ct_op_count(); op++)
        cr_expect(known_gap(op) || ct_device_implements(CT_DEVICE_CUDA, op), "the CUDA backend has no kernel for %s",
                  ct_op_name(op));
}

/* text without its comments (in place): an op named only in a comment
 * ("CT_OP_FOO has no case yet") is not a parity case. */
static void strip_comments(char *text) {
    char *w = text;
    for (const char *r = text; *r;) {
        if (r[0] == '/' && r[1] == '*') {
            const char *e = strstr(r + 2, "*/");
            r = e ? e + 2 : r + strlen(r);
            *w++ = ' ';
        } else if (r[0] == '/' && r[1] == '/') {
            while (*r && *r != '\n') r++;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* word occurs in text as a whole word: CT_OP_SUM is not inside CT_OP_SUM_TO. */
static bool names(const char *text, const char *word) {
    size_t n = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        char prev = p > text ? p[-1] : ' ', next = p[n];
        bool in_word = next == '_' || (next >= 'A' && next <= 'Z') || (next >= '0' && next <= '9') || prev == '_' ||
                       (prev >= 'A' && prev <= 'Z') || (prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9');
        if (!in_word) return true;
    }
    return false;
}

Test(cuda_coverage, the_scan_ignores_comments_and_longer_names) {
    char text[] = "/* CT_OP_RELU has no case */ int a = CT_OP_SUM_TO; // CT_OP_EXP\n"
                  "c.op = CT_OP_ADD; /* unterminated CT_OP_NEG";
    strip_comments(text);
    cr_expect(names(text, "CT_OP_ADD"));
    cr_expect(names(text, "CT_OP_SUM_TO"));
    cr_expect_not(names(text, "CT_OP_SUM"));
    cr_expect_not(names(text, "CT_OP_RELU"));
    cr_expect_not(names(text, "CT_OP_EXP"));
    cr_expect_not(names(text, "CT_OP_NEG"));
}

/* The parity files (every tests/test_cuda_parity_*.c but the harness's own
 * test) name every op they check as CT_OP_<NAME> in code; sources have no
 * kernel and are exercised by every program. */
Test(cuda_coverage, every_op_has_a_parity_test) {
    need_cuda_build();
    static const char *enums[] = {
#define X(e, name, diff, internal) "CT_OP_" #e,
#include "core/op_list.h"
#undef X
    };
    size_t cap = 4 << 20, len = 0;
    char *text = malloc(cap);
    cr_assert(text);
    DIR *dir = opendir(CTRAIN_TEST_SOURCE_DIR);
    cr_assert(dir, "cannot list %s", CTRAIN_TEST_SOURCE_DIR);
    int files = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t nl = strlen(e->d_name);
        if (strncmp(e->d_name, "test_cuda_parity_", 17) != 0 || nl < 3 || strcmp(e->d_name + nl - 2, ".c") != 0 ||
            strcmp(e->d_name, "test_cuda_parity_harness.c") == 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", CTRAIN_TEST_SOURCE_DIR, e->d_name);
        FILE *fp = fopen(path, "rb");
        cr_assert(fp, "cannot open %s", path);
        len += fread(text + len, 1, cap - 1 - len, fp);
        cr_assert(feof(fp), "%s does not fit the buffer", path);
        fclose(fp);
        text[len++] = '\n';
        files++;
    }
    closedir(dir);
    text[len] = '\0';
    cr_assert(files >= 6, "found %d parity files in %s", files, CTRAIN_TEST_SOURCE_DIR);
    strip_comments(text);
    for (int op = 0; op < CT_OP_COUNT; op++) {
        if (op == CT_OP_INPUT || op == CT_OP_PARAM || op == CT_OP_CONST || op == CT_OP_BUFFER || known_gap(op))
            continue;
        cr_expect(names(text, enums[op]), "no parity test names %s (outside comments)", enums[op]);
    }
    free(text);
}

Test(cuda_coverage, no_gpu_is_a_clear_error) {
    char why[512];
    if (ct_cuda_device_count(why, sizeof why) > 0) cr_skip_test("this machine has a GPU; the no-GPU path is not taken");
    cr_assert(why[0], "no reason given for having no GPU");
    ct_device d;
    cr_assert_eq(ct_device_parse("cuda:0", &d), CT_OK);
    ct_status st = ct_device_check(d);
    cr_assert(st == CT_ERR_UNSUPPORTED || st == CT_ERR_DEVICE, "status %d", st);
    cr_assert(strstr(ct_last_error(), "CUDA") || strstr(ct_last_error(), "cuda"), "message: %s", ct_last_error());

    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){1, {4}});
    ct_node y = ct_relu(g, x);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.device = d, .outputs = &y, .n_outputs = 1});
    cr_assert_null(p);
    cr_assert(ct_last_status() == CT_ERR_UNSUPPORTED || ct_last_status() == CT_ERR_DEVICE);
    cr_assert(strlen(ct_last_error()) > 10, "message: %s", ct_last_error());
    ct_graph_free(g);
}

/* "auto" (the CLI's default device) is the first GPU exactly when one can be
 * used, and the CPU otherwise, without leaving an error behind. */
Test(cuda_coverage, auto_device_is_the_gpu_when_usable) {
    ct_device d, gpu = {CT_DEVICE_CUDA, 0};
    bool usable = ct_device_check(gpu) == CT_OK;
    cr_assert_eq(ct_device_parse("auto", &d), CT_OK, "%s", ct_last_error());
    cr_expect_eq(d.kind, usable ? CT_DEVICE_CUDA : CT_DEVICE_CPU);
    cr_expect_eq(d.index, 0);
    cr_expect_eq(ct_last_status(), CT_OK, "left an error: %s", ct_last_error());
    cr_expect_neq(ct_device_parse("automatic", &d), CT_OK);
    cr_expect(strstr(ct_last_error(), "auto") != NULL, "message: %s", ct_last_error());
}
