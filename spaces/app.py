"""Gradio Space: look up the best source tasks for a target, from the packaged registry or the Hub.

Run locally: `GRADIO_ANALYTICS_ENABLED=False python spaces/app.py` (needs `pip install -e ".[space]"`).
Set `TASKEMB_REGISTRY=hub` to serve every Hub adapter tagged `taskemb-hub` instead.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from taskemb_hub.errors import TaskEmbHubError  # noqa: E402
from taskemb_hub.selector import AutoSourceSelector  # noqa: E402

COLUMNS = ["rank", "source", "score", "method", "step", "metric"]


def load_selector(kind: str | None = None) -> AutoSourceSelector:
    kind = kind or os.environ.get("TASKEMB_REGISTRY", "default")
    if kind == "hub":
        return AutoSourceSelector.from_hub()
    if kind == "default":
        return AutoSourceSelector.from_default()
    return AutoSourceSelector.from_local(kind)


def lookup(selector: AutoSourceSelector, target: str, top_k: int, similarity: str):
    """Rank sources for a registry entry (leave-one-out). Returns (rows, message); never raises."""
    if not target:
        return [], "Pick a target task."
    try:
        ranking = selector.rank(target, top_k=int(top_k), similarity=similarity)
    except TaskEmbHubError as err:
        return [], f"⚠️ {err}"
    rows = [[r[c] for c in COLUMNS] for r in ranking.rows]
    note = f"{len(rows)} sources for **{target}** ({ranking.target.method}, {similarity})."
    if ranking.skipped:
        note += f" {len(ranking.skipped)} incompatible entries skipped."
    return rows, note


def build_app(selector: AutoSourceSelector | None = None):
    import gradio as gr

    selector = selector or load_selector()
    names = [e.name for e in selector.entries]
    with gr.Blocks(title="taskemb-hub: which source task to train on first?") as app:
        gr.Markdown("# Which source task should I train on first?\nRanks source tasks by the similarity of their "
                    "tuned PEFT weights (task embeddings) to your target's.")
        with gr.Row():
            target = gr.Dropdown(names, value=names[0] if names else None, label="target task (left out of the sources)")
            top_k = gr.Slider(1, max(1, len(names) - 1), value=min(5, max(1, len(names) - 1)), step=1, label="top k")
            similarity = gr.Radio(["cosine", "centered"], value=selector.similarity, label="similarity")
        button = gr.Button("Rank sources", variant="primary")
        message = gr.Markdown()
        table = gr.Dataframe(headers=COLUMNS, label="sources, best first", interactive=False)
        button.click(lambda t, k, s: lookup(selector, t, k, s), [target, top_k, similarity], [table, message],
                     api_name="rank")
    return app


if __name__ == "__main__":
    build_app().queue().launch()
