"""Rich progress for a running study: one bar for the trials, one for each worker's current trial.

It is a `ProgressSink`: the same events arrive from one worker in-process or from N worker
processes, so `--workers 4` draws one display with four epoch bars under the trials bar.
"""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vae_lab.cli.common import err


class RichStudyProgress:
    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}", style="dim"),
            console=err,
            transient=False,
        )
        self.trials_task: int | None = None
        self.epoch_tasks: dict[int, int] = {}
        self.workers = 1
        self.failures: list[str] = []

    def __enter__(self) -> "RichStudyProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        for line in self.failures:
            err.print(line, markup=False, highlight=False)

    def study_start(self, name: str, remaining: int, done: int, workers: int) -> None:
        self.workers = workers
        if done and not remaining:
            err.print(f"study [bold]{name}[/] is complete ({done} trials); `--n-trials N` runs N more")
            return
        if done:
            err.print(f"resuming study [bold]{name}[/]: {done} trial(s) already finished, {remaining} to run")
        label = f"study {name}" + (f" ({workers} workers)" if workers > 1 else "")
        self.trials_task = self.progress.add_task(label, total=remaining, note="")

    def trial_start(self, worker: int, number: int, label: str, epochs: int) -> None:
        if worker in self.epoch_tasks:
            self.progress.remove_task(self.epoch_tasks.pop(worker))
        prefix = f"  w{worker} " if self.workers > 1 else "  "
        self.epoch_tasks[worker] = self.progress.add_task(prefix + label, total=epochs, note="")

    def epoch(self, worker: int, completed: float, note: str) -> None:
        if (task := self.epoch_tasks.get(worker)) is None:
            return
        self.progress.update(task, completed=completed, **({"note": note} if note else {}))

    def trial_end(self, worker: int, number: int, state: str, value: float | None) -> None:
        if (task := self.epoch_tasks.get(worker)) is not None:
            done = self.progress.tasks[self._index(task)].completed
            self.progress.update(task, total=max(done, 1), completed=max(done, 1))
        if self.trials_task is not None:
            shown = f"{value:.4f}" if value is not None else state.lower()
            self.progress.advance(self.trials_task)
            self.progress.update(self.trials_task, note=f"last: trial {number} {shown}")

    def worker_done(self, worker: int, code: int, message: str) -> None:
        if code not in (0, 130) and message:
            self.failures.append(f"worker {worker}: {message}")

    def _index(self, task: int) -> int:
        return next(i for i, t in enumerate(self.progress.tasks) if t.id == task)
