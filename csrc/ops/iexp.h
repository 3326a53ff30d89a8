// The scale range of I-BERT's i-exp (kernels/iexp.h), shared by ibert_softmax and log_int_softmax.
#pragma once

#include <c10/util/Exception.h>

#include <cmath>

#include "csrc/checks.h"
#include "kernels/iexp.h"

namespace mnq {
namespace ops {

// c = floor(C / scale²) must be ≥ 1 (the polynomial's constant is not zero) and e0 = c·2^30 < 2^63 (the largest
// exponential fits int64): about 1.8029e-5 < scale ≤ 1.67096 (√(C/2^33) and √C, C = 1/0.35815147).
inline void check_iexp_scale(const char* op, double scale) {
  check_scale(op, "scale", scale);
  TORCH_CHECK_VALUE(kernels::ibert_exp_scale_ok(scale), op, ": scale must lie in about (1.8029e-05, 1.67096] (I-BERT's ",
                    "i-exp needs its constant floor(C / scale^2) in [1, 2^33) so that c·2^30 fits int64), got ", scale);
}

}  // namespace ops
}  // namespace mnq
