"""The base of the errors that mean "the user's input is wrong" (a file, a flag, a setting):
command-line tools print them on one line and exit 2 (`utils/cli.run_main`)."""


class UserError(Exception):
    """Something the user can fix; the message says what, on one line."""


def one_line(message: object) -> str:
    """A message as one line: a user error is printed on a single line of the terminal."""
    return " ".join(str(message).split())
