"""What one experiment run costs in the cloud, from the CDK context and jobs/cloud/prices.json (no CDK, no AWS call).

The prices and every duration assumption live in jobs/cloud/prices.json, so `cxr start --dry-run`, `cxr preflight`
and docs/cloud.md quote one source. The estimate is for a run that builds its dataset (the ETL is skipped,
and its cost saved, when the dataset exists).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.experiment.paths import ROOT
from jobs.experiment.schema import Experiment

PRICES = Path(__file__).resolve().with_name("prices.json")
CDK_JSON = ROOT / "cdk.json"


class CostError(ValueError):
    """An estimate that cannot be made; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class CostLine:
    item: str
    instance_type: str
    instances: int
    hours: float
    price_per_hour: float

    @property
    def cost(self) -> float:
        return self.instances * self.hours * self.price_per_hour


@dataclass(frozen=True)
class CostEstimate:
    experiment: str
    spot: bool
    lines: tuple[CostLine, ...]
    wall_hours: float
    prices_as_of: str
    source: str

    @property
    def total(self) -> float:
        return sum(line.cost for line in self.lines)


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return json.loads(path.read_text())


def cdk_context(overrides: dict[str, str] | None = None, path: Path = CDK_JSON) -> dict[str, Any]:
    """cdk.json's context with `-c KEY=VALUE` overrides (what `cdk deploy -c ...` would use)."""
    context = json.loads(path.read_text())["context"]
    unknown = sorted(set(overrides or {}) - set(context))
    if unknown:
        raise CostError(f'unknown context key(s) {", ".join(unknown)}: use keys of {path}\'s "context"')
    return {**context, **(overrides or {})}


def _price(prices: dict[str, Any], table: str, instance_type: str, context_key: str) -> float:
    if instance_type not in prices[table]:
        raise CostError(
            f"{PRICES.name}: no price for {instance_type!r} (context '{context_key}') in '{table}'; "
            f"add it or use one of {', '.join(prices[table])}"
        )
    return prices[table][instance_type]


def _is_on(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _images(exp: Experiment, assumptions: dict[str, Any]) -> int:
    if exp.etl.caps:
        return sum(exp.etl.caps.values())
    known = assumptions["source_images_when_uncapped"]
    unknown = [s.kind for s in exp.etl.sources if s.kind not in known]
    if unknown:
        raise CostError(
            f"experiment '{exp.name}': field 'etl.caps' is empty and the size of source kind(s) "
            f"{', '.join(unknown)} is unknown; add etl.caps to estimate the cost"
        )
    return sum(known[s.kind] for s in exp.etl.sources)


def training_hours(exp: Experiment, context: dict[str, Any], prices: dict[str, Any]) -> float:
    """Hours of one training job: overhead + epochs x (training + validation images) / assumed speed."""
    assumptions = prices["assumptions"]
    instance_type = context["trainingInstanceType"]
    speeds = assumptions["training_images_per_second_at_224px"]
    if instance_type not in speeds:
        raise CostError(
            f"{PRICES.name}: no assumed speed for {instance_type!r} (context 'trainingInstanceType') in "
            f"'assumptions.training_images_per_second_at_224px'; use one of {', '.join(speeds)} or add it"
        )
    seen = _images(exp, assumptions) * (1 - exp.etl.test_fraction)
    epochs = sum(stage.epochs for stage in exp.training.stages())
    speed = speeds[instance_type] * (224 / exp.etl.image_size) ** 2
    return assumptions["training_overhead_hours"] + epochs * seen / speed / 3600


def estimate_cost(exp: Experiment, context: dict[str, Any], *, spot: bool | None = None) -> CostEstimate:
    """The cost of one run of ``exp`` with the stack deployed from ``context`` (spot: context's useSpot)."""
    prices = load_prices()
    assumptions = prices["assumptions"]
    spot = _is_on(context["useSpot"]) if spot is None else spot
    models = len(exp.runs())  # one training and one evaluation job per model and seed
    emr_hours = assumptions["emr_cluster_hours"]
    train_hours = training_hours(exp, context, prices)
    train_price = _price(
        prices, "sagemaker_training_per_hour", context["trainingInstanceType"], "trainingInstanceType"
    )
    lines = [
        CostLine(
            f"EMR {role} node (EC2 + EMR)",
            context[f"emr{role}InstanceType"],
            int(context[f"emr{role}InstanceCount"]),
            emr_hours,
            _price(prices, "ec2_per_hour", context[f"emr{role}InstanceType"], f"emr{role}InstanceType")
            + _price(prices, "emr_per_hour", context[f"emr{role}InstanceType"], f"emr{role}InstanceType"),
        )
        for role in ("Master", "Core")
    ]
    lines += [
        CostLine(
            "SageMaker training" + (" (managed spot)" if spot else ""),
            context["trainingInstanceType"],
            models * int(context["trainingInstanceCount"]),
            train_hours,
            train_price * (1 - prices["spot_discount"]) if spot else train_price,
        ),
        CostLine(
            "SageMaker processing: evaluation",
            context["evaluationInstanceType"],
            models,
            assumptions["evaluation_hours_per_model"],
            _price(
                prices,
                "sagemaker_processing_per_hour",
                context["evaluationInstanceType"],
                "evaluationInstanceType",
            ),
        ),
        CostLine(
            "SageMaker processing: report",
            context["reportInstanceType"],
            1,
            assumptions["report_hours"],
            _price(
                prices, "sagemaker_processing_per_hour", context["reportInstanceType"], "reportInstanceType"
            ),
        ),
    ]
    audit_hours = assumptions["audit_hours"] if exp.evaluation.external else 0.0
    if audit_hours:
        lines.append(
            CostLine(
                "SageMaker processing: data audit",
                context["reportInstanceType"],
                1,
                audit_hours,
                _price(
                    prices,
                    "sagemaker_processing_per_hour",
                    context["reportInstanceType"],
                    "reportInstanceType",
                ),
            )
        )
    rounds = math.ceil(models / int(context["modelConcurrency"]))
    wall = (
        emr_hours
        + audit_hours
        + rounds * (train_hours + assumptions["evaluation_hours_per_model"])
        + assumptions["report_hours"]
    )
    return CostEstimate(exp.name, spot, tuple(lines), wall, prices["as_of"], prices["source"])


def format_estimate(estimate: CostEstimate) -> list[str]:
    """Plain-text lines for the terminal."""
    kind = "managed spot training" if estimate.spot else "on-demand"
    rows = [
        f"estimated cost of '{estimate.experiment}' ({kind}, us-east-1 prices of {estimate.prices_as_of}): "
        f"${estimate.total:,.2f}, about {estimate.wall_hours:.1f} h end to end"
    ]
    rows += [
        f"  {line.instances} x {line.instance_type:<14} {line.hours:5.2f} h x ${line.price_per_hour:7.3f}/h"
        f" = ${line.cost:7.2f}  {line.item}"
        for line in estimate.lines
    ]
    rows.append(f"  assumptions and prices: {PRICES} (not counted: storage, S3, KMS, logs)")
    return rows


# The context choices docs/cloud.md prices: the paper's 4-GPU instance and a one-GPU one (a `-c` switch).
DOC_CHOICES = (("ml.p3.8xlarge (cdk.json)", {}), ("ml.p3.2xlarge", {"trainingInstanceType": "ml.p3.2xlarge"}))


def markdown_table(experiments: list[Experiment]) -> str:
    """The table docs/cloud.md quotes (tests/test_costs.py checks it is this text; `python -m jobs.cloud.costs`)."""
    rows = [
        "| experiment | training instance | on-demand | managed spot training | end to end |",
        "| --- | --- | --- | --- | --- |",
    ]
    for exp in experiments:
        for label, overrides in DOC_CHOICES:
            context = cdk_context(overrides)
            on_demand, spot = (estimate_cost(exp, context, spot=s) for s in (False, True))
            rows.append(
                f"| `{exp.name}` | {label} | ${on_demand.total:,.2f} | ${spot.total:,.2f} "
                f"| {on_demand.wall_hours:.1f} h |"
            )
    prices = load_prices()
    rows += [
        "",
        f"Prices: {prices['source']}",
        f"Spot: {prices['spot_note']}",
        f"Durations: {prices['assumptions']['emr_cluster_note']}; training "
        f"{prices['assumptions']['training_speed_note']}. Not counted: {prices['assumptions']['not_counted']}.",
    ]
    return "\n".join(rows)


def shipped_experiments() -> list[Experiment]:
    from jobs.experiment.schema import load_experiment

    return [load_experiment(p) for p in sorted((ROOT / "experiments").glob("*.json"))]


if __name__ == "__main__":
    print(markdown_table(shipped_experiments()))
