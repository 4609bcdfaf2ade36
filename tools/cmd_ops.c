/* `ctrain ops`: the op set as this build of the library knows it.
 *
 * Everything comes from the library at run time (not from a list in the
 * tool), so the table can never drift from the op set, and it shows which
 * ops a half-finished backend still lacks.
 */
#include <string.h>

#include <ctrain/ctrain.h>

#include "cli.h"

void cmd_ops_usage(FILE *out) {
    fprintf(out,
            "usage: ctrain ops [--json]\n"
            "\n"
            "Lists every op of the op set: whether autodiff goes through it (backward:\n"
            "yes, no, or \"internal\" for ops that only autodiff creates), whether\n"
            "the CPU and CUDA backends compiled into this library implement it, its\n"
            "class (source, unary, binary, linalg, reduce, shape, nn, internal) and\n"
            "its number of inputs (\"var\", null in JSON, where optional inputs or a\n"
            "list decide).\n"
            "\n"
            "options:\n"
            "  --json   one JSON array of objects instead of the table\n");
}

static const char *op_name(int op) {
    const char *name = ct_op_name(op);
    return name ? name : "?";
}

static const char *backward_word(int op) {
    if (ct_op_internal(op)) return "internal";
    return ct_op_differentiable(op) ? "yes" : "no";
}

static const char *yes_no(bool b) { return b ? "yes" : "no"; }

static const char *class_word(int op) {
    const char *c = ct_op_class_name(op);
    return c ? c : "?";
}

/* "2", or "var" for ops whose inputs depend on the call. */
static const char *inputs_word(int op, char *buf, size_t cap) {
    int n = ct_op_arity(op);
    if (n < 0) return "var";
    snprintf(buf, cap, "%d", n);
    return buf;
}

/* Op names are identifiers today; escaping anyway keeps the output valid
 * JSON whatever the library returns. */
static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json(int n) {
    printf("[");
    for (int op = 0; op < n; op++) {
        printf("%s\n  {\"name\": ", op ? "," : "");
        print_json_string(op_name(op));
        char in[16];
        printf(", \"backward\": \"%s\", \"cpu\": %s, \"cuda\": %s, \"class\": \"%s\", \"inputs\": %s}",
               backward_word(op), ct_device_implements(CT_DEVICE_CPU, op) ? "true" : "false",
               ct_device_implements(CT_DEVICE_CUDA, op) ? "true" : "false", class_word(op),
               ct_op_arity(op) < 0 ? "null" : inputs_word(op, in, sizeof in));
    }
    printf("\n]\n");
}

static void print_table(int n) {
    int width = (int)strlen("op");
    for (int op = 0; op < n; op++) {
        int len = (int)strlen(op_name(op));
        if (len > width) width = len;
    }
    printf("%-*s  %-8s  %-3s  %-4s  %-8s  %s\n", width, "op", "backward", "cpu", "cuda", "class", "inputs");
    int n_diff = 0, n_internal = 0, n_cpu = 0, n_cuda = 0;
    for (int op = 0; op < n; op++) {
        bool cpu = ct_device_implements(CT_DEVICE_CPU, op);
        bool cuda = ct_device_implements(CT_DEVICE_CUDA, op);
        char in[16];
        printf("%-*s  %-8s  %-3s  %-4s  %-8s  %s\n", width, op_name(op), backward_word(op), yes_no(cpu),
               yes_no(cuda), class_word(op), inputs_word(op, in, sizeof in));
        n_internal += ct_op_internal(op);
        n_diff += !ct_op_internal(op) && ct_op_differentiable(op);
        n_cpu += cpu;
        n_cuda += cuda;
    }
    printf("\n%d ops: %d with backward, %d internal; cpu implements %d, cuda %d\n", n, n_diff,
           n_internal, n_cpu, n_cuda);
}

int cmd_ops(int argc, char **argv) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cmd_ops_usage(stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (argv[i][0] == '-')
            return cli_usage_error("ops", "unknown option '%s'", argv[i]);
        else
            return cli_usage_error("ops", "unexpected argument '%s'", argv[i]);
    }
    int n = ct_op_count();
    if (n < 0) n = 0;
    if (json)
        print_json(n);
    else
        print_table(n);
    return CLI_EXIT_OK;
}
