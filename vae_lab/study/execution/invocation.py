"""One invocation of `study run`, whatever runs its trials: start, crown, launch, finish, crown.

Every launcher (one worker in this process, `--workers N` processes on this machine, and any
later engine) goes through `run_invocation`, so they agree on what an invocation does:

1. open the study (`StudySession.open`: dead workers' trials settled, what is left planned);
2. crown the stored trials by the spec's rule (a changed `champion:` re-crowns without training);
3. with nothing left to run, stop there: an unmet rule is the invocation's error;
4. start the parent run, let the launcher run the trials, end the parent run with their outcome
   (KILLED on Ctrl-C, FAILED on a bug);
5. crown again and raise an unmet rule, then report.

A launcher only runs trials: it gets the open session (for the parent run's id and the planned
count) and returns a `Launch` (tags for the parent run, an error to raise once it is closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from vae_lab.study.execution.admission import Admission
from vae_lab.study.execution.events import ProgressSink
from vae_lab.study.execution.session import StudyReport, StudySession
from vae_lab.study.trial.provenance import RunStatus


@dataclass
class Launch:
    """How a launcher's trials went, as the parent run records it."""

    tags: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None  # raised after the parent run is closed
    interrupted: bool = False


class Launcher(Protocol):
    """Runs an invocation's trials (see the module docstring)."""

    workers: int

    def tags(self) -> dict[str, Any]:
        """Tags for the parent run when it starts (e.g. how many workers)."""
        ...

    def launch(self, session: StudySession, n_trials: int | None) -> Launch: ...


def run_invocation(
    admission: Admission, launcher: Launcher, sink: ProgressSink, n_trials: int | None = None
) -> StudyReport:
    """Run (or resume) the admitted study with `launcher`; returns its trials and champion."""
    with StudySession.open(admission, n_trials) as session:
        crowning = session.crown()
        sink.study_start(admission.spec.name, session.remaining, session.done, launcher.workers)
        if session.remaining == 0:
            if crowning is not None and crowning.unmet is not None:
                raise crowning.unmet  # one line; the trials and the previous champion stay
            return session.report()
        session.start_invocation(launcher.tags())
        status, outcome = RunStatus.FAILED, Launch()
        try:
            outcome = launcher.launch(session, n_trials)
            status = RunStatus.KILLED if outcome.interrupted else RunStatus.FINISHED
        except KeyboardInterrupt:
            status = RunStatus.KILLED
            raise
        finally:
            session.finish_invocation(status, outcome.tags)
        if outcome.interrupted:
            raise KeyboardInterrupt
        if outcome.error is not None:
            raise outcome.error
        if (crowning := session.crown()) is not None and crowning.unmet is not None:
            raise crowning.unmet
        return session.report()
