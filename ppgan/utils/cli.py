"""What every command-line tool shares: one-line usage errors and the same quiet logging."""
import argparse
import logging
import warnings
from typing import NoReturn

LOG_FORMAT = "[%(asctime)s] %(name)s %(levelname)s: %(message)s"


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; a user mistake gets a single line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def setup_logging(verbose: bool = True) -> None:
    """INFO (or only warnings) from ppgan on stderr; call before `import paddle`."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format=LOG_FORMAT)
    # `import paddle` adds its own INFO handler; our level keeps it from leaking ppgan's logs.
    logging.getLogger("ppgan").setLevel(level)
    # Paddle warns at import that ccache (for building custom C++ ops) is missing: irrelevant.
    warnings.filterwarnings("ignore", message="No ccache found")
