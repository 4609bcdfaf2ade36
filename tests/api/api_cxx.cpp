// The public API from C++: ctrain.h must compile as C++ (extern "C" guards,
// no C-only syntax in the declarations) and link against libctrain.so with
// C linkage. Built with -Wall -Wextra -Werror -Wpedantic as C++11; the
// program trains y = 2x - 1 with a one-weight linear model and checks the
// result, so the calls are really made, not just declared.
#include <ctrain/ctrain.h>

#include <cmath>
#include <cstdio>
#include <cstring>

static int fail(const char *what) {
    std::fprintf(stderr, "api_cxx: %s: %s\n", what, ct_last_error());
    return 1;
}

int main() {
    if (std::strcmp(ct_version(), CTRAIN_VERSION_STRING) != 0) {
        std::fprintf(stderr, "api_cxx: library %s, header %s\n", ct_version(), CTRAIN_VERSION_STRING);
        return 1;
    }
    ct_graph *g = ct_graph_new();
    ct_shape xs = {2, {8, 1}};
    ct_shape ws = {2, {1, 1}};
    ct_shape bs = {1, {1}};
    ct_node x = ct_input(g, "x", CT_F32, xs);
    ct_node y = ct_input(g, "y", CT_F32, xs);
    ct_node w = ct_param(g, "fc.weight", CT_F32, ws, ct_init_uniform(-0.5, 0.5));
    ct_node b = ct_param(g, "fc.bias", CT_F32, bs, ct_init_zeros());
    ct_node loss = ct_mse(g, ct_add(g, ct_matmul(g, x, w, false, true), b), y);
    if (ct_graph_status(g) != CT_OK) return fail("graph");
    if (ct_graph_backward(g, loss) != CT_OK) return fail("backward");

    ct_compile_opts co;
    std::memset(&co, 0, sizeof co);  // designated initializers are C++20
    co.outputs = &loss;
    co.n_outputs = 1;
    co.grads = true;
    ct_program *p = ct_compile(g, &co);
    if (!p) return fail("compile");
    ct_optim_opts oo;
    std::memset(&oo, 0, sizeof oo);
    oo.kind = CT_OPTIM_SGD;
    oo.lr = 0.1;
    ct_optimizer *opt = ct_optimizer_new(g, p, &oo);
    if (!opt) return fail("optimizer");

    float xv[8], yv[8];
    for (int i = 0; i < 8; i++) {
        xv[i] = ct_philox_uniform(5, 0, 0, static_cast<uint64_t>(i)) * 2.0f - 1.0f;
        yv[i] = 2.0f * xv[i] - 1.0f;
    }
    if (ct_program_set_input(p, "x", xv, sizeof xv) != CT_OK ||
        ct_program_set_input(p, "y", yv, sizeof yv) != CT_OK)
        return fail("inputs");
    for (int step = 0; step < 300; step++)
        if (ct_program_run(p) != CT_OK || ct_optimizer_step(opt, 0.1) != CT_OK) return fail("training");
    float wv, bv;
    if (ct_program_get_param(p, "fc.weight", &wv, sizeof wv) != CT_OK ||
        ct_program_get_param(p, "fc.bias", &bv, sizeof bv) != CT_OK)
        return fail("reading");
    std::printf("ctrain %s from C++: w = %.4f, b = %.4f (want 2, -1)\n", ct_version(), wv, bv);

    // An error comes back as a value with a message, from C++ as from C.
    ct_status st = ct_program_set_input(p, "no_such_input", xv, sizeof xv);
    bool error_ok = st == CT_ERR_NOT_FOUND && std::strstr(ct_last_error(), "no_such_input") != nullptr;

    ct_optimizer_free(opt);
    ct_program_free(p);
    ct_graph_free(g);
    if (std::fabs(wv - 2.0f) > 1e-2f || std::fabs(bv + 1.0f) > 1e-2f) {
        std::fprintf(stderr, "api_cxx: did not learn y = 2x - 1\n");
        return 1;
    }
    if (!error_ok) {
        std::fprintf(stderr, "api_cxx: an unknown input gave status %d, '%s'\n", st, ct_last_error());
        return 1;
    }
    return 0;
}
