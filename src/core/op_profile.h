/* Internal side of the op profiler (public side: ct_op_profile_* in
 * ctrain/program.h): what ct_program_run calls around each kernel. */
#ifndef CT_CORE_OP_PROFILE_H
#define CT_CORE_OP_PROFILE_H

#include <stdbool.h>

#include "core/node.h"
#include "ctrain/program.h"

bool ct_op_profile_enabled(void);
double ct_op_profile_now(void);
/* a: the kernel's attributes, whose fused_relu / fused_cast name its row */
void ct_op_profile_add(int op, const ct_attrs *a, double seconds);

#endif
