"""The KV cache argument of a transformers forward, across the rename ``past_key_values`` -> ``cache``.

transformers 5.2x renamed the forward argument and output field to ``cache`` and warns (FutureWarning,
removal in 5.40) on the old name; releases before the rename only know ``past_key_values``. precdiff
supports both, so it asks the model's forward signature which name it takes.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn


def cache_kwargs(model: nn.Module, cache: Any) -> dict[str, Any]:
    """``{name: cache}`` with the argument name this model's forward takes."""
    parameters = inspect.signature(model.forward).parameters
    return {("cache" if "cache" in parameters else "past_key_values"): cache}


def returned_cache(output: Any) -> Any:
    """The cache a forward returned (``output.cache`` in new releases, ``past_key_values`` before)."""
    cache = output.get("cache") if hasattr(output, "get") else None
    return cache if cache is not None else output.past_key_values
