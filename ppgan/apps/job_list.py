"""Many lip-sync jobs in one process from a CSV job list (`wav2lip.py --jobs jobs.csv`).

The list's header names its columns: `face`, `audio` and `outfile`, then any flag of the command
(without dashes) whose value changes from job to job: `pads`, `static`, `box`, `blend`... A cell
reads as the flag's text on the command line (`0 20 0 0` for `pads`; `yes` or `no` for a
switch), parsed by the command's own parser, so it is checked and refused with the same message;
an empty cell keeps the command line's value. Flags that choose the loaded networks cannot be
columns. Relative paths are relative to the list's folder.

A job that fails on a user error (a missing file, no face, a bad cell) is reported in one line
and skipped; anything else (a full disk, Ctrl-C, a bug) stops the list.
"""
import argparse
import copy
import csv
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Collection, Dict, List, Tuple

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..utils.cli import USER_ERRORS, ArgumentsError, OneLineParser, describe
from ..utils.errors import UserError

logger = logging.getLogger(__name__)

PATH_COLUMNS = ("face", "audio", "outfile")
SWITCH_CELLS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}


class JobListError(UserError):
    """A job list that cannot run at all (no header, an unknown column...): no job runs."""


@dataclass(frozen=True)
class Job:
    """One row of a job list: its line in the file and its cells (stripped, paths as written)."""
    line: int
    cells: Dict[str, str]

    def __str__(self) -> str:
        return " + ".join(self.cells[name] or "?" for name in PATH_COLUMNS[:2]) + \
            f" -> {self.cells['outfile'] or '?'}"


@dataclass(frozen=True)
class JobFlags:
    """How a row's cells become a job's arguments: the command's `parser` reads them over the
    `command_line`'s arguments; the `fixed` flags (which choose the loaded networks) cannot be
    columns."""
    parser: OneLineParser
    command_line: argparse.Namespace
    fixed: Collection[str]

    def columns(self) -> Dict[str, argparse.Action]:
        """The flags a column may name, by column name (the flag without its dashes)."""
        return {option[2:]: action
                for action in self.parser._actions  # argparse lists its flags nowhere public
                for option in action.option_strings
                if option.startswith("--") and action.dest != "help"
                and option[2:] not in self.fixed}

    def arguments(self, job: Job, folder: str) -> argparse.Namespace:
        """The job's arguments: the command line's, with the row's cells parsed over them and
        its paths resolved against `folder`; ArgumentsError for a cell its flag refuses."""
        columns = self.columns()
        namespace, tokens = copy.copy(self.command_line), []
        for name, cell in job.cells.items():
            action = columns[name]
            if name in PATH_COLUMNS:
                if not cell:
                    raise ArgumentsError(f"the {name} cell is empty")
                tokens.append(f"--{name}={os.path.join(folder, cell)}")
            elif not cell:
                continue
            elif action.nargs == 0:  # a switch
                if cell.lower() not in SWITCH_CELLS:
                    raise ArgumentsError(f"argument --{name}: must be yes or no (got {cell})")
                if SWITCH_CELLS[cell.lower()]:
                    tokens.append(f"--{name}")
                else:
                    setattr(namespace, action.dest, action.default)
            elif action.nargs is None:
                tokens.append(f"--{name}={cell}")
            else:
                tokens += [f"--{name}", *cell.split()]
        with self.parser.errors_raised():
            return self.parser.parse_args(tokens, namespace)


def read_job_list(path: str, flags: JobFlags) -> List[Job]:
    """The jobs of the CSV at `path`, checked as a whole: JobListError if it cannot run (not
    found, not CSV, no header or no jobs, a missing, unknown, fixed or repeated column, a row
    with another number of cells, two jobs writing the same file)."""
    rows = _rows(path)
    if not rows:
        raise JobListError(f"the job list {path} is empty: it needs a header line naming the "
                           f"columns {','.join(PATH_COLUMNS)} and a line per job")
    (_, header), body = rows[0], rows[1:]
    _check_header(path, header, flags)
    if not body:
        raise JobListError(f"the job list {path} has a header but no jobs")
    jobs = []
    for line, cells in body:
        if len(cells) != len(header):
            raise JobListError(f"{path} line {line}: {len(cells)} cells where the header has "
                               f"{len(header)}")
        jobs.append(Job(line, dict(zip(header, cells))))
    _check_outfiles(path, jobs)
    return jobs


def _rows(path: str) -> List[Tuple[int, List[str]]]:
    """(line, stripped cells) of each non-blank row."""
    try:
        # utf-8-sig: spreadsheets start their CSV files with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            return [(reader.line_num, [cell.strip() for cell in row])
                    for row in reader if any(cell.strip() for cell in row)]
    except FileNotFoundError:
        raise JobListError(f"job list not found: {path}") from None
    except IsADirectoryError:
        raise JobListError(f"the job list is a folder: {path}") from None
    except UnicodeDecodeError:
        raise JobListError(f"the job list {path} is not UTF-8 text") from None
    except csv.Error as err:
        raise JobListError(f"the job list {path} is not CSV: {err}") from None


def _check_header(path: str, header: List[str], flags: JobFlags) -> None:
    columns = flags.columns()
    for name in header:
        if header.count(name) > 1:
            raise JobListError(f"{path}: the column '{name}' appears twice")
        if name in flags.fixed:
            raise JobListError(f"{path}: the column '{name}' cannot vary per job (it chooses the "
                               f"loaded networks): give --{name} on the command line")
        if name not in columns:
            raise JobListError(f"{path}: unknown column '{name}' (the columns are "
                               f"{', '.join(PATH_COLUMNS)} and flags of the command without "
                               "their dashes, such as pads or static)")
    missing = [name for name in PATH_COLUMNS if name not in header]
    if missing:
        raise JobListError(f"{path}: no column {' or '.join(missing)} (the header names the "
                           f"columns {', '.join(PATH_COLUMNS)}, then any per-job flags)")


def _check_outfiles(path: str, jobs: List[Job]) -> None:
    """Two jobs writing one file would lose the first one's work."""
    folder = os.path.dirname(os.path.abspath(path))
    written: Dict[str, int] = {}
    for job in jobs:
        if not job.cells["outfile"]:
            continue  # that job fails on its own
        outfile = os.path.normpath(os.path.join(folder, job.cells["outfile"]))
        if outfile in written:
            raise JobListError(f"{path} lines {written[outfile]} and {job.line} write the same "
                               f"outfile: {job.cells['outfile']}")
        written[outfile] = job.line


@dataclass
class JobResults:
    """What a job list did: the files written, and the jobs that failed with their reasons."""
    path: str
    written: List[str] = field(default_factory=list)
    failed: List[Tuple[Job, str]] = field(default_factory=list)

    def summary(self) -> List[str]:
        total = len(self.written) + len(self.failed)
        lines = [f"wrote {outfile}" for outfile in self.written]
        lines.append(f"{self.path}: {len(self.written)} of {total} jobs done"
                     + (f", {len(self.failed)} failed:" if self.failed else ""))
        lines += [f"line {job.line}: {job}: {reason}" for job, reason in self.failed]
        return lines


def run_job_list(path: str, jobs: List[Job], flags: JobFlags,
                 run: Callable[[argparse.Namespace], str]) -> JobResults:
    """Run each job: `run(arguments)` writes its output and returns the path. A job that fails on
    a user error is logged and skipped; anything else stops the list (after a line saying
    where), its running job leaving no output."""
    folder = os.path.dirname(os.path.abspath(path))
    results = JobResults(path)
    with logging_redirect_tqdm(), tqdm(total=len(jobs), desc="jobs", unit="job") as progress:
        for number, job in enumerate(jobs, 1):
            name = f"job {number}/{len(jobs)} (line {job.line}) {job}"
            start = time.monotonic()
            try:
                results.written.append(run(flags.arguments(job, folder)))
                logger.info("%s: done in %.1f s", name, time.monotonic() - start)
            except USER_ERRORS as err:
                results.failed.append((job, describe(err)))
                logger.warning("%s: failed: %s", name, describe(err))
            except BaseException:
                logger.warning("%s: stopped; %d job(s) done before it, %d failed", name,
                               len(results.written), len(results.failed))
                raise
            progress.update()
    return results
