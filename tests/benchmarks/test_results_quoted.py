"""The figures the README quotes from the benchmarks are the ones benchmarks/run.py last wrote
(benchmarks/results.json, rendered as RESULTS.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_quotes_the_plan_requests_of_the_last_full_run():
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    plan = results["plan"]
    assert (plan["world"]["tokens"], plan["world"]["consumers"]) == (1000, 5000)
    requests = next(iter(plan["runs"].values()))["requests"]
    quoted = re.search(r"`benchmarks/RESULTS\.md`: ([\d,]+) requests for 1,000 tokens",
                       " ".join((ROOT / "README.md").read_text().split()))
    assert quoted is not None and int(quoted.group(1).replace(",", "")) == requests
    assert f"| plan requests (to the minimum) | {requests} |" in (ROOT / "benchmarks" / "RESULTS.md").read_text()
