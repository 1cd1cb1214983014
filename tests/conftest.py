import logging
import os
import shutil
import signal
import warnings

import pytest

# Paddle warns at import that ccache (a build cache for custom C++ ops) is missing: not relevant.
warnings.filterwarnings("ignore", message="No ccache found")

import paddle  # noqa: E402

# A suite started under `nohup` inherits an ignored SIGHUP, and one started in the background an
# ignored SIGINT, which the tools rightly keep ignoring; the tests of stops need them as a
# terminal delivers them (Python installs its Ctrl-C handler only when SIGINT was not ignored).
if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Downloads and exported models go to a temporary cache, never the user's ~/.cache/ppgan."""
    os.environ["PPGAN_HOME"] = str(tmp_path_factory.mktemp("ppgan_home"))


_PPGAN_LOGGER = logging.getLogger("ppgan")
_BASELINE = (list(_PPGAN_LOGGER.handlers), _PPGAN_LOGGER.propagate, _PPGAN_LOGGER.level)


@pytest.fixture(autouse=True)
def restore_ppgan_logger():
    """Training runs in-process configure the `ppgan` logger as tools/main.py does (own handlers,
    no propagation), possibly from module-scoped fixtures; reset it to how the session found it
    around every test, so each test's caplog sees the logs."""
    _reset_logger()
    yield
    _reset_logger()


def _reset_logger():
    handlers, propagate, level = _BASELINE
    for handler in list(_PPGAN_LOGGER.handlers):
        if handler not in handlers:
            _PPGAN_LOGGER.removeHandler(handler)
            handler.close()
    _PPGAN_LOGGER.propagate, _PPGAN_LOGGER.level = propagate, level


def _ffmpeg_builds():
    """The ffmpeg binaries to run `ffmpeg`-marked tests with: the bundled one (the default) and
    the system's, when there is one (CI installs Debian's, the build whose AAC decoding differed)."""
    import imageio_ffmpeg

    builds = {"bundled": imageio_ffmpeg.get_ffmpeg_exe()}
    system = shutil.which("ffmpeg")
    if system and os.path.realpath(system) != os.path.realpath(builds["bundled"]):
        builds["system"] = system
    return builds


FFMPEG_BUILDS = _ffmpeg_builds()


def pytest_configure(config):
    config.addinivalue_line("markers", "ffmpeg: run once per ffmpeg build on the machine "
                                       "(PPGAN_FFMPEG set to each; media made with it too)")
    config.addinivalue_line("markers", "one_build: in an `ffmpeg` module, run with the bundled "
                                       "build only (what it checks does not depend on the build)")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("ffmpeg"):
        builds = ["bundled"] if metafunc.definition.get_closest_marker("one_build") \
            else list(FFMPEG_BUILDS)
        metafunc.parametrize("ffmpeg_build", builds, indirect=True, scope="module")


@pytest.fixture(scope="module", autouse=True)
def ffmpeg_build(request):
    """Point PPGAN_FFMPEG at one build for a module's tests (and the CLIs they start); the
    module's own fixtures that make media run after this one, so they use it too."""
    from ppgan.utils.ffmpeg_tools import ffmpeg_exe

    name = getattr(request, "param", None)
    if name is None:
        yield None
        return
    previous = os.environ.get("PPGAN_FFMPEG")
    os.environ["PPGAN_FFMPEG"] = FFMPEG_BUILDS[name]
    ffmpeg_exe.cache_clear()
    yield name
    if previous is None:
        os.environ.pop("PPGAN_FFMPEG")
    else:
        os.environ["PPGAN_FFMPEG"] = previous
    ffmpeg_exe.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def cpu_device():
    paddle.set_device("cpu")
    paddle.set_flags({"FLAGS_paddle_num_threads": 2})


def _import_script(module_name: str, *path: str) -> None:
    """Make a script of the repository importable as `module_name` for in-process runs."""
    import importlib.util
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(root, *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module


_import_script("applications_cli", "applications", "tools", "wav2lip.py")
_import_script("tools_main", "tools", "main.py")
