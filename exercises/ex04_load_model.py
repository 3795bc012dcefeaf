"""Exercises for 04_load_model.py: checkpoints, state_dicts, predictions with a confidence.

Each function below is one exercise. Read its docstring, replace the line
`raise NotImplementedError` with your code, and check your work:

    python exercises/check.py 04        # this lesson's exercises
    python exercises/check.py --hint    # a hint for the first one not done yet (--hint 2: a closer one)
    python exercises/check.py           # every lesson, in course order, then the success checklist

The comment above each function names the lesson section it practises and its
heading in ML_CONCEPTS_EXPLAINED.md. Try first without looking; the reference
solutions are in exercises/solutions/, under the same file name.
"""

import torch


# 04_load_model.py section 3 (rebuild the architecture) · "Model Capacity" in ML_CONCEPTS_EXPLAINED.md
def hidden_size_from_checkpoint(state_dict):
    """Read the hidden size a SimpleNN checkpoint was trained with.

    state_dict: the state_dict of 03's SimpleNN (a dict: layer name -> tensor),
    e.g. checkpoint["state_dict"] from mnist_model.pth. Its "fc1.weight" is the
    first Linear layer's weight matrix.
    Return the hidden size as an int (128 for 03's default): the size to build
    SimpleNN(hidden=...) with so that the weights fit (04 reads it from model_config).
    """
    raise NotImplementedError  # replace this line with your code


# 04_load_model.py section 6 (logits -> softmax -> digit) · "Activation Functions" in ML_CONCEPTS_EXPLAINED.md
def logits_to_prediction(logits):
    """From a batch of logits to each example's predicted class and its confidence.

    logits: (B, C) float scores, one row per example.
    Return (predictions, confidences): predictions an int64 tensor (B,) with each
    row's most likely class; confidences a float tensor (B,) with that class's
    softmax probability (between 0 and 1, not the raw logit).
    """
    raise NotImplementedError  # replace this line with your code


# 04_load_model.py sections 3 and 5 (eval, no_grad) · "Regularization" in ML_CONCEPTS_EXPLAINED.md
def predict(model, images):
    """Use a trained model the way 04 does: predictions you can rely on.

    model: an nn.Module returning (B, C) logits (it may contain dropout);
    images: a batch (B, ...) it accepts.
    Put the model in evaluation mode and run it without recording gradients.
    Return (predictions, confidences) as in logits_to_prediction: int64 (B,) and
    float (B,). Calling it twice on the same images must give the same answer.
    """
    raise NotImplementedError  # replace this line with your code


# 04_load_model.py section 7 (two ways to save a model) · "Generalization" in ML_CONCEPTS_EXPLAINED.md
def save_and_reload(model, make_model, path):
    """Save a model's weights and load them into a freshly built model.

    model: a trained nn.Module; make_model: a function with no arguments that
    builds a new, untrained model of the same architecture; path: where to save.
    Save the state_dict (not the whole model object) to path with torch.save, then
    build a new model with make_model(), load the file with
    torch.load(path, weights_only=True) and put the weights in with load_state_dict.
    Return the new model: a different object that computes exactly what model does.
    """
    raise NotImplementedError  # replace this line with your code


# 04_load_model.py section 6 (the digits it is least sure about) · "Generalization" in ML_CONCEPTS_EXPLAINED.md
def least_confident(probabilities, k):
    """The k examples the model is least sure about, least sure first.

    probabilities: (N, C) softmax outputs, each row summing to 1.
    A model's confidence in an example is its largest probability in that row.
    Return an int64 tensor (k,) of row indices: the k rows with the lowest
    confidence, in increasing order of confidence.
    """
    raise NotImplementedError  # replace this line with your code


if __name__ == "__main__":
    print("Check these exercises with: python exercises/check.py 04")
