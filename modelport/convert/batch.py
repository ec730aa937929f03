"""Batch conversion for CI: a TOML manifest of models, each converted and verified in its own
child process, with shards, parallel jobs, a timeout per model, and JUnit/JSON/HTML reports.

Each model runs ``modelport convert SRC -o DIR/<name>.onnx --verify --json`` in a child
process, so a crash, an out-of-memory kill or a timeout is that model's error and never the
batch's end; the child's JSON report is what the batch reports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelport.convert.reports import _g, _num
from modelport.errors import ModelportError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

# Keys of a [[model]] entry (and of [defaults], less name/source), with their types.
MODEL_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "source": str, "weights": str, "input": list, "output": list, "inputs": str,
    "per_layer": bool, "rtol": (int, float), "atol": (int, float), "level": int,
    "opset": int, "seed": int, "format": str, "options": dict,
}
_PATH_KEYS = ("weights", "inputs")
# convert options set by the batch itself, which `options` may not override
_MANAGED = {"src", "out", "force", "do_verify", "as_json", "debug", "quiet", "fmt", "weights",
            "inputs", "inputs_file", "rtol", "atol", "per_layer", "level", "opset", "seed",
            "outputs", "help"}
STATUSES = ("passed", "failed", "error")


class ManifestError(ModelportError):
    """The manifest is malformed: one line per problem, exit 2, before anything runs."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems) if len(problems) == 1 else
                         f"{len(problems)} problems:\n" + "\n".join(
                             f"  {path}: {p}" for p in problems), path=path)


@dataclasses.dataclass
class ModelJob:
    name: str
    source: str
    settings: dict[str, Any]  # every other key, defaults applied, paths resolved

    def argv(self, out_dir: str) -> list[str]:
        """The `modelport convert` command line for this model."""
        s = self.settings
        args = ["convert", self.source, "-o", os.path.join(out_dir, f"{self.name}.onnx"),
                "--force", "--verify", "--json", "--quiet"]
        if s.get("format"):
            args += ["--format", s["format"]]
        if s.get("weights"):
            args += ["--weights", s["weights"]]
        for spec in s.get("input", []):
            args += ["--input", spec]
        for name in s.get("output", []):
            args += ["--output", name]
        if s.get("inputs"):
            args += ["--inputs", s["inputs"]]
        if s.get("per_layer"):
            args.append("--per-layer")
        for key, flag in (("rtol", "--rtol"), ("atol", "--atol"), ("seed", "--seed"),
                          ("opset", "--opset")):
            if key in s:
                args += [flag, repr(s[key]) if isinstance(s[key], float) else str(s[key])]
        if "level" in s:
            args.append(f"-O{s['level']}")
        for key, value in (s.get("options") or {}).items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is False:
                if key == "external_data":
                    args.append("--no-external-data")
            elif isinstance(value, list):
                for v in value:
                    args += [flag, str(v)]
            else:
                args += [flag, str(value)]
        return args


def _convert_options() -> dict[str, Any]:
    """The convert command's own options (by Python name) that `options = {...}` may set."""
    from modelport.cli import convert

    return {p.name: p for p in convert.params
            if isinstance(p, __import__("click").Option) and p.name not in _MANAGED}


def _is_entry_point(source: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", source))


def read_manifest(path: str | os.PathLike) -> list[ModelJob]:
    """Parse and check a manifest; every problem is collected, then raised at once."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ManifestError(path, ["no such file"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(path, [f"not valid TOML: {exc}"]) from None
    base = os.path.dirname(os.path.abspath(path))
    problems: list[str] = []
    for key in data:
        if key not in ("defaults", "model"):
            problems.append(f"unknown top-level key {key!r} (expected [defaults] and [[model]])")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append("[defaults] must be a table")
        defaults = {}
    models = data.get("model", [])
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        problems.append("[[model]] entries must be tables")
        models = []
    if not models and not problems:
        problems.append("lists no [[model]]")
    allowed_options = _convert_options()

    def check_keys(where: str, entry: dict, allow_identity: bool) -> None:
        for key, value in entry.items():
            if key not in MODEL_KEYS or (not allow_identity and key in ("name", "source")):
                problems.append(f"{where}: unknown key {key!r}")
                continue
            want = MODEL_KEYS[key]
            if isinstance(value, bool) and want in (int, (int, float)):
                problems.append(f"{where}: {key} must be a number, not {value!r}")
            elif not isinstance(value, want):
                problems.append(f"{where}: {key} has the wrong type ({type(value).__name__})")
            elif key in ("input", "output") and not all(isinstance(v, str) for v in value):
                problems.append(f"{where}: {key} must be a list of strings")
            elif key == "options":
                for opt in value:
                    if opt not in allowed_options:
                        problems.append(f"{where}: unknown option {opt!r} (known: "
                                        f"{', '.join(sorted(allowed_options))})")
            elif key in ("rtol", "atol") and not (value >= 0 and value != float("inf")):
                problems.append(f"{where}: {key} must be a finite number >= 0")
            elif key == "level" and value not in (0, 1, 2):
                problems.append(f"{where}: level must be 0, 1 or 2")

    check_keys("[defaults]", defaults, allow_identity=False)
    jobs: list[ModelJob] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(models, 1):
        where = f"model {i}"
        check_keys(where, entry, allow_identity=True)
        source = entry.get("source")
        if not isinstance(source, str) or not source:
            problems.append(f"{where}: has no source")
            continue
        name = entry.get("name") or Path(source.split(":")[0]).stem
        where = f"model {name!r}"
        if not re.fullmatch(r"[\w.\-]+", name):
            problems.append(f"{where}: a name may hold letters, digits, '_', '-' and '.' only")
        if name in seen:
            problems.append(f"{where}: duplicate name (models {seen[name]} and {i})")
        seen.setdefault(name, i)
        settings = {**defaults, **{k: v for k, v in entry.items() if k not in ("name", "source")}}
        if "options" in defaults and "options" in entry:
            settings["options"] = {**defaults["options"], **entry["options"]}
        resolved = os.path.join(base, source)
        if os.path.exists(resolved):
            source = resolved
        elif not _is_entry_point(source):
            problems.append(f"{where}: source {source!r} does not exist")
        for key in _PATH_KEYS:
            if isinstance(settings.get(key), str):
                p = os.path.join(base, settings[key])
                if not os.path.exists(p):
                    problems.append(f"{where}: {key} {settings[key]!r} does not exist")
                settings[key] = p
        jobs.append(ModelJob(name, source, settings))
    if problems:
        raise ManifestError(path, problems)
    return jobs


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ModelportError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/4")
    return int(m.group(1)), int(m.group(2))


def in_shard(name: str, k: int, n: int) -> bool:
    """Stable: a model's shard depends on its name alone, not on the other models."""
    return zlib.crc32(name.encode("utf-8")) % n == k - 1


@dataclasses.dataclass
class ModelResult:
    name: str
    source: str
    status: str  # passed | failed | error
    exit_code: int
    seconds: float
    output: str | None = None
    error: str | None = None
    report: dict[str, Any] | None = None  # what `convert --json` printed

    @property
    def worst(self) -> dict[str, Any] | None:
        """The output with the largest error relative to what the tolerance allows."""
        outs = ((self.report or {}).get("report") or {}).get("outputs") or []
        if not outs:
            return None
        return max(outs, key=lambda o: (not o.get("passed"), _num(o.get("max_abs"))))

    def to_dict(self) -> dict[str, Any]:
        """Everything `convert --json` reported (``report`` is the verification), plus the
        batch's own fields; the conversion's stage timings are under ``timings``."""
        d = dict(self.report or {})
        d["timings"] = d.pop("seconds", None)
        d.update(name=self.name, source=self.source, status=self.status,
                 exit_code=self.exit_code, seconds=round(self.seconds, 3), output=self.output,
                 error=self.error)
        d.setdefault("report", None)
        return d


def run_model(job: ModelJob, out_dir: str, timeout: float | None,
              cwd: str | None = None) -> ModelResult:
    """Convert and verify one model in a child process."""
    cmd = [sys.executable, "-m", "modelport", *job.argv(out_dir)]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=cwd, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            code, timed_out = proc.wait(), True
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    report = None
    try:
        report = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        report = None
    output = os.path.join(out_dir, f"{job.name}.onnx")
    output = output if os.path.exists(output) else None
    if timed_out:
        return ModelResult(job.name, job.source, "error", 2, seconds, output,
                           f"timed out after {timeout:g} s", report)
    if code < 0 or code not in (0, 1, 2, 3, 130):
        sig = -code if code < 0 else None
        what = (f"killed by signal {signal.Signals(sig).name}" if sig and sig in
                signal.Signals._value2member_map_ else f"exited with status {code}")
        return ModelResult(job.name, job.source, "error", 2, seconds, output,
                           f"the child process died ({what})", report)
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("modelport:")]
    message = (report or {}).get("error") or (lines[-1].removeprefix("modelport: ")
                                              if lines else None)
    if message:
        message = message.removeprefix("error: ")
    if code == 0:
        return ModelResult(job.name, job.source, "passed", 0, seconds, output, None, report)
    if code == 1:
        worst = ModelResult(job.name, job.source, "failed", 1, seconds, output, None, report)
        w = worst.worst
        worst.error = (f"verification failed: output {w['name']!r} max abs err "
                       f"{_g(w['max_abs'])}, max rel err {_g(w['max_rel'])}"
                       + (f" ({w['note']})" if w.get("note") else "")) if w else \
            (message or "verification failed")
        return worst
    return ModelResult(job.name, job.source, "error", code if code in (2, 3) else 2, seconds,
                       output, message or stderr.strip()[-500:] or f"exit status {code}",
                       report)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


@dataclasses.dataclass
class BatchResult:
    manifest: str
    shard: str | None
    models: list[ModelResult]
    seconds: float

    @property
    def totals(self) -> dict[str, Any]:
        t = {s: sum(1 for m in self.models if m.status == s) for s in STATUSES}
        t["models"] = len(self.models)
        t["seconds"] = round(self.seconds, 3)
        return t

    @property
    def exit_code(self) -> int:
        return max([m.exit_code for m in self.models] + [0])

    def to_dict(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "shard": self.shard,
                "models": [m.to_dict() for m in self.models], "totals": self.totals}

    def summary(self) -> str:
        t = self.totals
        return (f"{t['passed']} passed, {t['failed']} failed, {t['error']} errors "
                f"({t['models']} models) in {self.seconds:.1f}s")


def line_for(m: ModelResult) -> str:
    label = {"passed": "PASS ", "failed": "FAIL ", "error": "ERROR"}[m.status]
    text = f"{label} {m.name} ({m.seconds:.1f}s)"
    if m.status == "passed" and m.worst:
        text += f" max abs err {_g(m.worst['max_abs'])}"
    if m.error:
        text += f": {m.error}"
    return text


def run_batch(manifest: str, out_dir: str, *, shard: str | None = None, jobs: int = 1,
              timeout: float | None = None, on_result=None) -> BatchResult:
    models = read_manifest(manifest)
    if shard:
        k, n = parse_shard(shard)
        models = [m for m in models if in_shard(m.name, k, n)]
    if jobs < 1:
        raise ModelportError(f"--jobs {jobs}: must be at least 1")
    if timeout is not None and not timeout > 0:
        raise ModelportError(f"--timeout {timeout}: must be a positive number of seconds")
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)
    cwd = os.path.dirname(os.path.abspath(manifest))
    start = time.perf_counter()
    results: dict[str, ModelResult] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_model, m, out_dir, timeout, cwd): m for m in models}
        from concurrent.futures import as_completed

        for fut in as_completed(futures):
            r = fut.result()
            results[r.name] = r
            if on_result is not None:
                on_result(r)
    ordered = [results[m.name] for m in models]  # manifest order, whatever finished first
    return BatchResult(os.fspath(manifest), shard, ordered, time.perf_counter() - start)
