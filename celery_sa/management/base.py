"""What celery_sa's commands share."""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandParser
from django.utils.functional import Promise


class TranslatedCommand(BaseCommand):
    """A command whose help is a lazy translation (``lazy_help``), rendered in the active
    language when its parser is made."""

    lazy_help: ClassVar[Promise]

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        self.help = str(self.lazy_help)  # argparse wraps the description with re: a real str
        return super().create_parser(prog_name, subcommand, **kwargs)
