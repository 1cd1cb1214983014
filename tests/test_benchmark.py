"""tools/benchmark_wav2lip.py runs on a tiny setting and reports every figure README.md quotes.

The figures themselves are measurements, not asserted here (speed is measured with the
benchmark, not with timed tests); only that each one is produced and plausible.
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys

from media import stop_when

from ppgan.utils.cpu import bf16_outruns_fp32, cpu_name, has_bf16_units

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "benchmark_wav2lip", os.path.join(ROOT, "tools", "benchmark_wav2lip.py"))
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    return benchmark


def test_benchmark_reports_generator_detectors_and_end_to_end(tmp_path, monkeypatch):
    benchmark = load_benchmark()
    report = tmp_path / "report.json"
    monkeypatch.setattr("sys.argv", ["benchmark_wav2lip.py", "--workdir", str(tmp_path), "--clips", "1",
                                     "--clip_1080p", "0", "--batch", "16", "--detectors", "mtcnn",
                                     "--enhancers", "", "--e2e_enhanced_seconds", "0",
                                     "--stream_seconds", "1", "--skip-int8",
                                     "--json", str(report)])
    assert benchmark.main() == 0
    results = json.loads(report.read_text())
    speeds = results["frames_per_second"]
    torch_version = __import__("torch").__version__
    label = "batch 16 in 16-frame steps"
    auto = results["generator"]["auto_precision"]
    assert auto == ("bf16" if bf16_outruns_fp32() else "fp32")
    precisions = ("fp32", "bf16") if has_bf16_units() else ("fp32",)  # bf16 only with its units
    assert {*(f"generator (PyTorch {torch_version} {p}, the original's layers, batch 16)"
              for p in precisions),
            *(f"generator (static {p}, {label})" for p in precisions),
            *(f"generator (static {p}, lower face for the mouth blend, {label})"
              for p in precisions),
            f"generator (static {auto}, photo: face encoded once, lower face, {label})",
            f"generator (eager fp32, {label})",
            "mtcnn (full 720p)", "mtcnn (longest side 360)"} == set(speeds)
    lower_face = {p: speeds[f"generator (static {p}, lower face for the mouth blend, {label})"]
                  for p in precisions}
    assert results["generator"]["fastest_of_fp32_and_bf16"] == max(lower_face, key=lower_face.get)
    differences = results["generator"]["difference_from_static_fp32"]
    bf16_rows = {"bf16", "bf16 lower face"} if "bf16" in precisions else set()
    assert set(differences) == {"fp32 lower face"} | bf16_rows  # --skip-int8
    for off in differences.values():
        assert 0 <= off["mean_levels"] <= off["max_levels"] <= 255
    assert differences["fp32 lower face"]["max_levels"] < 0.01  # the same rows, computed alone
    assert results["generator"]["auto_vs_fastest_pytorch"] > 0
    assert results["generator"]["auto_lower_face_vs_fastest_pytorch"] > 0
    assert cpu_name() in results["machine"]
    assert all(value > 0 for value in speeds.values())
    end_to_end = results["end_to_end_720p_1s"]
    assert end_to_end["wall_seconds"] > 0 and end_to_end["peak_rss_mb"] > 100
    stages = end_to_end["stage_seconds"]
    assert list(stages) == [name for _, name in benchmark.STAGE_BARS] + [benchmark.LAST_STAGE]
    assert all(value > 0 for value in stages.values())
    assert abs(sum(stages.values()) - end_to_end["wall_seconds"]) < 1e-6
    assert end_to_end["ffmpeg_peak_rss_mb"] > 0  # the writer process was sampled too
    assert os.path.isfile(tmp_path / "out_face_720p_1s.mp4")
    for face in ("photo", "video"):
        stream = results[f"stream_720p_{face}_1s"]
        latency = stream["paced: latency, audio to frame, s (median, 95th percentile, max)"]
        assert 0.2 < latency[0] <= latency[1] <= latency[2]  # a frame waits for its 0.2 s window
        assert stream["paced: frames/s over the stream"] > 0
        assert stream["unpaced: sustained frames/s"] > 0


def test_bf16_is_timed_only_where_onednn_may_use_bf16_units(monkeypatch):
    benchmark = load_benchmark()
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    assert benchmark.cpu_precisions() == (("fp32", "bf16") if has_bf16_units() else ("fp32",))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # as on a CPU with AVX2 only
    assert benchmark.cpu_precisions() == ("fp32",) == benchmark._detector_precisions("sfd", False)
    assert benchmark._detector_precisions("sfd", True) == ("fp32", "int8")
    assert benchmark._detector_precisions("mtcnn", True) == (None,)


def test_a_failed_run_is_reported_and_the_others_go_on(tmp_path):
    """A run that fails (here: a detector the command does not know), end to end or streamed,
    is recorded with its reason; the results are still written, and the status says which
    failed."""
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark_wav2lip.py"),
                           "--workdir", str(tmp_path), "--clips", "1,2", "--clip_1080p", "0",
                           "--skip-generator", "--skip-detectors", "--enhancers", "",
                           "--e2e_enhanced_seconds", "0", "--stream_seconds", "1",
                           "--e2e_detector", "nosuch", "--json", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "benchmark_wav2lip: error: run(s) failed: stream_720p_photo_1s, stream_720p_video_1s, "
        "end_to_end_720p_1s, end_to_end_720p_2s (their reasons are in the results)")
    results = json.loads(report.read_text())
    for face in ("photo", "video"):
        failed = results[f"stream_720p_{face}_1s"]["failed"]
        assert failed.startswith("exit 2: benchmark_wav2lip: error: ") and "nosuch" in failed
    for seconds in (1, 2):
        failed = results[f"end_to_end_720p_{seconds}s"]["failed"]
        assert failed.startswith("exit 2: wav2lip.py: error: ") and "nosuch" in failed


def test_sigterm_stops_the_benchmark_and_its_run(tmp_path):
    """The end-to-end run in progress is stopped too, and no half-written clip or output stays
    in the working folder (a later benchmark would reuse a half-written clip)."""
    def writing_output():
        return any(name.startswith(".out_") for name in os.listdir(tmp_path))

    code, err = stop_when([sys.executable, os.path.join(ROOT, "tools", "benchmark_wav2lip.py"),
                           "--workdir", str(tmp_path), "--clips", "2", "--clip_1080p", "0",
                           "--skip-generator", "--skip-detectors", "--enhancers", "",
                           "--e2e_enhanced_seconds", "0", "--stream_seconds", "0"], writing_output)
    assert code == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "benchmark_wav2lip: interrupted: no results written"
    assert not [name for name in os.listdir(tmp_path) if ".part" in name]
    survivors = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout
    assert survivors == ""
