"""Where a Slurm run's files live: a directory per run and attempt under the job root, shared by the handlers'
host and the nodes (inputs, work, outputs, the job's output file and its records), and what the handlers keep
after the job (the run's whole log, its fetched outputs) beside it."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from adapters.slurm_compute import script
from schemas.names import attempt_separator


@dataclass(frozen=True)
class JobDirs:
    job_root: Path
    artifacts_dir: Path

    def run_dir(self, run_id: str) -> Path:
        return self.job_root / script.run_label(run_id)

    def attempt_dir(self, run_id: str, attempt: int) -> Path:
        return self.run_dir(run_id) / str(attempt)

    def log_path(self, run_id: str, attempt: int) -> Path:
        return self.attempt_dir(run_id, attempt) / script.LOG_NAME

    def saved_log(self, run_id: str) -> Path:
        return self.artifacts_dir / f"{script.run_label(run_id)}.log"

    def outputs_dir(self, run_id: str) -> Path:
        return self.artifacts_dir / f"{script.run_label(run_id)}-outputs"

    def attempts(self, run_id: str) -> list[int]:
        run_dir = self.run_dir(run_id)
        if not run_dir.is_dir():
            return []
        return sorted(int(d.name) for d in run_dir.iterdir() if d.name.isdigit() and d.is_dir())

    @staticmethod
    def prepare(directory: Path) -> None:
        for sub in ("work", "outputs", "inputs"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        # Assets name relative output paths (`outputs/count.txt`): from the working directory they land in outputs.
        link = directory / "work" / "outputs"
        if not link.exists() and not link.is_symlink():
            with contextlib.suppress(FileExistsError):  # a concurrent start of the attempt made it
                link.symlink_to(Path("..") / "outputs", target_is_directory=True)

    def save_log(self, run_id: str, attempts: list[int]) -> Path:
        """Every attempt's output file in order, separated as on other backends, in one file of the handlers'."""
        target = self.saved_log(run_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            for attempt in attempts:
                if attempt > 1:
                    out.write(attempt_separator(attempt).encode())
                try:
                    with self.log_path(run_id, attempt).open("rb") as log_file:
                        shutil.copyfileobj(log_file, out, 1 << 20)
                except FileNotFoundError:
                    continue
        partial.replace(target)
        return target


def regular_files(root: Path) -> list[tuple[str, Path]]:
    if not root.is_dir():
        return []
    # Links could point anywhere on the cluster: only regular files inside the outputs.
    return sorted((str(p.relative_to(root)), p) for p in root.rglob("*") if p.is_file() and not p.is_symlink())
