"""Hugging Face Space entry point: serves `taskemb_hub.space` (the app lives in the package).

Locally: `taskemb-hub space` (same app). On a Space, set the variable `TASKEMB_REGISTRY` to any
registry string `taskemb-hub rank --registry` takes (`default`, a folder, `hub`, ...); default:
the registry packaged with taskemb-hub. `TASKEMB_REFRESH_MINUTES` rebuilds it in the background
that often (new Hub adapters appear without a restart). The Space is also an MCP server (its ranking
tools at `https://<owner>-<space>.hf.space/gradio_api/mcp/`); `TASKEMB_MCP=0` turns that off.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: see taskemb_hub/cli/__init__.py

from taskemb_hub.space import launch  # noqa: E402

if __name__ == "__main__":
    # A Space routes traffic to 0.0.0.0:7860; locally this binds the same port on all interfaces.
    from taskemb_hub.space import SpaceConfig

    minutes = float(os.environ.get("TASKEMB_REFRESH_MINUTES", "0") or 0)
    launch(os.environ.get("TASKEMB_REGISTRY", "default"), host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
           port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
           config=SpaceConfig(refresh_every_s=minutes * 60 or None), mcp=os.environ.get("TASKEMB_MCP", "1") != "0")
