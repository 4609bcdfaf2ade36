/* ctrain: a neural-network training engine in C11 with a CUDA backend.
 * Include this one header to get the whole public API. */
#ifndef CTRAIN_CTRAIN_H
#define CTRAIN_CTRAIN_H

#include "ctrain/version.h"
#include "ctrain/status.h"
#include "ctrain/dtype.h"
#include "ctrain/rng.h"
#include "ctrain/init.h"
#include "ctrain/graph.h"
#include "ctrain/ops.h"
#include "ctrain/conv.h"
#include "ctrain/nn.h"
#include "ctrain/device.h"
#include "ctrain/program.h"
#include "ctrain/cuda.h"
#include "ctrain/safetensors.h"
#include "ctrain/optim.h"
#include "ctrain/schedule.h"
#include "ctrain/augment.h"
#include "ctrain/data.h"
#include "ctrain/text.h"
#include "ctrain/train.h"
#include "ctrain/tfevents.h"
#include "ctrain/predict.h"
#include "ctrain/amp.h"
#include "ctrain/dist.h"
#include "ctrain/step_graph.h"
#include "ctrain/gpt.h"
#include "ctrain/prune.h"
#include "ctrain/distill.h"
#include "ctrain/rnn.h"
#include "ctrain/quant.h"

#endif
