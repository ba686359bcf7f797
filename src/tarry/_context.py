"""``tarry.Context``: what a function receives — its event, ids, steps and logger."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tarry._model import Event
from tarry._step import Step, current_attempt, current_step

if TYPE_CHECKING:
    from tarry._engine.execution import Execution


class Context:
    """Handed to every function call: ``ctx.event``, ``ctx.run_id``, ``ctx.step``...

    ``ctx.logger`` is a ``logging.Logger`` under the ``tarry`` logger; it stays
    quiet while the run replays steps it already recorded, so each line is
    logged once per run rather than once per resume. Its records carry
    ``run_id``, ``function_id`` and ``step_id`` (the recorded id of the step
    whose body logs, else ``None``).
    """

    def __init__(self, execution: Execution) -> None:
        self._x = execution
        self.event: Event = execution.event
        #: every event of a batch or debounce burst, in delivery order; else ``[ctx.event]``
        self.events: list[Event] = execution.events
        self.run_id: str = execution.run_id
        self.function_id: str = execution.spec.id
        self.step = Step(execution)
        self._logger: logging.Logger | None = None

    @property
    def logger(self) -> logging.Logger:
        """A logger (``tarry.function.<id>``) that is silent while recorded steps are replayed; its
        records carry ``run_id``, ``function_id`` and ``step_id``."""
        if self._logger is None:  # made on first use: most executions never log
            execution, run_id, function_id = self._x, self.run_id, self.function_id

            def stamp(record: logging.LogRecord) -> bool:
                if execution.replaying:
                    return False
                record.run_id, record.function_id, record.step_id = run_id, function_id, current_step.get()
                return True

            self._logger = logging.Logger(f"tarry.function.{self.function_id}")
            self._logger.parent = logging.getLogger("tarry")
            self._logger.addFilter(stamp)
        return self._logger

    @property
    def attempt(self) -> int:
        """0 on the first attempt of the step now running, 1 on its first retry, and so on."""
        return current_attempt.get()

    def __repr__(self) -> str:
        return f"<Context run={self.run_id} function={self.function_id} event={self.event.name}>"
