"""The taskemb-hub Space: bring your data or your adapter, get ranked source tasks with plots.

`build_app()` returns the `gr.Blocks`; `launch()` serves it (`taskemb-hub space` on the command
line, `spaces/app.py` on a Hub Space). Gradio is imported only when the app is
built, so importing this package (and `taskemb-hub --help`) stays fast.
"""

from __future__ import annotations

__all__ = ["build_app", "launch", "SpaceConfig", "UploadLimits", "RegistryState"]


def __getattr__(name: str):
    if name in ("build_app", "launch"):
        from . import app

        return getattr(app, name)
    if name == "SpaceConfig":
        from ._config import SpaceConfig

        return SpaceConfig
    if name == "RegistryState":
        from ._registry_state import RegistryState

        return RegistryState
    if name == "UploadLimits":
        from ._uploads import UploadLimits

        return UploadLimits
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
