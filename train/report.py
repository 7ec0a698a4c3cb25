"""The evaluation report as Markdown (report.json holds the same numbers)."""

from __future__ import annotations

from .slate import PIPELINES


def _row(name: str, metrics: dict) -> str:
    return f"| {name} | {metrics['auc']:.4f} | {metrics['log_loss']:.4f} | {metrics['ece']:.4f} | {metrics['mean_predicted']:.4f} | {metrics['observed_rate']:.4f} | {metrics['rows']} |"


def markdown(report: dict) -> str:
    lines = [f"# Model report: preset {report['preset']}", "",
             f"Data: {report['data']['impressions']} impressions, CTR {report['data']['ctr']:.4f}, CVR given click {report['data']['cvr_given_click']:.4f}; "
             f"train rows {report['data']['train_rows']}, calibration rows {report['data']['calibration_rows']}, test rows {report['data']['test_rows']}.",
             f"Training: {report['training']['seconds']:.1f} s, {report['training']['epochs']} epochs, {report['training']['steps']} steps; "
             f"whole pipeline {report['pipeline_seconds']:.1f} s.", "",
             "## Test days (the ground truth row is the ceiling: the true probabilities scored against the same labels)", "",
             "| what | AUC | log loss | ECE | mean predicted | observed | rows |", "|---|---|---|---|---|---|---|"]
    for head, label in [("ctr", "CTR"), ("cvr_on_clicks", "CVR (clicked rows)"), ("ctcvr", "CTCVR")]:
        for variant, metrics in report[head].items():
            lines.append(_row(f"{label}, {variant.replace('_', ' ')}", metrics))
    lines += comparison_lines(report)
    lines += ["", f"CTR AUC gap to ground truth: {report['targets']['ctr_auc_gap']:.4f} (target ≤ 0.02, {'met' if report['targets']['ctr_auc_gap_met'] else 'NOT met'}); "
              f"CTR ECE after calibration: {report['ctr_ece']['after']:.4f} (target ≤ 0.01, {'met' if report['targets']['ctr_ece_met'] else 'NOT met'}).",
              "", "## CTR reliability (equal-mass bins)", "", "| bin | rows | predicted before | predicted after | observed |", "|---|---|---|---|---|"]
    for index, (before, after) in enumerate(zip(report["ctr_reliability"]["before"], report["ctr_reliability"]["after"])):
        lines.append(f"| {index + 1} | {before['count']} | {before['predicted']:.4f} | {after['predicted']:.4f} | {after['observed']:.4f} |")
    retrieval = report["retrieval"]
    lines += ["", f"## Retrieval ({retrieval['requests']} test requests, exact top-K by (E_user + E_ctx) · E_ad vs the K truly best ads)", "",
              "| K | recall | random |", "|---|---|---|"]
    for key, value in retrieval.items():
        if key.startswith("recall@"):
            k = key.split("@")[1]
            lines.append(f"| {k} | {value:.4f} | {retrieval[f'random@{k}']:.4f} |")
    lines += ["", f"Mean true CTR of the top 10 retrieved: {retrieval['true_ctr_of_top_10']['retrieved']:.4f} (best possible {retrieval['true_ctr_of_top_10']['best']:.4f}).", ""]
    return "\n".join(lines + slate_lines(report["slate"]))


def comparison_lines(report: dict) -> list[str]:
    """--scorer dlrm: the DLRM beside the multi-tower scorer it shares towers with, on the same test rows."""
    if "comparison" not in report:
        return []
    loss = report["training"]["click_loss"]
    loss_name = f"focal, gamma {loss['gamma']}" if loss["name"] == "focal" else loss["name"]
    towers = report["comparison"]["multitower_training"].get("from", "trained in this run")
    lines = ["", f"## Scorers on the same test rows (calibrated; DLRM click loss {loss_name}; towers: {towers})", "",
             "| scorer | CTR AUC | CTR log loss | CTR ECE | CVR AUC (clicked) | CTCVR AUC | CTCVR log loss |", "|---|---|---|---|---|---|---|"]
    for name, scored, variant in [("multi-tower", report["comparison"]["multitower"], "model_calibrated"), ("DLRM", report, "model_calibrated"),
                                  ("ground truth", report, "ground_truth")]:
        ctr, cvr, ctcvr = scored["ctr"][variant], scored["cvr_on_clicks"][variant], scored["ctcvr"][variant]
        lines.append(f"| {name} | {ctr['auc']:.4f} | {ctr['log_loss']:.4f} | {ctr['ece']:.4f} | {cvr['auc']:.4f} | {ctcvr['auc']:.4f} | {ctcvr['log_loss']:.4f} |")
    return lines + ["", "Cost per request of either scorer in the engine: `node dist/bench/engine.js` over each model directory (docs/dlrm.md)."]


def slate_lines(slate: dict) -> list[str]:
    lines = [f"## Served slate ({slate['requests']} test requests; exact retrieval of {slate['ann_candidates']}, "
             f"{slate['score_candidates']} scored; GSP with the daemon's quality score and reserves; true expected clicks and revenue)", "",
             "| slots | pipeline | clicks / request | share | revenue / request ($) | share |", "|---|---|---|---|---|---|"]
    for slots, result in slate["slots"].items():
        clicks, revenue = result["clicks"], result["revenue_micros"]
        for name in PIPELINES:
            share = lambda metric: 1.0 if name == "oracle" else metric["share_of_oracle"][name]  # noqa: E731
            lines.append(f"| {slots} | {name.replace('_', ' ')} | {clicks['per_request'][name]:.4f} | {share(clicks):.3f} | "
                         f"{revenue['per_request'][name] / 1e6:.4f} | {share(revenue):.3f} |")
    lines += ["", "Loss as a share of the oracle (retrieval + lightweight cut + ranking = total); exhaustive: the gain of a slate "
              f"from model scores over the whole catalog on {slate['exhaustive_requests']} of the requests:", "",
              "| slots | metric | retrieval | lightweight cut | ranking | total | exhaustive gain |", "|---|---|---|---|---|---|---|"]
    for slots, result in slate["slots"].items():
        for metric in ["clicks", "revenue_micros"]:
            loss, gain = result[metric]["loss"], result[metric]["exhaustive_gain"]
            lines.append(f"| {slots} | {metric.split('_')[0]} | {loss['retrieval']:.3f} | {loss['lightweight_cut']:.3f} | {loss['ranking']:.3f} | "
                         f"{loss['total']:.3f} | {'n/a' if gain is None else f'{gain:+.3f}'} |")
    return lines + [""]
