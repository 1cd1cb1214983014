"""What every command-line tool shares: one-line usage errors, checked numeric flags and the
same quiet logging."""
import argparse
import logging
import warnings
from typing import Any, Callable, Mapping, NoReturn

from . import checks
from .checks import Check, CheckError

LOG_FORMAT = "[%(asctime)s] %(name)s %(levelname)s: %(message)s"


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; a user mistake gets a single line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def arg_type(check: Check) -> Callable[[str], Any]:
    """An argparse `type` running `check` on the flag's text; argparse reports a refusal as
    `prog: error: argument --flag: must be ... (got ...)`."""
    def convert(text: str) -> Any:
        try:
            return check(text)
        except CheckError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return convert


POSITIVE_INT = arg_type(checks.positive_int)
NON_NEGATIVE_INT = arg_type(checks.non_negative_int)
POSITIVE_NUMBER = arg_type(checks.positive_number)
NON_NEGATIVE_NUMBER = arg_type(checks.non_negative_number)
FRACTION = arg_type(checks.fraction)
SEED = arg_type(checks.seed)
DETECTION_SIZE = arg_type(checks.detection_size)


def check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace,
                rules: Mapping[str, Check]) -> None:
    """Rules argparse cannot apply value by value: on a flag's several numbers ("crop": the
    check gets the list) or on several flags ("val_fraction test_fraction": it gets both)."""
    for names, check in rules.items():
        flags = names.split()
        try:
            check(*(getattr(args, flag) for flag in flags))
        except CheckError as err:
            label = "argument" if len(flags) == 1 else "arguments"
            parser.error(f"{label} {' and '.join('--' + flag for flag in flags)}: {err}")


def setup_logging(verbose: bool = True) -> None:
    """INFO (or only warnings) from ppgan on stderr; call before `import paddle`."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format=LOG_FORMAT)
    # `import paddle` adds its own INFO handler; our level keeps it from leaking ppgan's logs.
    logging.getLogger("ppgan").setLevel(level)
    # Paddle warns at import that ccache (for building custom C++ ops) is missing: irrelevant.
    warnings.filterwarnings("ignore", message="No ccache found")
