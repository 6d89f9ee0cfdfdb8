"""Retraining Jobs in local mode: the job template's first container run as a local command.

`spec.retrain.jobTemplate` stays one manifest for both worlds: locally its first container's
`command` + `args` run as a child process (no image, no pod), with the container's literal `env`
values, the same SERINUS_* facts a Kubernetes Job gets, and SERINUS_RESULT_FILE pointing at a
file in the state directory instead of the termination-message path. Output goes to
`<job>.log` beside it. A command starting with `python` or `python3` runs with the interpreter of
`serinus local up` (its venv has scikit-learn and serinus_runtime, as a training image would).
It runs in the directory `serinus local up` was started from. Exit code 0 plus a JSON result is
success, anything else a failure with the log's last line; the stable version is never touched
either way (serinus.core.aftercare).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from serinus.api.spec import RetrainSpec
from serinus.core.actions import StartRetrain
from serinus.core.observations import RetrainOutcome
from serinus.kube.builders import retrain_facts

RESULT_LIMIT = 4096
"""Bytes of the result read, as Kubernetes keeps of a termination message."""


class RetrainError(ValueError):
    """The job template cannot be run locally; the message says why and what to change."""


def local_command(retrain: RetrainSpec) -> tuple[list[str], dict[str, str]]:
    """(argv, literal env) of the job template's first container."""
    template: Any = retrain.job_template
    try:
        container = template["spec"]["template"]["spec"]["containers"][0]
    except (KeyError, IndexError, TypeError) as error:
        raise RetrainError(
            "spec.retrain.jobTemplate has no spec.template.spec.containers[0]: local mode runs "
            "that container's command"
        ) from error
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if not argv or not all(isinstance(a, str) for a in argv):
        raise RetrainError(
            "spec.retrain.jobTemplate's first container has no command/args (strings): local "
            "mode has no image to take an entrypoint from; write the command out"
        )
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    env = {
        e["name"]: str(e["value"])
        for e in container.get("env") or []
        if isinstance(e, dict) and "name" in e and "value" in e
    }
    return argv, env


class LocalRetrainer:
    """Runs and watches the retraining commands of one local ModelDeployment."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def result_file(self, job: str) -> Path:
        return self.run_dir / f"{job}.result.json"

    def log_file(self, job: str) -> Path:
        return self.run_dir / f"{job}.log"

    def start(self, retrain: RetrainSpec, action: StartRetrain) -> None:
        argv, env = local_command(retrain)
        result = self.result_file(action.job)
        result.unlink(missing_ok=True)
        facts = {**retrain_facts(action), "SERINUS_RESULT_FILE": str(result)}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(action.job).open("wb") as log:
            try:
                process = subprocess.Popen(
                    argv,
                    env={**os.environ, **env, **facts},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                raise RetrainError(
                    f"could not start the retraining command {argv[0]!r}: {error.strerror or error}"
                ) from error
        self._running[action.job] = process

    def outcome(self, job: str) -> RetrainOutcome | None:
        """The finished command's outcome; None while it runs."""
        process = self._running.get(job)
        if process is None:
            return self._orphaned(job)
        code = process.poll()
        if code is None:
            return None
        del self._running[job]
        if code != 0:
            return RetrainOutcome(
                job=job, succeeded=False,
                message=f"the command exited with code {code}: {self._last_line(job)} "
                f"(log: {self.log_file(job)})",
            )  # fmt: skip
        return self._result(job)

    def _orphaned(self, job: str) -> RetrainOutcome:
        """A job this controller did not start (it restarted meanwhile): its result file, if
        the command got that far, else a failure saying so."""
        if self.result_file(job).exists():
            return self._result(job)
        return RetrainOutcome(
            job=job, succeeded=False,
            message="the controller restarted while the command ran; no result was written "
            f"(log: {self.log_file(job)})",
        )  # fmt: skip

    def _result(self, job: str) -> RetrainOutcome:
        path = self.result_file(job)
        try:
            text = path.read_bytes()[:RESULT_LIMIT].decode("utf-8", "replace")
            result = json.loads(text)
        except (OSError, ValueError) as error:
            return RetrainOutcome(
                job=job, succeeded=False,
                message=f"the command succeeded but wrote no JSON result to {path}: {error}",
            )  # fmt: skip
        return RetrainOutcome(job=job, succeeded=True, message="succeeded", result=result)

    def _last_line(self, job: str) -> str:
        try:
            lines = self.log_file(job).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(no output)"

    def close(self) -> None:
        """Stop commands still running (their jobs fail as 'controller restarted')."""
        for process in self._running.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
        self._running.clear()
