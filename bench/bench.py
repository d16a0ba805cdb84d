"""Measure mlflowreg, the Python mlflow client and curl side by side on one server.

Run through bench/run.sh, which installs what is missing, builds the R package,
starts a loopback MLflow server and calls this script with its URI. Every
request goes to that server on 127.0.0.1.

Scenarios (all three clients do the same work in each):
  model    log and register a model of about 1 MiB
  file     log one file of 1 GiB
  dir      log 2,000 files of 4 KiB
  predict  a warm single-row predict through the pyfunc loader's R worker,
           against one Rscript process per predict (the loader's former design)

mlflowreg runs in an R session (bench/client_mlflowreg.R), Python mlflow in a
Python session (bench/client_python.py); both time each repeat inside the
session, after a warm-up. Each scenario runs in rounds, with the order of the
three clients rotated from round to round, so a change of load on the machine
during the run weighs on all of them alike. curl is the floor: `curl -T` for the file, one curl
process with --parallel for the 2,000 files, and for the model the same REST
calls that mlflowreg makes, one curl process per call. The results replace
the block between the bench markers in BENCHMARKS.md; the rest of that file
is kept.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BEGIN_MARK = "<!-- bench:begin (written by bench/bench.py; edits inside are replaced) -->"
END_MARK = "<!-- bench:end -->"

MIB = 1 << 20
GIB = 1 << 30
SMALL_FILES = 2000
SMALL_FILE_SIZE = 4096


def log(message):
    print(f"bench: {message}", flush=True)


# REST calls the driver makes itself (setup, and the curl replay's run)


def rest(base, method, endpoint, body=None):
    url = f"{base}/api/2.0/mlflow/{endpoint}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read().decode()
    return json.loads(text) if text.strip() else {}


def experiment_id(base, name):
    try:
        found = rest(base, "GET", f"experiments/get-by-name?experiment_name={name}")
        return found["experiment"]["experiment_id"]
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise
    return rest(base, "POST", "experiments/create", {"name": name})["experiment_id"]


def create_run(base, experiment):
    run = rest(base, "POST", "runs/create", {"experiment_id": experiment, "start_time": int(time.time() * 1000)})
    return run["run"]["info"]


def artifact_url(base, artifact_uri, relative):
    path = artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
    return f"{base}/api/2.0/mlflow-artifacts/artifacts/{path}/{relative}"


# Test data


def prepare_data(work):
    work.mkdir(parents=True, exist_ok=True)
    big = work / "big.bin"
    if not big.exists() or big.stat().st_size != GIB:
        log(f"writing {big} (1 GiB of random bytes)")
        with open(big, "wb") as handle:
            for _ in range(GIB // (16 * MIB)):
                handle.write(os.urandom(16 * MIB))
    small = work / "small"
    if not small.is_dir() or len(list(small.iterdir())) != SMALL_FILES:
        shutil.rmtree(small, ignore_errors=True)
        small.mkdir()
        for index in range(SMALL_FILES):
            (small / f"f{index:04d}.bin").write_bytes(os.urandom(SMALL_FILE_SIZE))
    return big, small


# Clients


def run_client(command, output, env):
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(Path(output).read_text())


def r_env(args):
    return dict(os.environ, R_LIBS=str(args.r_library))


def mlflowreg_client(args, scenario, data, repeats, scratch):
    output = scratch / f"mlflowreg-{scenario}.json"
    command = ["Rscript", str(ROOT / "bench/client_mlflowreg.R"), scenario, args.tracking_uri, str(data),
               str(repeats), str(output)]
    return run_client(command, output, r_env(args))


def python_client(args, scenario, data, repeats, scratch):
    output = scratch / f"python-{scenario}.json"
    command = [sys.executable, str(ROOT / "bench/client_python.py"), scenario, args.tracking_uri, str(data),
               str(repeats), str(output)]
    return run_client(command, output, dict(os.environ))


def timed_process(command):
    """Run a command and return (seconds, peak RSS in bytes of that process)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace")
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed with status {process.returncode}: {stderr}")
    return seconds, usage.ru_maxrss * 1024


def curl_file(args, big, repeats):
    experiment = experiment_id(args.tracking_uri, "bench-file-curl")
    results = []
    for _ in range(repeats):
        run = create_run(args.tracking_uri, experiment)
        url = artifact_url(args.tracking_uri, run["artifact_uri"], "data/big.bin")
        seconds, peak = timed_process(["curl", "-sS", "-f", "-o", "/dev/null", "-T", str(big), url])
        rest(args.tracking_uri, "POST", "runs/update", {"run_id": run["run_id"], "status": "FINISHED"})
        results.append({"seconds": seconds, "peak_rss_bytes": peak})
        clean_server_artifacts(args)
    return results


def curl_dir(args, small, repeats, workers, scratch):
    experiment = experiment_id(args.tracking_uri, "bench-dir-curl")
    results = []
    for _ in range(repeats):
        run = create_run(args.tracking_uri, experiment)
        config = scratch / "curl-dir.conf"
        with open(config, "w", encoding="utf-8") as handle:
            for path in sorted(small.iterdir()):
                handle.write(f'upload-file = "{path}"\n')
                handle.write(f'url = "{artifact_url(args.tracking_uri, run["artifact_uri"], "data/" + path.name)}"\n')
                handle.write('output = "/dev/null"\n')
        command = ["curl", "-sS", "-f", "--parallel", "--parallel-max", str(workers), "-K", str(config)]
        seconds, peak = timed_process(command)
        rest(args.tracking_uri, "POST", "runs/update", {"run_id": run["run_id"], "status": "FINISHED"})
        results.append({"seconds": seconds, "peak_rss_bytes": peak})
    return results


def curl_model(args, model_dir, repeats):
    """Replay mlflowreg's requests for log + register, one curl process per request."""
    experiment = experiment_id(args.tracking_uri, "bench-model-curl")
    base = args.tracking_uri
    files = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file())
    files.remove("MLmodel")
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())

    def curl_json(method, endpoint, body):
        command = ["curl", "-sS", "-o", "/dev/null", "-X", method, "-H", "Content-Type: application/json",
                   "--data", json.dumps(body), f"{base}/api/2.0/mlflow/{endpoint}"]
        # registered-models/create returns 400 once the model exists, as it
        # does for mlflowreg, so the status is not checked.
        subprocess.run(command, check=True)

    def replay():
        created = subprocess.run(
            ["curl", "-sS", "-f", "-X", "POST", "-H", "Content-Type: application/json", "--data",
             json.dumps({"experiment_id": experiment, "start_time": int(time.time() * 1000)}),
             f"{base}/api/2.0/mlflow/runs/create"],
            check=True, capture_output=True, text=True,
        )
        run = json.loads(created.stdout)["run"]["info"]
        subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null",
                        f"{base}/api/2.0/mlflow/runs/get?run_id={run['run_id']}"], check=True)
        curl_json("POST", "registered-models/create", {"name": "bench-curl"})
        for relative in files:
            subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-T", str(model_dir / relative),
                            artifact_url(base, run["artifact_uri"], "model/" + relative)], check=True)
        mlmodel.update({"run_id": run["run_id"], "artifact_path": "model",
                        "utc_time_created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")})
        mlmodel_path = Path(tempfile.mkstemp(suffix=".yaml")[1])
        mlmodel_path.write_text(yaml.safe_dump(mlmodel))
        subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-T", str(mlmodel_path),
                        artifact_url(base, run["artifact_uri"], "model/MLmodel")], check=True)
        mlmodel_path.unlink()
        curl_json("POST", "runs/log-model", {"run_id": run["run_id"], "model_json": json.dumps(mlmodel)})
        curl_json("POST", "model-versions/create", {
            "name": "bench-curl", "source": f"{run['artifact_uri']}/model", "run_id": run["run_id"]})
        curl_json("POST", "runs/update", {"run_id": run["run_id"], "status": "FINISHED",
                                          "end_time": int(time.time() * 1000)})

    replay()
    results = []
    for _ in range(repeats):
        started = time.perf_counter()
        replay()
        results.append({"seconds": time.perf_counter() - started})
    return results


def in_rounds(args, repeats, clients, after_each=None):
    """Run every client `repeats` times per round for `args.rounds` rounds,
    rotating their order each round, and pool the results by client."""
    names = list(clients)
    pooled = {name: [] for name in names}
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            pooled[name].extend(clients[name](repeats))
            if after_each:
                after_each()
    return pooled


def clean_server_artifacts(args):
    """Delete the files the server stored, so 1 GiB uploads do not fill the disk."""
    if args.server_artifacts and args.server_artifacts.is_dir():
        for child in args.server_artifacts.iterdir():
            shutil.rmtree(child, ignore_errors=True)


# Pyfunc predict


def predict_latency(args, model_dir, warm_repeats, cold_repeats):
    import pandas as pd

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow.pyfunc

    frame = pd.DataFrame({"wt": [2.5], "hp": [110]})
    model = mlflow.pyfunc.load_model(str(model_dir))
    started = time.perf_counter()
    model.predict(frame)
    first = time.perf_counter() - started
    warm = []
    for _ in range(warm_repeats):
        started = time.perf_counter()
        model.predict(frame)
        warm.append(time.perf_counter() - started)

    # One Rscript per call, as the loader did before it kept a worker: the
    # script's one-shot mode with input and output files.
    sys.path.insert(0, str(model_dir / "code"))
    import mlflowreg_pyfunc as loader

    per_call = []
    with tempfile.TemporaryDirectory() as work:
        input_path = Path(work) / "input.bin"
        input_path.write_bytes(loader._encode_data_frame(frame))
        command = ["Rscript", "--vanilla", str(model_dir / "code/mlflowreg_predict.R"), str(model_dir / "crate.bin"),
                   str(input_path), str(Path(work) / "output.bin"), str(Path(work) / "error.txt")]
        for _ in range(cold_repeats):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            loader._decode_exchange((Path(work) / "output.bin").read_bytes())
            per_call.append(time.perf_counter() - started)
    return {"first": first, "warm": warm, "per_call": per_call}


# Report


def command_output(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not found"


def machine_facts():
    cpu = "unknown"
    for line in command_output(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    memory = "unknown"
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    import mlflow

    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": memory,
        "kernel": platform.release(),
        "r": command_output(["R", "--version"]).splitlines()[0],
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "curl": command_output(["curl", "--version"]).splitlines()[0],
        "rustc": command_output(["rustc", "--version"]),
        "mlflowreg": command_output(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
    }


def median(values):
    return statistics.median(values) if values else float("nan")


def seconds_text(value):
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def mib_text(value):
    return f"{value / MIB:.1f} MiB"


def verdict(ok):
    return "met" if ok else "**missed**"


def render(results, facts, args, load_before, load_after, started, duration):
    lines = [BEGIN_MARK, ""]
    lines.append(f"Run on {started:%Y-%m-%d %H:%M} UTC, {duration:.0f} s, with `{args.command}`.")
    lines.append("")
    lines.append("| machine | |")
    lines.append("| --- | --- |")
    for key in ("cpu", "memory", "kernel", "r", "python", "mlflow", "curl", "rustc", "mlflowreg"):
        lines.append(f"| {key} | {facts[key]} |")
    lines.append(f"| load average (1, 5, 15 min) before | {load_before} |")
    lines.append(f"| load average after | {load_after} |")
    lines.append(f"| server | `mlflow server` {facts['mlflow']} on 127.0.0.1, {args.server_workers} workers, "
                 "SQLite backend, artifacts proxied to a local directory |")
    lines.append("")
    lines.append("Times are medians over the repeats (in parentheses: fastest and slowest). RSS growth is the "
                 "largest increase of the client process's resident set size during a repeat; for curl it is "
                 "the whole curl process's peak.")
    lines.append("")

    targets = []
    if "model" in results:
        r = results["model"]
        lines.append(f"### 1 MiB model, logged and registered ({len(r['mlflowreg'])} repeats per client)")
        lines.append("")
        lines.extend(client_table(r, "time"))
        ratio_python = median_of(r, "mlflowreg") / median_of(r, "python")
        ratio_curl = median_of(r, "mlflowreg") / median_of(r, "curl")
        lines.append("")
        lines.append(f"mlflowreg / Python: **{ratio_python:.2f}×**; mlflowreg / curl replay: {ratio_curl:.2f}×.")
        lines.append("")
        targets.append(("1 MiB log + register: mlflowreg time ≤ 0.7× Python's", f"{ratio_python:.2f}×",
                        verdict(ratio_python <= 0.7)))
    if "file" in results:
        r = results["file"]
        lines.append(f"### 1 GiB file logged ({len(r['mlflowreg'])} repeats per client)")
        lines.append("")
        lines.extend(client_table(r, "throughput"))
        throughput = {name: GIB / median_of(r, name) for name in r}
        ratio_curl = throughput["mlflowreg"] / throughput["curl"]
        growth = max(x["rss_growth_bytes"] for x in r["mlflowreg"])
        lines.append("")
        lines.append(f"mlflowreg throughput / curl's: **{ratio_curl:.2f}×**; / Python's: "
                     f"{throughput['mlflowreg'] / throughput['python']:.2f}×. Largest RSS growth of mlflowreg: "
                     f"**{mib_text(growth)}**.")
        lines.append("")
        targets.append(("1 GiB upload: throughput ≥ 0.9× curl's", f"{ratio_curl:.2f}×", verdict(ratio_curl >= 0.9)))
        targets.append(("1 GiB upload: peak RSS growth ≤ 64 MiB", mib_text(growth), verdict(growth <= 64 * MIB)))
    if "dir" in results:
        r = results["dir"]
        lines.append(f"### 2,000 files of 4 KiB logged ({len(r['mlflowreg'])} repeats per client)")
        lines.append("")
        lines.extend(client_table(r, "time"))
        ratio_python = median_of(r, "mlflowreg") / median_of(r, "python")
        lines.append("")
        lines.append(f"mlflowreg / Python: **{ratio_python:.2f}×**; mlflowreg / curl: "
                     f"{median_of(r, 'mlflowreg') / median_of(r, 'curl'):.2f}×. mlflowreg and curl send "
                     f"{args.workers} files at once, Python one after another.")
        lines.append("")
        targets.append(("2,000 small files: time ≤ 0.33× Python's", f"{ratio_python:.2f}×",
                        verdict(ratio_python <= 0.33)))
    if "predict" in results:
        p = results["predict"]
        warm = median(p["warm"])
        per_call = median(p["per_call"])
        lines.append(f"### Pyfunc predict of one row ({len(p['warm'])} warm calls, {len(p['per_call'])} "
                     "Rscript-per-call runs)")
        lines.append("")
        lines.append("| | median | fastest | slowest |")
        lines.append("| --- | --- | --- | --- |")
        lines.append(f"| first call (starts the R worker) | {seconds_text(p['first'])} | | |")
        lines.append(f"| warm call (R worker) | {seconds_text(warm)} | {seconds_text(min(p['warm']))} | "
                     f"{seconds_text(max(p['warm']))} |")
        lines.append(f"| one Rscript per call | {seconds_text(per_call)} | {seconds_text(min(p['per_call']))} | "
                     f"{seconds_text(max(p['per_call']))} |")
        lines.append("")
        targets.append(("warm single-row predict ≤ 50 ms", seconds_text(warm), verdict(warm <= 0.05)))
        targets.append(("warm predict ≤ 0.2× an Rscript-per-call predict", f"{warm / per_call:.3f}×",
                        verdict(warm / per_call <= 0.2)))

    lines.append("### Targets")
    lines.append("")
    lines.append("| target | measured | |")
    lines.append("| --- | --- | --- |")
    for target, measured, result in targets:
        lines.append(f"| {target} | {measured} | {result} |")
    lines.append("| R mlflow's path (one Python CLI process per artifact call): mlflowreg ≤ 0.05× | "
                 "not measured | R mlflow is not installed here |")
    lines.append("")
    lines.append(END_MARK)
    return "\n".join(lines)


def median_of(results, name):
    return median([x["seconds"] for x in results[name]])


def client_table(results, kind):
    lines = []
    if kind == "throughput":
        lines.append("| client | time | throughput | RSS growth |")
        lines.append("| --- | --- | --- | --- |")
    else:
        lines.append("| client | time | RSS growth |")
        lines.append("| --- | --- | --- |")
    for name in ("mlflowreg", "python", "curl"):
        runs = results[name]
        times = [x["seconds"] for x in runs]
        time_text = f"{seconds_text(median(times))} ({seconds_text(min(times))} – {seconds_text(max(times))})"
        if "rss_growth_bytes" in runs[0]:
            rss = mib_text(max(x["rss_growth_bytes"] for x in runs))
        elif "peak_rss_bytes" in runs[0]:
            rss = f"{mib_text(max(x['peak_rss_bytes'] for x in runs))} (process peak)"
        else:
            rss = "not measured (many processes)"
        label = {"mlflowreg": "mlflowreg (R)", "python": "Python mlflow", "curl": "curl"}[name]
        if kind == "throughput":
            lines.append(f"| {label} | {time_text} | {GIB / median(times) / MIB:.0f} MiB/s | {rss} |")
        else:
            lines.append(f"| {label} | {time_text} | {rss} |")
    return lines


def write_report(path, block):
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Benchmarks\n\n{BEGIN_MARK}\n{END_MARK}\n"
    if BEGIN_MARK not in text or END_MARK not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN_MARK}\n{END_MARK}\n"
    head, rest = text.split(BEGIN_MARK, 1)
    _, tail = rest.split(END_MARK, 1)
    path.write_text(head + block + tail, encoding="utf-8")


def load_average():
    with open("/proc/loadavg", encoding="ascii") as handle:
        return ", ".join(handle.read().split()[:3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--server-artifacts", type=Path, help="the server's artifact directory, emptied between 1 GiB runs")
    parser.add_argument("--server-workers", default="4")
    parser.add_argument("--r-library", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=ROOT / "target/bench")
    parser.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--scenarios", default="model,file,dir,predict")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario, each running every client")
    parser.add_argument("--repeats", type=int, default=0,
                        help="repeats per client and round (default: 5 for the model, 1 for the file and the files)")
    parser.add_argument("--command", default="bash bench/run.sh")
    args = parser.parse_args()
    # mlflowreg's default, DEFAULT_WORKERS in src/artifacts/mod.rs.
    args.workers = int(os.environ.get("MLFLOWREG_ARTIFACT_WORKERS", "8"))
    scenarios = args.scenarios.split(",")

    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    load_before = load_average()
    big, small = prepare_data(args.work)
    scratch = args.work / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    models = scratch / "models"
    mlflowreg_client(args, "save", models, 0, scratch)

    results = {}
    if "model" in scenarios:
        log("1 MiB model: mlflowreg, Python mlflow, curl replay")
        results["model"] = in_rounds(args, args.repeats or 5, {
            "mlflowreg": lambda n: mlflowreg_client(args, "model", scratch, n, scratch),
            "python": lambda n: python_client(args, "model", scratch, n, scratch),
            "curl": lambda n: curl_model(args, models / "model", n),
        })
    if "file" in scenarios:
        log("1 GiB file: mlflowreg, Python mlflow, curl -T")
        clean_server_artifacts(args)
        results["file"] = in_rounds(args, args.repeats or 1, {
            "mlflowreg": lambda n: mlflowreg_client(args, "file", big, n, scratch),
            "python": lambda n: python_client(args, "file", big, n, scratch),
            "curl": lambda n: curl_file(args, big, n),
        }, after_each=lambda: clean_server_artifacts(args))
    if "dir" in scenarios:
        log("2,000 files of 4 KiB: mlflowreg, Python mlflow, curl --parallel")
        results["dir"] = in_rounds(args, args.repeats or 1, {
            "mlflowreg": lambda n: mlflowreg_client(args, "dir", small, n, scratch),
            "python": lambda n: python_client(args, "dir", small, n, scratch),
            "curl": lambda n: curl_dir(args, small, n, args.workers, scratch),
        }, after_each=lambda: clean_server_artifacts(args))
    if "predict" in scenarios:
        log("pyfunc predict: warm R worker, one Rscript per call")
        results["predict"] = predict_latency(args, models / "lm", 30, 5)

    (args.work / "results.json").write_text(json.dumps(results, indent=1))
    block = render(results, machine_facts(), args, load_before, load_average(), started,
                   time.monotonic() - clock)
    write_report(args.report, block)
    log(f"wrote {args.report} (raw figures: {args.work / 'results.json'})")
    print(block)


if __name__ == "__main__":
    main()
