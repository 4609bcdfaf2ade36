/* The op set as data: each op's name, class and arity, from the one list
 * core/op_list.h, and the queries everything else asks of it (graph.h's
 * ct_op_*, node.h's ct_op_class_of and the arity check). Whether an op is
 * differentiable is the gradient table's to say (grad_rules.c). */
#include "core/autodiff.h"
#include "core/error.h"
#include "core/node.h"

typedef struct op_info {
    const char *name;
    ct_op_class cls;
    int arity;
} op_info;

/* The ARITY column's values as tokens the X-macro can paste. */
#define CT_ARITY_0 0
#define CT_ARITY_1 1
#define CT_ARITY_2 2
#define CT_ARITY_3 3
#define CT_ARITY_4 4

static const op_info ops[CT_OP_COUNT] = {
#define X(e, name, cls, arity) [CT_OP_##e] = {name, CT_OPC_##cls, CT_ARITY_##arity},
#include "core/op_list.h"
#undef X
};

static const char *const class_names[CT_OPC_COUNT] = {
    [CT_OPC_SOURCE] = "source", [CT_OPC_UNARY] = "unary", [CT_OPC_BINARY] = "binary",
    [CT_OPC_LINALG] = "linalg", [CT_OPC_REDUCE] = "reduce", [CT_OPC_SHAPE] = "shape",
    [CT_OPC_NN] = "nn",         [CT_OPC_INTERNAL] = "internal",
};

static bool valid(int op) { return op >= 0 && op < CT_OP_COUNT; }

int ct_op_count(void) { return CT_OP_COUNT; }
const char *ct_op_name(int op) { return valid(op) ? ops[op].name : NULL; }
bool ct_op_differentiable(int op) { return valid(op) && ct_grad_rule_of(op) != NULL; }
bool ct_op_internal(int op) { return valid(op) && ops[op].cls == CT_OPC_INTERNAL; }
const char *ct_op_class_name(int op) { return valid(op) ? class_names[ops[op].cls] : NULL; }
int ct_op_arity(int op) { return valid(op) ? ops[op].arity : CT_ARITY_VAR; }
ct_op_class ct_op_class_of(int op) { return valid(op) ? ops[op].cls : CT_OPC_COUNT; }

ct_status ct_op_check_inputs(const char *who, int op, int n_in) {
    if (!valid(op)) return ct_error(CT_ERR_INTERNAL, "%s: op %d is not an op", who, op);
    int want = ops[op].arity;
    if (want == CT_ARITY_VAR || want == n_in) return CT_OK;
    return ct_error(CT_ERR_INTERNAL, "%s %s: expected %d input%s, got %d", who, ops[op].name, want,
                    want == 1 ? "" : "s", n_in);
}
