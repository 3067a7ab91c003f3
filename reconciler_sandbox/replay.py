"""`python -m reconciler_sandbox.replay DIR [DIR...]`: replay recorded API traffic against the sandboxes.

Walks each directory recursively: go-vcr YAML cassettes (GitLab) go to `replay_gitlab`, betamax
JSON cassettes (top-level `http_interactions`, Zendesk) to `replay_zendesk`. Prints one line per
mismatch, then `N matched, M mismatched, K skipped (not modeled)`; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

from .replay_common import ReplayOutcome, summary


def cassettes(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """(kind, path) of every cassette under the given files or directories, in a stable order."""
    found: list[tuple[str, Path]] = []
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if path.suffix in (".yaml", ".yml"):
                try:
                    data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                except (yaml.YAMLError, UnicodeDecodeError):
                    continue
                from .replay_gitlab import is_go_vcr

                if is_go_vcr(data):
                    found.append(("gitlab", path))
            elif path.suffix == ".json":
                try:
                    data = json.loads(path.read_text())
                except (ValueError, UnicodeDecodeError):
                    continue
                if isinstance(data, dict) and "http_interactions" in data:
                    found.append(("zendesk", path))
    return found


def replay(paths: Iterable[str | Path]) -> list[ReplayOutcome]:
    outcomes: list[ReplayOutcome] = []
    gitlab_server = None
    try:
        for kind, path in cassettes(paths):
            if kind == "gitlab":
                from .gitlab import serve_gitlab
                from .replay_gitlab import replay_cassette

                gitlab_server = gitlab_server or serve_gitlab()
                outcomes.extend(replay_cassette(path, gitlab_server))
            else:
                outcomes.extend(_replay_zendesk(path))
    finally:
        if gitlab_server is not None:
            gitlab_server.stop()
    return outcomes


def _replay_zendesk(path: Path) -> list[ReplayOutcome]:
    try:  # written in parallel by the Zendesk sandbox; until it exists its cassettes are skipped
        from .replay_zendesk import replay_cassette as replay_zendesk
    except ImportError:
        interactions = json.loads(path.read_text()).get("http_interactions", [])
        return [ReplayOutcome(path.name, f"{i} {x['request']['method'].upper()} {x['request']['uri']}",
                              "skipped", "Zendesk replayer not available")
                for i, x in enumerate(interactions)]
    return list(replay_zendesk(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler_sandbox.replay", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="directories (searched recursively) or cassette files")
    parser.add_argument("--verbose", "-v", action="store_true", help="also print skipped interactions")
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not Path(d).exists()]
    if missing:
        print(f"no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 1
    outcomes = replay(args.dirs)
    for outcome in outcomes:
        if outcome.result == "mismatched" or (args.verbose and outcome.result == "skipped"):
            print(outcome)
    print(summary(outcomes))
    return 1 if any(o.result == "mismatched" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
