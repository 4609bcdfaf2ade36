/* A program outside the ctrain tree, built against an installed ctrain
 * (tests/consumer/run.sh): it must find the headers and the library, agree
 * with the library on the version, and train something. Exits 0 when all
 * of that holds. */
#include <stdio.h>
#include <string.h>

#include <ctrain/ctrain.h>

static int fail(const char *what) {
    fprintf(stderr, "consumer: %s: %s\n", what, ct_last_error());
    return 1;
}

int main(void) {
    /* Compiled against one version, running with the same one. */
    if (strcmp(ct_version(), CTRAIN_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: headers %s, library %s\n", CTRAIN_VERSION_STRING, ct_version());
        return 1;
    }
    char from_number[32];
    snprintf(from_number, sizeof from_number, "%d.%d.%d", CTRAIN_VERSION_NUMBER / 10000,
             CTRAIN_VERSION_NUMBER / 100 % 100, CTRAIN_VERSION_NUMBER % 100);
    if (strcmp(from_number, CTRAIN_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: CTRAIN_VERSION_NUMBER says %s\n", from_number);
        return 1;
    }

    /* Logistic regression learning AND of two inputs, with the trainer's
     * building blocks: a layer, a loss, an optimizer. */
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {4, 2}});
    ct_node y = ct_input(g, "y", CT_F32, (ct_shape){2, {4, 1}});
    ct_node loss = ct_bce_with_logits(g, ct_linear(g, "fc", x, 1, true, NULL), y);
    if (ct_graph_status(g) != CT_OK || ct_graph_backward(g, loss) != CT_OK) return fail("graph");
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    if (!p) return fail("compile");
    ct_optimizer *opt = ct_optimizer_new(g, p, &(ct_optim_opts){.kind = CT_OPTIM_ADAM, .lr = 0.1});
    if (!opt) return fail("optimizer");
    float xs[] = {0, 0, 0, 1, 1, 0, 1, 1}, ys[] = {0, 0, 0, 1};
    if (ct_program_set_input(p, "x", xs, sizeof xs) != CT_OK || ct_program_set_input(p, "y", ys, sizeof ys) != CT_OK)
        return fail("inputs");
    float first = 0, last = 0;
    for (int step = 0; step < 300; step++) {
        if (ct_program_run(p) != CT_OK || ct_optimizer_step(opt, 0.1) != CT_OK) return fail("step");
        ct_program_read(p, loss, step == 0 ? &first : &last, sizeof last);
    }

    /* Errors are values with a message. */
    int error_ok = ct_program_set_input(p, "nope", xs, sizeof xs) == CT_ERR_NOT_FOUND && ct_last_error()[0];

    ct_optimizer_free(opt);
    ct_program_free(p);
    ct_graph_free(g);
    printf("ctrain %s (%s): loss %.4f -> %.4f\n", ct_version(), ct_build_info(), first, last);
    if (!(last < 0.1f && last < first) || !error_ok) {
        fprintf(stderr, "consumer: %s\n", error_ok ? "AND was not learned" : "no error for an unknown input");
        return 1;
    }
    return 0;
}
