/* tapegrad: TensorFlow's eager GradientTape and the Keras training layer, in C.
 * One header for everything; each layer has its own under tapegrad/. */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include "tapegrad/base.h"
#include "tapegrad/tensor.h"
#include "tapegrad/ops.h"
#include "tapegrad/autodiff.h"
#include "tapegrad/losses.h"
#include "tapegrad/metrics.h"
#include "tapegrad/train.h"
#include "tapegrad/distributed.h"
#include "tapegrad/nn.h"
#include "tapegrad/layer.h"
#include "tapegrad/optim.h"
#include "tapegrad/io.h"

#define TAPEGRAD_VERSION "0.1.0"

#endif
