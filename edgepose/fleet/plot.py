"""The device lab's picture (``--plot lab.png``), drawn with matplotlib's Agg
backend (no display needed).

With an AP for the configurations: one panel per device, total p50 latency
(ms, x) against OKS AP (y), one point per configuration, labelled; the
device's choice (:func:`edgepose.fleet.report.choose`: the fastest within
the AP tolerance of its best) is ringed and named in the panel's title.
Without AP: one panel of horizontal bars, total p50 latency of each
configuration (rows) on each device (colours), whiskers to p90, the
device's fastest outlined.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgepose.fleet.report import config_label

__all__ = ["plot_lab"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'edgepose[fleet]'.") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_lab(doc: dict[str, Any], path: str | Path) -> Path:
    """Draws the lab document (:func:`edgepose.fleet.report.build_lab_document`)
    into a PNG.

    Args:
        doc: the lab's document.
        path: the PNG to write (its folder is created).

    Returns:
        the path written.

    Raises:
        ValueError: no configuration ran on any device (nothing to draw).
        ImportError: matplotlib is not installed.
    """
    ok = [(i, r) for i, r in enumerate(doc["results"]) if r["status"] == "ok"]
    if not ok:
        raise ValueError("--plot: no configuration ran on any device, so there is nothing to "
                         "draw; see the report's 'not run' lines.")
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if any(r.get("ap") is not None for _, r in ok):
        fig = _latency_vs_ap(plt, doc, ok)
    else:
        fig = _latency_bars(plt, doc, ok)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _subtitle(doc: dict[str, Any], name: str) -> str:
    info = doc["workers"].get(name, {})
    cpu = ((info.get("machine") or {}).get("cpu") or {})
    text = f"{name}: {cpu.get('model') or 'unknown CPU'}"
    text = text if len(text) <= 48 else text[:47] + "…"
    if info.get("status") == "left":
        text += f"\n({info['note']})"
    return text


def _config_keys(doc: dict[str, Any], ok: list[tuple[int, dict[str, Any]]]
                 ) -> dict[int, str]:
    """Configuration index (the sweep's position) -> its label, in sweep order."""
    return dict(sorted({r["index"]: config_label(doc, r) for _, r in ok}.items()))


def _latency_vs_ap(plt, doc: dict[str, Any], ok: list[tuple[int, dict[str, Any]]]):
    devices = [n for n in doc["workers"] if any(r["worker"] == n for _, r in ok)]
    cols = min(3, len(devices))
    rows_n = math.ceil(len(devices) / cols)
    keys = _config_keys(doc, ok)
    legend_cols = 1 if len(keys) > 6 else 2
    legend_h = 0.22 * math.ceil(len(keys) / legend_cols) + 0.3  # inches
    fig_h = 3.6 * rows_n + 0.9 + legend_h
    fig, axes = plt.subplots(rows_n, cols, figsize=(max(4.8 * cols, 8.0), fig_h),
                             squeeze=False, sharey=True)
    tol = doc["settings"]["ap_tolerance"]
    cmap = plt.get_cmap("tab10")
    colour = {k: cmap(n % 10) for n, k in enumerate(keys)}
    for ax, name in zip(axes.flat, devices):
        mine = [(i, r) for i, r in ok if r["worker"] == name and r.get("ap") is not None]
        for _, r in mine:
            x, y = r["stages_ms"]["total"]["p50"], r["ap"]
            ax.scatter([x], [y], s=70, color=colour[r["index"]], zorder=3)
            ax.annotate(str(r["index"] + 1), (x, y), textcoords="offset points",  # staggered
                        xytext=(6, 5 if r["index"] % 2 == 0 else -14), fontsize=9,
                        fontweight="bold")
        pick = doc["choice"].get(name)
        title = _subtitle(doc, name)
        if pick is not None and doc["results"][pick].get("ap") is not None:
            r = doc["results"][pick]
            x, y = r["stages_ms"]["total"]["p50"], r["ap"]
            ax.scatter([x], [y], s=330, facecolors="none", edgecolors="crimson", linewidths=2,
                       zorder=4)
            best = max(rr["ap"] for _, rr in mine)
            ax.axhspan(best - tol, best, color="crimson", alpha=0.07, zorder=1)
            title += f"\nchoice: {r['index'] + 1}, {x:.1f} ms, AP {y:.3f}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("total latency p50 (ms per frame)")
        ax.grid(True, alpha=0.3)
        ax.margins(x=0.2, y=0.2)
    for ax in axes[:, 0]:
        ax.set_ylabel("OKS AP")
    for ax in list(axes.flat)[len(devices):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colour[k],
                          label=f"{k + 1}  {label}") for k, label in keys.items()]
    fig.legend(handles=handles, loc="lower center", ncol=legend_cols, fontsize=8,
               frameon=False)
    fig.suptitle(f"edgepose lab: latency against accuracy per device\n(ringed: the fastest "
                 f"within {tol:g} AP of the device's best; shaded: that band)", fontsize=10)
    fig.tight_layout(rect=(0, legend_h / fig_h, 1, 1))
    return fig


def _latency_bars(plt, doc: dict[str, Any], ok: list[tuple[int, dict[str, Any]]]):
    labels = list(dict.fromkeys(config_label(doc, r) for _, r in
                                sorted(ok, key=lambda ir: ir[1]["index"])))
    devices = [n for n in doc["workers"] if any(r["worker"] == n for _, r in ok)]
    height = 0.8 / len(devices)
    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.45 * len(labels) * len(devices)))
    cmap = plt.get_cmap("tab10")
    for d, name in enumerate(devices):
        ys, widths, errs, edges = [], [], [], []
        for i, r in ok:
            if r["worker"] != name:
                continue
            t = r["stages_ms"]["total"]
            ys.append(labels.index(config_label(doc, r)) + d * height)
            widths.append(t["p50"])
            errs.append(max(0.0, t["p90"] - t["p50"]))
            edges.append("black" if doc["choice"].get(name) == i else "none")
        ax.barh(ys, widths, height=height * 0.9, xerr=[[0] * len(errs), errs],
                color=cmap(d % 10), edgecolor=edges, linewidth=1.5, capsize=3,
                label=_subtitle(doc, name).replace("\n", " "))
    ax.set_yticks([k + height * (len(devices) - 1) / 2 for k in range(len(labels))])
    ax.set_yticklabels(labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("total latency p50 (ms per frame; whisker: p90)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.suptitle("edgepose lab: latency per configuration per device\n(outlined: the "
                 "device's fastest; no AP measured)", fontsize=10)
    fig.tight_layout()
    return fig
