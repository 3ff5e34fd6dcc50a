"""Drop-in capture for programs precdiff does not launch.

Put this folder first on ``PYTHONPATH`` and name the capture file::

    PYTHONPATH=/path/to/precdiff/hooks:$PYTHONPATH PRECDIFF_CAPTURE=run.h5 python your_program.py

The first forward call of a Hugging Face causal LM in that process is captured to ``run.h5`` (every
module's output, the input ids, the prompt logprobs and the manifest), exactly as ``precdiff
capture`` writes it, so ``precdiff compare`` takes it as either side. ``PRECDIFF_CAPTURE_SUMMARY=1``
stores statistics only; ``PRECDIFF_CAPTURE_INCLUDE=REGEX`` limits the modules. Without
``PRECDIFF_CAPTURE`` this file does nothing.
"""

import os

if os.environ.get("PRECDIFF_CAPTURE"):
    from precdiff.capture.external import install_from_environment

    install_from_environment()
