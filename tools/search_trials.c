/* The trials of `ctrain search` (search.h): each one a `ctrain train`
 * process of this same binary, started with the trial's config file, its
 * metrics file and its checkpoint under DIR/trial-NNN/, and its output in
 * DIR/trial-NNN/log.txt; `parallel` of them at once.
 *
 * Subprocesses rather than threads: a trial that fails in any way (bad
 * options, a NaN loss, a crash, running out of memory) cannot take the
 * search down, its output stays apart, and the library's per-process state
 * (the CPU backend's thread pool, the error buffer) needs no sharing. Each
 * child gets OMP_NUM_THREADS and OPENBLAS_NUM_THREADS = cores / parallel so
 * that J trials share the cores instead of each taking all of them, and
 * dies with the search (PR_SET_PDEATHSIG) so that a killed search leaves
 * nothing running that --resume-search would race with.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "search.h"

int search_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void trial_path(const search_run *r, const trial *t, const char *file, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/trial-%03d%s%s", r->dir, t->id, file ? "/" : "", file ? file : "");
}

/* In the child: never returns. */
static void exec_trial(const search_run *r, const trial *t) {
    char cfg[4096], metrics[4096], ckpt[4096], log[4096], threads[16];
    trial_path(r, t, "config.json", cfg, sizeof cfg);
    trial_path(r, t, "metrics.jsonl", metrics, sizeof metrics);
    trial_path(r, t, "model.safetensors", ckpt, sizeof ckpt);
    trial_path(r, t, "log.txt", log, sizeof log);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (fd < 0 || in < 0) _exit(126);
    dup2(in, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    snprintf(threads, sizeof threads, "%d", r->threads);
    setenv("OMP_NUM_THREADS", threads, 1);
    setenv("OPENBLAS_NUM_THREADS", threads, 1);
    char *argv[] = {"ctrain", "train", "--config", cfg, "--metrics", metrics, "--save", ckpt, NULL};
    execv(r->exe, argv);
    fprintf(stderr, "ctrain: search: cannot run %s: %s\n", r->exe, strerror(errno));
    _exit(127);
}

/* The trial's directory, its config file, and no metrics left from a run
 * that a kill cut short (the trainer appends). */
static bool prepare(const search_run *r, trial *t) {
    char path[4096];
    trial_path(r, t, NULL, path, sizeof path);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "ctrain: search: cannot make %s: %s\n", path, strerror(errno));
        return false;
    }
    char *text = cJSON_Print(t->options);
    trial_path(r, t, "config.json", path, sizeof path);
    bool ok = text && search_write_file(path, text);
    free(text);
    trial_path(r, t, "metrics.jsonl", path, sizeof path);
    if (ok && unlink(path) != 0 && errno != ENOENT) {
        fprintf(stderr, "ctrain: search: cannot remove %s: %s\n", path, strerror(errno));
        ok = false;
    }
    return ok;
}

static double num(const cJSON *line, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(line, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The last line of the trial's metrics: its final validation and test
 * figures. False if there is none. */
static bool read_metrics(const search_run *r, trial *t) {
    char path[4096], line[8192], last[8192] = "";
    trial_path(r, t, "metrics.jsonl", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    while (fgets(line, sizeof line, f))
        if (line[0] == '{') memcpy(last, line, sizeof last);
    fclose(f);
    cJSON *j = cJSON_Parse(last);
    if (!j) return false;
    t->val_loss = num(j, "val_loss");
    t->val_acc = num(j, "val_acc");
    t->test_loss = num(j, "test_loss");
    t->test_acc = num(j, "test_acc");
    cJSON_Delete(j);
    return true;
}

/* Why a trial failed: the last "ctrain:" line of its log. */
static void read_error(const search_run *r, trial *t) {
    char path[4096], line[1024];
    trial_path(r, t, "log.txt", path, sizeof path);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "ctrain:", 7) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(t->error, sizeof t->error, "%.255s", line);
        }
    if (f) fclose(f);
}

static void finish(const search_run *r, trial *t, int wstatus, double elapsed) {
    t->time_s = elapsed;
    t->val_loss = t->val_acc = t->test_loss = t->test_acc = NAN;
    t->exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    bool metrics = read_metrics(r, t);
    t->status = t->exit_code == 0 && metrics ? TRIAL_OK : TRIAL_FAILED;
    if (t->status == TRIAL_FAILED) {
        read_error(r, t);
        if (!t->error[0] && WIFSIGNALED(wstatus))
            snprintf(t->error, sizeof t->error, "killed by signal %d", WTERMSIG(wstatus));
        else if (!t->error[0])
            snprintf(t->error, sizeof t->error, "exit %d without a metrics line", t->exit_code);
    }
}

static bool append_line(const search_run *r, const trial *t) {
    char path[4096];
    snprintf(path, sizeof path, "%s/trials.jsonl", r->dir);
    char *text = trial_to_json(t);
    int fd = text ? open(path, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
    size_t len = text ? strlen(text) : 0;
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0) ok = false;
    if (!ok) fprintf(stderr, "ctrain: search: cannot write %s: %s\n", path, strerror(errno));
    free(text);
    return ok;
}

static void say(const search_run *r, const trial *t, int done, int total) {
    if (r->quiet) return;
    if (t->status == TRIAL_OK)
        printf("[%d/%d] trial-%03d  val_loss %.4f  val_acc %.2f%%  %.1f s\n", done, total, t->id, t->val_loss,
               100 * t->val_acc, t->time_s);
    else
        printf("[%d/%d] trial-%03d  FAILED: %s\n", done, total, t->id, t->error);
    fflush(stdout);
}

typedef struct slot {
    pid_t pid;
    int index;
    double start;
} slot;

static int start(const search_run *r, trial *t, int index, slot *s) {
    if (!prepare(r, t)) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "ctrain: search: cannot start a trial: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) exec_trial(r, t);
    *s = (slot){pid, index, now_s()};
    t->threads = r->threads;
    return 0;
}

bool trials_run(const search_run *r, trial *list, int n) {
    slot *slots = calloc((size_t)(r->parallel > 0 ? r->parallel : 1), sizeof *slots);
    if (!slots) return false;
    int next = 0, running = 0, done = 0, todo = 0;
    for (int i = 0; i < n; i++) todo += list[i].status == TRIAL_PENDING;
    bool ok = true;
    while (ok && (running > 0 || next < n)) {
        for (int k = 0; k < r->parallel && ok; k++) {
            while (next < n && list[next].status != TRIAL_PENDING) next++;
            if (slots[k].pid || next >= n) continue;
            if (start(r, &list[next], next, &slots[k]) != 0) ok = false;
            else running++, next++;
        }
        if (!running) break;
        int wst;
        pid_t pid = waitpid(-1, &wst, 0);
        if (pid < 0 && errno == EINTR) continue;
        for (int k = 0; k < r->parallel && pid > 0; k++)
            if (slots[k].pid == pid) {
                trial *t = &list[slots[k].index];
                finish(r, t, wst, now_s() - slots[k].start);
                slots[k].pid = 0;
                running--;
                say(r, t, ++done, todo);
                if (!append_line(r, t)) ok = false;
            }
    }
    /* Stopping early (trials.jsonl unwritable): the trials still running
     * would be lost work that nothing records; stop them. */
    for (int k = 0; k < r->parallel; k++)
        if (slots[k].pid) {
            kill(slots[k].pid, SIGTERM);
            waitpid(slots[k].pid, NULL, 0);
        }
    free(slots);
    return ok;
}
