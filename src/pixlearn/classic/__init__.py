"""Classic image classifiers: HOG / LBP / colour-histogram features + SVM, random forest or k-NN.

Trained on a labelled folder with :func:`train_classic` (stratified
cross-validation, a held-out test score, a run folder with the same metrics
schema as the deep classifiers), reloaded with :func:`load_classic` and
applied to files with :func:`predict_classic`. Models are saved with skops,
never pickle.
"""

from pixlearn.classic.features import FEATURE_SETS, extract_features, featurize_files, image_features
from pixlearn.classic.models import MODEL_ALIASES, MODELS, build_model, resolve_model_name
from pixlearn.classic.predictor import ClassicModel, load_classic, predict_classic
from pixlearn.classic.training import ClassicResult, train_classic

__all__ = [
    "FEATURE_SETS",
    "MODELS",
    "MODEL_ALIASES",
    "ClassicModel",
    "ClassicResult",
    "build_model",
    "extract_features",
    "featurize_files",
    "image_features",
    "load_classic",
    "predict_classic",
    "resolve_model_name",
    "train_classic",
]
