"""Deploy stage: ONNX export of a pretrained policy (``deploy.export``, torch) and the runner the robot
imports (``deploy.runner``: numpy + onnxruntime only). Importing this package never imports torch."""

from deploy.metadata import FORMAT, FORMAT_VERSION, INPUT_NAME, OUTPUT_NAMES
from deploy.runner import ContractMismatchError, PolicyFileError, PolicyInputError, PolicyRunner, session_options

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "ContractMismatchError",
    "PolicyFileError",
    "PolicyInputError",
    "PolicyRunner",
    "session_options",
]
