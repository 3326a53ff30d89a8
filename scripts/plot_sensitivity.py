"""Plot the sensitivity analyzer's ΔSQNR per layer and method (report.json of mnq-analyze) as a PNG.

One group of bars per mixable layer (model order), one bar per candidate method (ivit, ibert, fqvit), the chosen
method's bar outlined in black and marked with ▼; layers are shaded by op type. When the report scored the isolated
mode (`analyze.isolated`), a second panel shows its output SQNR with its own choice, so the two rankings can be
compared at a glance.

    python scripts/plot_sensitivity.py RUN/report.json [-o RUN/sensitivity.png]

With a plan search's report beside it (search.json of `mnq-analyze` in mode searched; or --search FILE, e.g. a
training job's plans/searched_w4_search.json), also search.png: the KL to the full-precision outputs of every
evaluated plan in order (start plans and one-layer moves; the kept ones filled) and the running best.
"""
import argparse
import json
import math
from pathlib import Path

METHODS = ("ivit", "ibert", "fqvit")  # tie order of SPEC §7, also the bar order
COLORS = {"ivit": "#4C72B0", "ibert": "#DD8452", "fqvit": "#55A868"}
SHADE = {"softmax": "#f2f2f2", "gelu": "#e0ecf7", "layernorm": "#ffffff"}


def _num(v):
    """A report value: a number, or the strings "inf", "-inf", "nan" the report uses for non-finite values."""
    return float(v) if v is not None else math.nan


def load_report(path):
    """The layers of a report.json as dicts: name, op_type, chosen, chosen_isolated, and per method
    (delta, iso_out)."""
    report = json.loads(Path(path).read_text())
    layers = []
    for layer in report["layers"]:
        methods = {m: {"delta": _num(s["delta_sqnr"]), "iso_out": _num(s["isolated_sqnr_out"])}
                   for m, s in layer["methods"].items()}
        layers.append({"name": layer["layer"], "op_type": layer["op_type"], "chosen": layer["chosen"],
                       "chosen_isolated": layer["chosen_isolated"], "methods": methods})
    return report, layers


def _finite_range(values):
    finite = [v for v in values if math.isfinite(v)]
    return (min(finite), max(finite)) if finite else (-1.0, 1.0)


def _panel(ax, layers, key, chosen_key, ylabel):
    width = 0.8 / len(METHODS)
    lo, hi = _finite_range([s[key] for layer in layers for s in layer["methods"].values()])
    pad = 0.05 * (hi - lo or 1.0)
    for i, layer in enumerate(layers):
        ax.axvspan(i - 0.5, i + 0.5, color=SHADE.get(layer["op_type"], "#ffffff"), zorder=0)
        for j, m in enumerate(METHODS):
            if m not in layer["methods"]:
                continue
            v = layer["methods"][m][key]
            # ±∞ drawn at the edge of the finite range, NaN left out
            if math.isnan(v):
                continue
            shown = min(max(v, lo - pad), hi + pad)
            x = i - 0.4 + (j + 0.5) * width
            chosen = layer[chosen_key] == m
            ax.bar(x, shown, width, color=COLORS[m], edgecolor="black" if chosen else "none",
                   linewidth=1.2 if chosen else 0, zorder=2)
            if chosen:
                ax.annotate("▼", (x, max(shown, 0) + pad * 0.3), ha="center", va="bottom", fontsize=7, zorder=3)
    ax.set_xlim(-0.5, len(layers) - 0.5)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.grid(axis="y", linewidth=0.3)


def plot(report, layers, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    isolated = report.get("isolated", True)  # reports before analyze.isolated always had the isolated scores
    fig, axes = plt.subplots(2 if isolated else 1, 1, figsize=(max(8.0, 0.45 * len(layers)), 7 if isolated else 4),
                             sharex=True, squeeze=False)
    axes = axes[:, 0]
    _panel(axes[0], layers, "delta", "chosen", "ΔSQNR (dB)")
    if isolated:
        _panel(axes[1], layers, "iso_out", "chosen_isolated", "isolated SQNR_out (dB)")
    axes[-1].set_xticks(range(len(layers)))
    axes[-1].set_xticklabels([layer["name"] for layer in layers], rotation=90, fontsize=7)
    handles = [Patch(color=COLORS[m], label=m) for m in METHODS]
    handles += [Patch(facecolor="white", edgecolor="black", label="chosen (▼)")]
    axes[0].legend(handles=handles, loc="lower left", fontsize=8, ncol=4)
    axes[0].set_title(f"{report['preset']} W/A {report['bits']}: per-layer sensitivity "
                      f"({report['images']} images; plan from {report['mode']} mode)")
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def load_search(path):
    """The trajectory of a search.json: (evaluation, kind, label, score, accepted, best) per evaluation."""
    search = json.loads(Path(path).read_text())
    steps = [(s["evaluation"], s["kind"], s["label"], _num(s["score"]), s["accepted"], _num(s["best"]))
             for s in search["trajectory"]]
    return search, steps


def plot_search(search, steps, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(steps)), 4))
    for kind, color in (("start", "#DD8452"), ("move", "#4C72B0")):
        pts = [(e, v, a) for e, k, _, v, a, _ in steps if k == kind and math.isfinite(v)]
        ax.scatter([e for e, _, _ in pts], [v for _, v, _ in pts], s=18, label=f"{kind} plans", zorder=3,
                   facecolors=[color if a else "none" for _, _, a in pts], edgecolors=color)
    ax.step([e for e, *_ in steps], [b for *_, b in steps], where="post", color="black", linewidth=1,
            label="best so far")
    for e, kind, label, v, _, _ in steps:
        if kind == "start" and math.isfinite(v):
            ax.annotate(label, (e, v), fontsize=6, rotation=30, xytext=(3, 3), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xlabel("evaluation")
    ax.set_ylabel(f"{search['objective']} (nats / image)")
    ax.set_title(f"plan search: {search['evaluations']} plans, best {search['score']:.4g} (from {search['start']})")
    ax.legend(fontsize=8)
    ax.grid(linewidth=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", help="report.json written by mnq-analyze")
    parser.add_argument("-o", "--output", help="PNG path (default: sensitivity.png beside the report)")
    parser.add_argument("--search", help="a plan search's JSON (default: search.json beside the report, if any)")
    args = parser.parse_args()
    out = Path(args.output) if args.output else Path(args.report).with_name("sensitivity.png")
    report, layers = load_report(args.report)
    plot(report, layers, out)
    print(out)
    search_path = Path(args.search) if args.search else Path(args.report).with_name("search.json")
    if search_path.exists():
        search, steps = load_search(search_path)
        search_out = out.with_name("search.png")
        plot_search(search, steps, search_out)
        print(search_out)


if __name__ == "__main__":
    main()
