"""The one error type a user can cause, and how it reads.

Anything a user can get wrong (a bad file, a bad YAML field, an unknown architecture) raises
`VaeLabError` with a message that names where, what and the fix. The CLI prints it on one line
and exits with code 2; every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class VaeLabError(Exception):
    """A problem with the user's input, worded so the user can fix it.

    Args:
        where: the file, study or setting at fault (e.g. ``data/raw.csv`` or ``studies/quick.yaml: epochs``).
        problem: what is wrong, in a few words.
        fix: what to do about it.
    """

    def __init__(self, where: str, problem: str, fix: str | None = None):
        self.where, self.problem, self.fix = where, problem, fix
        message = f"{where}: {problem}"
        if fix:
            message += f" (fix: {fix})"
        super().__init__(message)
