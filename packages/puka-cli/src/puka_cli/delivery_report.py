"""What became of the messages a command sent: delivered, returned as unroutable, or failed.

`restore` and `shovel` keep one `DeliveryReport`, print its `summary` as one line on stderr and
exit with status 3 (`ExitCode.UNDELIVERED`) when a message was not delivered, so that nothing
is lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from puka_cli.checks import need_type
from puka_cli.errors import CliError
from puka_cli.exit_codes import ExitCode

__all__ = ["DeliveryReport"]


@dataclass
class DeliveryReport:
    """Counts of sent messages by outcome, and a description of the first one not delivered.

    `delivered`: confirmed by the broker (and routed, for mandatory publishes); `returned`:
    sent back as unroutable (312 NO_ROUTE); `failed`: refused (nacked), or in flight when the
    connection ended, so their fate is unknown.
    """

    delivered: int = 0
    returned: int = 0
    failed: int = 0
    first_problem: str | None = None

    @property
    def undelivered(self) -> int:
        """Messages returned or failed."""
        return self.returned + self.failed

    def note_problem(self, text: str) -> None:
        """Remember `text` if it describes the first message not delivered."""
        need_type(text, str, "text")
        if self.first_problem is None:
            self.first_problem = text

    def summary(self, verb: str) -> str:
        """The one-line summary, e.g. `restored 9, returned 1, failed 0`."""
        need_type(verb, str, "verb")
        return f"{verb} {self.delivered}, returned {self.returned}, failed {self.failed}"

    def counts(self, verb: str) -> dict[str, int]:
        """The counts for a JSON result, e.g. `{"restored": 9, "returned": 1, "failed": 0}`."""
        need_type(verb, str, "verb")
        return {verb: self.delivered, "returned": self.returned, "failed": self.failed}

    def check(self, verb: str) -> None:
        """Raise `CliError` (exit status 3) with the summary if any message was not delivered."""
        if self.undelivered:
            detail = f" (first: {self.first_problem})" if self.first_problem else ""
            raise CliError(self.summary(verb) + detail, ExitCode.UNDELIVERED)
