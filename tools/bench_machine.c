/* What a benchmark ran on: the machine, the software versions and the
 * environment variables that change the figures, for the record (a number
 * without them cannot be compared with anything).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* Environment variables that change the speed of the CPU backend or pick a
 * GPU; recorded as set (or null). */
static const char *const bench_env_vars[] = {
    "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "GOMP_SPINCOUNT", "CUDA_VISIBLE_DEVICES",
};

void bench_cpu_model(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) continue;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        snprintf(buf, cap, "%s", v);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
}

void bench_utc_now(char *buf, size_t cap) {
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        snprintf(buf, cap, "unknown");
}

size_t bench_max_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}

/* A CUDA version as "12.4" (0: none). */
static void cuda_version_str(int v, char *buf, size_t cap) {
    if (v > 0)
        snprintf(buf, cap, "%d.%d", v / 1000, (v % 1000) / 10);
    else
        snprintf(buf, cap, "none");
}

static void add_gpu(cJSON *m, const bench_opts *o) {
    if (o->device.kind != CT_DEVICE_CUDA) return;
    char name[256] = "";
    size_t mem = 0;
    int major = 0, minor = 0;
    if (ct_cuda_device_info(o->device.index, name, sizeof name, &mem, &major, &minor) != CT_OK) return;
    cJSON *gpu = cJSON_AddObjectToObject(m, "gpu");
    cJSON_AddStringToObject(gpu, "name", name);
    cJSON_AddNumberToObject(gpu, "memory_bytes", (double)mem);
    char cc[16];
    snprintf(cc, sizeof cc, "%d.%d", major, minor);
    cJSON_AddStringToObject(gpu, "compute_capability", cc);
}

cJSON *bench_machine_json(const bench_opts *o) {
    cJSON *m = cJSON_CreateObject();
    char buf[256];
    if (gethostname(buf, sizeof buf) != 0) snprintf(buf, sizeof buf, "unknown");
    buf[sizeof buf - 1] = '\0';
    cJSON_AddStringToObject(m, "hostname", buf);
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(buf, sizeof buf, "%s %s %s", u.sysname, u.release, u.machine);
        cJSON_AddStringToObject(m, "os", buf);
    }
    bench_cpu_model(buf, sizeof buf);
    cJSON_AddStringToObject(m, "cpu_model", buf);
    cJSON_AddNumberToObject(m, "cpu_cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) cJSON_AddNumberToObject(m, "memory_bytes", (double)pages * (double)page);
    /* Other work on the machine skews every figure; the record says how
     * busy it was (1, 5 and 15-minute load averages) when written. */
    FILE *f = fopen("/proc/loadavg", "r");
    double load[3];
    if (f && fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) == 3)
        cJSON_AddItemToObject(m, "load_average", cJSON_CreateDoubleArray(load, 3));
    if (f) fclose(f);
    add_gpu(m, o);
    return m;
}

cJSON *bench_versions_json(void) {
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "ctrain", ct_version());
    cJSON_AddStringToObject(v, "build", ct_build_info());
    cJSON_AddStringToObject(v, "commit", ct_build_commit());
    cJSON_AddStringToObject(v, "blas", ct_blas_info());
    int driver = 0, runtime = 0;
    if (ct_cuda_versions(&driver, &runtime) == CT_OK) {
        char buf[32];
        cuda_version_str(driver, buf, sizeof buf);
        cJSON_AddStringToObject(v, "cuda_driver", buf);
        cuda_version_str(runtime, buf, sizeof buf);
        cJSON_AddStringToObject(v, "cuda_runtime", buf);
    } else {
        ct_clear_error();
    }
    return v;
}

cJSON *bench_env_json(void) {
    cJSON *e = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof bench_env_vars / sizeof bench_env_vars[0]; i++) {
        const char *v = getenv(bench_env_vars[i]);
        if (v)
            cJSON_AddStringToObject(e, bench_env_vars[i], v);
        else
            cJSON_AddNullToObject(e, bench_env_vars[i]);
    }
    return e;
}
