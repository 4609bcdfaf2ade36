/* `ctrain info`: what this build is and what it can run on.
 *
 * This is the first thing to ask for in a bug report, so it must print
 * something useful on any machine: it always exits 0, and where there is no
 * GPU it says why (no CUDA in the build, no driver, no device) instead of
 * failing.
 */
#include <string.h>
#include <unistd.h>

#include <ctrain/ctrain.h>

/* Not (yet) part of ctrain.h; every build has these functions, answering
 * "no devices, because ..." where CUDA is absent. */
#include <ctrain/cuda.h>

#include "cli.h"

void cmd_info_usage(FILE *out) {
    fprintf(out,
            "usage: ctrain info\n"
            "\n"
            "Prints the library version, the options it was built with, and the\n"
            "devices it can use here: the CPU, with its vector units and the BLAS\n"
            "build behind its matrix products, and each CUDA GPU with its memory and\n"
            "compute capability, or the reason there is none. Exits 0 whatever it finds.\n");
}

static void print_cpu(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online > 0)
        printf("  %-7s %ld core%s\n", "cpu", online, online == 1 ? "" : "s");
    else
        printf("  %-7s core count unknown\n", "cpu");
    /* What the CPU backend runs on: the vector units and the BLAS build,
     * the first things that explain a CPU speed figure. */
    printf("  %-7s %s\n", "simd", ct_cpu_features());
    printf("  %-7s %s\n", "blas", ct_blas_info());
}

/* A CUDA version, given as 1000 * major + 10 * minor, as "12.4". */
static const char *cuda_version_str(int v, char *buf, size_t cap) {
    if (v > 0)
        snprintf(buf, cap, "%d.%d", v / 1000, (v % 1000) / 10);
    else
        snprintf(buf, cap, "none");
    return buf;
}

static void print_gpus(void) {
    char why[256] = "";
    int n = ct_cuda_device_count(why, sizeof why);
    if (n <= 0) {
        printf("  %-7s none: %s\n", "cuda", why[0] ? why : "no CUDA device found");
        return;
    }
    int driver = 0, runtime = 0;
    if (ct_cuda_versions(&driver, &runtime) == CT_OK && (driver > 0 || runtime > 0)) {
        char dv[32], rv[32];
        printf("  %-7s driver %s, runtime %s\n", "cuda", cuda_version_str(driver, dv, sizeof dv),
               cuda_version_str(runtime, rv, sizeof rv));
    }
    for (int i = 0; i < n; i++) {
        char label[32];
        snprintf(label, sizeof label, "cuda:%d", i);
        char name[256] = "";
        size_t mem = 0;
        int major = 0, minor = 0;
        if (ct_cuda_device_info(i, name, sizeof name, &mem, &major, &minor) != CT_OK) {
            const char *err = ct_last_error();
            printf("  %-7s unavailable: %s\n", label, err && err[0] ? err : "query failed");
            continue;
        }
        printf("  %-7s %s, %.1f GiB, compute capability %d.%d\n", label,
               name[0] ? name : "(unnamed GPU)", (double)mem / (1024.0 * 1024.0 * 1024.0), major,
               minor);
    }
}

int cmd_info(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cmd_info_usage(stdout);
            return CLI_EXIT_OK;
        }
        /* A usage error is still reported as one; "always exit 0" is about
         * the machine, not about a mistyped command line. */
        if (argv[i][0] == '-')
            return cli_usage_error("info", "unknown option '%s'", argv[i]);
        return cli_usage_error("info", "unexpected argument '%s'", argv[i]);
    }
    const char *version = ct_version();
    const char *build = ct_build_info();
    printf("ctrain %s\n", version ? version : "?");
    if (version && strcmp(version, CTRAIN_VERSION_STRING) != 0)
        printf("  (this program was built against headers %s)\n", CTRAIN_VERSION_STRING);
    printf("build:   %s\n", build && build[0] ? build : "(unknown)");
    printf("devices:\n");
    print_cpu();
    print_gpus();
    return CLI_EXIT_OK;
}
