// Trainer op: the training loss, cross-entropy with label smoothing over the classifier's logits
// (PyTorch's CrossEntropyLoss(label_smoothing = ε), mean over the batch; Spikformer trains with
// ε = 0.1).
//
//   target_j = (1 − ε)·[j = label] + ε/K,   loss = −(1/B)·Σ_b Σ_j target_j·log softmax(logits_b)_j
//   dloss/dlogits_bj = (softmax(logits_b)_j − target_j)/B
// Layout: logits [batch, classes] (sample-major); labels [batch] in [0, classes). Sums in double.
// Errors: ConfigError naming the sample when a label is outside [0, classes).
// No engine counterpart (training only).
#pragma once

#include <cstddef>

namespace evformer::models::ops {

/// Mean loss over the batch; `correct` (when not null) receives how many samples have their
/// label as the arg-max logit (the first maximum).
double cross_entropy_forward(const float* logits, const int* labels, std::size_t batch,
                             std::size_t classes, double smoothing, std::size_t* correct);

/// dlogits `[batch, classes]` (overwritten): the gradient of cross_entropy_forward's loss.
void cross_entropy_backward(const float* logits, const int* labels, std::size_t batch,
                            std::size_t classes, double smoothing, float* dlogits);

}  // namespace evformer::models::ops
