"""Analysis kit for ORO data: ``Client`` and ``frames`` (GraphQL to typed frames), ``metrics``
(pure pandas/numpy) and ``plots`` (matplotlib).

    from oro_graph.analytics import Client, frames, metrics, plots
    client = Client.from_env()
    runs = frames.runs(client, suite_id=1)

Names are imported on first use: importing the package itself loads neither pandas nor matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Client": ("oro_graph.analytics.client", "Client"),
    "GraphQLError": ("oro_graph.analytics.client", "GraphQLError"),
    "frame": ("oro_graph.analytics.client", "frame"),
    "client": ("oro_graph.analytics.client", None),
    "frames": ("oro_graph.analytics.frames", None),
    "metrics": ("oro_graph.analytics.metrics", None),
    "plots": ("oro_graph.analytics.plots", None),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'oro_graph.analytics' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    loaded = importlib.import_module(module)
    return loaded if attribute is None else getattr(loaded, attribute)
