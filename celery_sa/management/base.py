"""What celery_sa's commands share."""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandParser, OutputWrapper
from django.core.management.color import no_style
from django.utils.functional import Promise

from celery_sa.management.output import EscapingOutput


class TranslatedCommand(BaseCommand):
    """A celery_sa command: its help is a lazy translation (``lazy_help``), rendered in the
    active language when its parser is made, and its ``stdout`` and ``stderr`` show control
    characters escaped (:class:`~celery_sa.management.output.EscapingOutput`): what it
    prints of the result table cannot drive the terminal."""

    lazy_help: ClassVar[Promise]
    _stdout: EscapingOutput
    _stderr: EscapingOutput

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        self.help = str(self.lazy_help)  # argparse wraps the description with re: a real str
        return super().create_parser(prog_name, subcommand, **kwargs)

    # Properties: BaseCommand sets its streams in __init__, and again in execute() when
    # call_command passes stdout= or stderr=; each wrapper it sets is made an escaping one.
    @property
    def stdout(self) -> EscapingOutput:
        return self._stdout

    @stdout.setter
    def stdout(self, wrapper: OutputWrapper) -> None:
        self._stdout = EscapingOutput.over(wrapper)

    @property
    def stderr(self) -> EscapingOutput:
        return self._stderr

    @stderr.setter
    def stderr(self, wrapper: OutputWrapper) -> None:
        self._stderr = EscapingOutput.over(wrapper)

    def check(self, *args: Any, **kwargs: Any) -> None:
        # Django colours its system check report before writing it, and escaping would show
        # the colour codes: uncoloured here, it is escaped like the rest (a check may quote
        # the database's error message).
        style, self.style = self.style, no_style()
        try:
            super().check(*args, **kwargs)
        finally:
            self.style = style
