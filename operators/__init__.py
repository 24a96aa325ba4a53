"""The FiftyOne operators of fiftyone_intrinsic: thin wrappers that read a form, build the
library's settings, call the library and report progress."""

from .manage import DeleteIntrinsicRun, GetIntrinsicRunInfo, LoadSharpestPairs
from .measure import ComputeIntrinsicDimension, ComputeLabelSharpness
from .representation import ComputeRepresentationDimension
from .robustness import EvaluateAdversarialRobustness
from .scaling import FitScalingLaw

#: Every operator class, in the order the plugin registers them.
OPERATORS = (
    ComputeIntrinsicDimension,
    ComputeLabelSharpness,
    ComputeRepresentationDimension,
    EvaluateAdversarialRobustness,
    FitScalingLaw,
    LoadSharpestPairs,
    GetIntrinsicRunInfo,
    DeleteIntrinsicRun,
)
