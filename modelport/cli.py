"""The ``modelport`` command line: parse options, call :mod:`modelport.convert`, print.

Exit codes: 0 success, 1 verification failed, 2 bad input or unsupported content,
3 internal error (a bug: please report it with the --debug output), 130 interrupted.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from modelport import __version__
from modelport.errors import InputSpecError, ModelportError, first_line

EXIT_MISMATCH = 1
EXIT_INTERNAL = 3


def _parse_inputs(specs: tuple[str, ...]) -> tuple[dict[str, list[int | str]], dict[str, str]]:
    """``NAME:DIMS[:DTYPE]`` → shapes and dtypes. Names may contain ':' (e.g. TF's ``x:0``)."""
    from modelport.graph_ir.io import parse_input_spec

    shapes: dict[str, list[int | str]] = {}
    dtypes: dict[str, str] = {}
    for spec in specs:
        name, dims, dtype = parse_input_spec(spec)
        if name in shapes:
            raise InputSpecError(f"--input {spec!r}: input {name!r} is given twice")
        shapes[name] = dims
        if dtype:
            dtypes[name] = dtype
    return shapes, dtypes


def _load_options(weights, inputs, outputs=(), trust_code=False, random_weights=False,
                  nchw_inputs=False, dynamic=()):
    from modelport.importers.registry import LoadOptions

    shapes, dtypes = _parse_inputs(inputs)
    ctx = click.get_current_context(silent=True)
    extra = {}
    for key in ("keras_backend", "signature"):
        if ctx is not None and ctx.meta.get(key):
            extra[key] = ctx.meta[key]
    return LoadOptions(
        input_shapes=shapes, input_dtypes=dtypes, outputs=list(outputs) or None, weights=weights,
        trust_code=trust_code, random_weights=random_weights, nchw_inputs=nchw_inputs,
        dynamic=list(dynamic), extra=extra,
    )


def common_options(fn):
    fn = click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")(fn)
    fn = click.option("--quiet", "-q", is_flag=True, help="No progress output.")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")(fn)
    return fn


def source_options(fn):
    fn = click.option("--format", "fmt", default=None,
                      help="Source format (default: detected from the content).")(fn)
    fn = click.option("--weights", default=None, type=click.Path(),
                      help="Companion weights file (.caffemodel, .params, state_dict).")(fn)
    fn = click.option("--input", "inputs", multiple=True, metavar="NAME:DIMS[:DTYPE]",
                      help="Fix or override an input shape (and dtype, for sources that take "
                           "one), e.g. data:1,3,224,224 or ids:1,128:int64.")(fn)
    fn = click.option("--trust-code", is_flag=True,
                      help="Allow executing code stored in the model (pickles, Lambda layers, "
                           "TorchScript programs); only for files you trust.")(fn)
    fn = click.option("--random-weights", is_flag=True,
                      help="Fill missing weights with seeded random values (structure checks).")(fn)
    fn = click.option("--nchw-inputs", is_flag=True,
                      help="Channels-last sources: take NCHW inputs (no input Transpose).")(fn)
    fn = click.option("--dynamic", multiple=True, metavar="DIM",
                      help="Make a dimension symbolic (e.g. batch).")(fn)
    fn = click.option("--keras-backend", type=click.Choice(["theano", "tensorflow"]),
                      expose_value=False, callback=_keep_in_meta,
                      help="Keras files: the backend that saved it (Theano kernels are flipped); "
                           "default: the file's record, else 'th' ordering = Theano (Keras 1).")(fn)
    fn = click.option("--signature", metavar="NAME", expose_value=False, callback=_keep_in_meta,
                      help="SavedModel signature to convert (default serving_default).")(fn)
    return fn


def _keep_in_meta(ctx, param, value):
    if value:
        ctx.meta[param.name] = value
    return value


def verify_options(fn):
    fn = click.option("--inputs", "inputs_file", type=click.Path(), default=None,
                      help="Input arrays (.npz keyed by input name) instead of random ones.")(fn)
    fn = click.option("--seed", default=0, show_default=True, help="Seed of the random inputs.")(fn)
    fn = click.option("--rtol", type=float, default=None, help="Relative tolerance (1e-3).")(fn)
    fn = click.option("--atol", type=float, default=None, help="Absolute tolerance (1e-4).")(fn)
    fn = click.option("--per-layer", is_flag=True,
                      help="Also compare every source layer and name the first that differs.")(fn)
    fn = click.option("--device", type=click.Choice(["cpu", "cuda", "tensorrt"]), default="cpu",
                      show_default=True, help="onnxruntime execution provider.")(fn)
    fn = click.option("--junit", "junit_file", type=click.Path(dir_okay=False), default=None,
                      help="Also write the verification as JUnit XML (for CI).")(fn)
    fn = click.option("--html", "html_file", type=click.Path(dir_okay=False), default=None,
                      help="Also write the verification as a self-contained HTML page.")(fn)
    return fn


def _single_reports(name: str, source: str, document: dict, status: str, seconds: float,
                    junit_file: str | None, html_file: str | None) -> None:
    """--junit/--html for one model: the same reports a batch writes, with one model."""
    if not junit_file and not html_file:
        return
    import os

    from modelport.convert.batch import ModelResult
    from modelport.convert.reports import write_html, write_junit

    m = ModelResult(os.path.basename(name), source, status, 0, seconds, report=document)
    if status == "failed":
        w = m.worst
        m.error = (f"verification failed: output {w['name']!r} max abs err {w['max_abs']}"
                   if w else "verification failed")
    elif status == "error":
        m.error = "nothing was compared"
    if junit_file:
        write_junit(junit_file, [m])
    if html_file:
        write_html(html_file, [m])


def _progress(quiet: bool, as_json: bool):
    from modelport.convert.progress import Progress

    return Progress(enabled=False) if quiet or as_json else Progress()


def _tolerances(rtol, atol):
    from modelport.convert.verify import DEFAULT_ATOL, DEFAULT_RTOL, check_tolerances

    rtol, atol = (DEFAULT_RTOL if rtol is None else rtol, DEFAULT_ATOL if atol is None else atol)
    check_tolerances(rtol, atol)
    return rtol, atol


# With --json, standard output carries the report and nothing else: whatever a model or a
# library prints (Python or C level) goes to standard error while modelport works.
_json_out = None


def _emit(text: str) -> None:
    if _json_out is not None:
        _json_out.write(text + "\n")
        _json_out.flush()
    else:
        click.echo(text)


def _emit_json(obj: Any) -> None:
    from modelport.convert.verify import to_json

    _emit(to_json(obj))


def _protect_stdout() -> None:
    global _json_out
    import io
    import os

    try:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    _json_out = os.fdopen(saved, "w", encoding="utf-8")


def _restore_stdout() -> None:
    """Put file descriptor 1 back where it pointed before :func:`_protect_stdout`."""
    global _json_out
    import os

    if _json_out is None:
        return
    out, _json_out = _json_out, None
    try:
        sys.stdout.flush()
        out.flush()
        os.dup2(out.fileno(), 1)
    except (OSError, ValueError):
        pass
    finally:
        out.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelport")
def cli() -> None:
    """Convert trained models to ONNX and prove the result computes the same numbers."""


@cli.command()
@click.argument("src")
@click.option("-o", "out", required=True, metavar="OUT.onnx", help="Where to write the ONNX model.")
@click.option("--output", "outputs", multiple=True, metavar="NAME",
              help="Keep only these outputs (any value of the graph can be named).")
@click.option("--opset", type=int, default=None,
              help="Target ONNX opset (default 17; ONNX sources keep theirs).")
@click.option("-O", "level", type=click.IntRange(0, 2), default=1, show_default=True,
              help="Optimisation level: -O0 none, -O1 safe, -O2 more.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--external-data/--no-external-data", default=None,
              help="Store weights in OUT.data (default: only when over 2 GB).")
@click.option("--verify", "do_verify", is_flag=True,
              help="Compare the result with the source; OUT appears only if it passes.")
@click.option("--keep-failed", is_flag=True,
              help="With --verify: write OUT even when verification fails (exit 1 still).")
@click.option("--target", default=None, metavar="tensorrt[:VERSION]",
              help="Fix what TensorRT's parser rejects, refuse what cannot be fixed, and write "
                   "OUT.trt.json (optimisation profile, trtexec command).")
@click.option("--input-range", "input_ranges", multiple=True, metavar="NAME:MIN/OPT/MAX",
              help="With --target tensorrt: the optimisation profile of a dynamic input.")
@source_options
@verify_options
@common_options
def convert(src, out, outputs, opset, level, force, external_data, do_verify, keep_failed,
            target, input_ranges, fmt, weights,
            inputs, trust_code, random_weights, nchw_inputs, dynamic, inputs_file, seed, rtol,
            atol, per_layer, device, junit_file, html_file, debug, quiet, as_json):
    """Convert SRC to ONNX at OUT (`-o`)."""
    from modelport.importers import hdf5_scan

    # A large HDF5 source has its safety scans started now, side by side with the imports
    # below (they release the GIL); the Keras importer waits for them when it opens the file.
    hdf5_scan.prescan(src)
    try:
        from modelport.convert.pipeline import convert as run

        options = _load_options(weights, inputs, outputs, trust_code, random_weights,
                                nchw_inputs, dynamic)
        rtol, atol = _tolerances(rtol, atol)
        result = run(
            src, out, format=fmt, options=options, opset=opset, level=level, force=force,
            external_data=external_data, verify=do_verify or per_layer,
            verify_kwargs=dict(rtol=rtol, atol=atol, seed=seed, inputs=inputs_file,
                               per_layer=per_layer, device=device),
            progress=_progress(quiet, as_json), keep_failed=keep_failed, target=target,
            input_ranges=_input_ranges(input_ranges, target),
        )
    finally:
        hdf5_scan.finish_prescans()
    d = result.to_dict()
    d["verified"] = result.report is not None and result.report.verified
    if result.report is not None:
        status = "passed" if result.passed else "failed" if result.report.verified else "error"
        _single_reports(out, src, d, status, sum(result.seconds.values()), junit_file,
                        html_file)
    if not (quiet or as_json):
        for note in result.notes:
            click.echo(f"modelport: {result.source}: {note}", err=True)
    if as_json:
        _emit_json(d)
    else:
        total = sum(result.seconds.values())
        if result.written:
            click.echo(f"{result.source} ({result.format}) -> {result.output}: "
                       f"{result.nodes_exported} nodes, opset {result.opset}, "
                       f"{result.bytes / 1e6:.1f} MB in {total:.2f}s")
        if result.report is not None:
            click.echo(result.report.table())
        if not result.written:
            click.echo(f"modelport: verification failed: {result.output} was not written "
                       "(pass --keep-failed to write it anyway)", err=True)
    if not result.passed:
        sys.exit(EXIT_MISMATCH)


@cli.command()
@click.argument("src")
@click.argument("converted")
@source_options
@verify_options
@common_options
def verify(src, converted, fmt, weights, inputs, trust_code, random_weights, nchw_inputs,
           dynamic, inputs_file, seed, rtol, atol, per_layer, device, junit_file, html_file,
           debug, quiet, as_json):
    """Compare CONVERTED (ONNX) with SRC on the same inputs."""
    from modelport.convert.pipeline import verify_model

    options = _load_options(weights, inputs, (), trust_code, random_weights, nchw_inputs, dynamic)
    rtol, atol = _tolerances(rtol, atol)
    report = verify_model(src, converted, format=fmt, options=options, rtol=rtol, atol=atol,
                          seed=seed, inputs=inputs_file, per_layer=per_layer, device=device,
                          progress=_progress(quiet, as_json))
    status = "passed" if report.passed else "failed" if report.verified else "error"
    _single_reports(converted, src, {"report": report.to_dict()}, status, report.seconds,
                    junit_file, html_file)
    if as_json:
        _emit_json(report.to_dict())
    else:
        click.echo(report.table())
    if not report.passed:
        sys.exit(EXIT_MISMATCH)


@cli.command()
@click.argument("model")
@source_options
@common_options
def inspect(model, fmt, weights, inputs, trust_code, random_weights, nchw_inputs, dynamic,
            debug, quiet, as_json):
    """Show MODEL's inputs, outputs, operators and parameters (any readable format)."""
    from modelport.convert.pipeline import import_model, summarize

    options = _load_options(weights, inputs, (), trust_code, random_weights, nchw_inputs, dynamic)
    ir_model, spec = import_model(model, format=fmt, options=options)
    info = summarize(ir_model, spec, model)
    if as_json:
        _emit_json(info)
        return
    click.echo(f"{info['source']}: {spec.description}, opset {info['opset']}, "
               f"{info['nodes']} nodes")

    def fmt_value(v: dict[str, Any]) -> str:
        shape = "?" if v["shape"] is None else "x".join(str(d) for d in v["shape"]) or "scalar"
        return f"  {v['name']}: {v['dtype']} [{shape}]"

    click.echo("inputs:")
    for v in info["inputs"]:
        click.echo(fmt_value(v))
    click.echo("outputs:")
    for v in info["outputs"]:
        click.echo(fmt_value(v))
    click.echo(f"parameters: {info['parameters']:,} ({info['parameter_bytes'] / 1e6:.2f} MB)")
    click.echo("operators:")
    for op, count in info["operators"].items():
        click.echo(f"  {op:<28} {count}")


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Where DIR/<name>.onnx are written.")
@click.option("--shard", default=None, metavar="K/N",
              help="Only this stable share of the models (by a hash of each name).")
@click.option("--jobs", "-j", default=1, show_default=True, type=int,
              help="Models converted at once, each in its own process.")
@click.option("--timeout", default=None, type=float, metavar="SECONDS",
              help="Stop a model's conversion after this long (it becomes an error).")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), default=None,
              help="Write a JUnit XML report.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None,
              help="Write a JSON report.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), default=None,
              help="Write a self-contained HTML report.")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def batch(manifest, out_dir, shard, jobs, timeout, junit_file, json_file, html_file, debug):
    """Convert and verify every model of MANIFEST (TOML), for CI."""
    from modelport.convert.batch import line_for, run_batch
    from modelport.convert.reports import write_html, write_json, write_junit

    result = run_batch(manifest, out_dir, shard=shard, jobs=jobs, timeout=timeout,
                       on_result=lambda m: click.echo(line_for(m)))
    if junit_file:
        write_junit(junit_file, result.models, seconds=result.seconds)
    if json_file:
        write_json(json_file, result.to_dict())
    if html_file:
        write_html(html_file, result.models, totals=result.totals)
    click.echo(result.summary())
    sys.exit(result.exit_code)


def _input_ranges(specs, target):
    if specs and not target:
        raise InputSpecError("--input-range needs --target tensorrt")
    if not target:
        return None
    from modelport.exporters.tensorrt import parse_ranges, parse_target

    parse_target(target)  # a bad target is refused before any work
    return parse_ranges(specs)


@cli.command()
@click.argument("model")
@click.option("--target", default="tensorrt", show_default=True, metavar="tensorrt[:VERSION]",
              help="The runtime to check against (TensorRT's ONNX parser, by version).")
@click.option("-O", "level", type=click.IntRange(0, 2), default=1, show_default=True,
              help="Optimise first, as convert would (-O0: check the graph as read).")
@source_options
@common_options
def check(model, target, level, fmt, weights, inputs, trust_code, random_weights, nchw_inputs,
          dynamic, debug, quiet, as_json):
    """List what TARGET would reject (errors) or handle badly (warnings) in MODEL."""
    from modelport.convert.pipeline import import_model
    from modelport.exporters import tensorrt
    from modelport.graph_ir.passes import optimize

    trt = tensorrt.parse_target(target)
    options = _load_options(weights, inputs, (), trust_code, random_weights, nchw_inputs, dynamic)
    ir_model, _ = import_model(model, format=fmt, options=options)
    optimize(ir_model, level)
    findings = tensorrt.check(ir_model, trt)
    errors = sum(f.severity == "error" for f in findings)
    if as_json:
        _emit_json({"target": "tensorrt", "version": trt.version,
                    "table_source": trt.table["source"],
                    "findings": [f.to_dict() for f in findings]})
    else:
        click.echo(f"{model}: TensorRT {trt.version} ({trt.table['source']})")
        for f in findings:
            where = f" {f.node} ({f.op})" if f.node else ""
            fix = f" — fix: {f.fix}" if f.fix else ""
            click.echo(f"  {f.severity:<7} {f.code}{where}: {f.message}{fix}")
        click.echo(f"{errors} errors, {len(findings) - errors} warnings" if findings else
                   "no findings: TensorRT's parser takes this model")
    if errors:
        sys.exit(1)


@cli.command("build-engine")
@click.argument("model")
@click.option("-o", "--output", default=None, metavar="ENGINE",
              help="Engine file to write (default: MODEL with .engine instead of .onnx).")
@click.option("--profile", "profile_file", type=click.Path(dir_okay=False), default=None,
              help="Sidecar written by convert --target tensorrt whose optimisation profile to "
                   "use (default: MODEL.trt.json when it exists).")
@click.option("--input-range", "input_ranges", multiple=True, metavar="NAME:MIN/OPT/MAX",
              help="Optimisation profile of a dynamic input (over --profile), e.g. "
                   "x:1,3,224,224/8,3,224,224/32,3,224,224.")
@click.option("--fp16", is_flag=True,
              help="Let TensorRT use FP16 kernels (versions with the FP16 builder flag).")
@click.option("--force", is_flag=True, help="Overwrite ENGINE if it exists.")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def build_engine(model, output, profile_file, input_ranges, fp16, force, debug):
    """Build a TensorRT engine from MODEL (ONNX) with the tensorrt Python package."""
    from modelport.exporters.tensorrt import parse_ranges
    from modelport.exporters.tensorrt_engine import build_engine as build

    result = build(model, output, ranges=parse_ranges(input_ranges),
                   profile_file=profile_file, fp16=fp16, force=force)
    click.echo(f"{result.path}: TensorRT {result.tensorrt} engine, {result.bytes} bytes")
    for name, p in result.profile.items():
        click.echo(f"  profile {name}: min {p['min']} opt {p['opt']} max {p['max']} "
                   f"({result.profile_source})")
    for note in result.notes:
        click.echo(f"  note: {note}")


def _extra(module: str, extra: str) -> str:
    return f"modelport[{extra}]" if extra != "core" else module


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def formats(as_json):
    """List supported formats, how each is detected and what verification needs."""
    from modelport.importers.registry import formats as all_formats

    rows = []
    for spec in all_formats().values():
        if spec.not_converted:  # recognised, answered in one line, never converted
            rows.append({"name": spec.name, "description": spec.description,
                         "extensions": list(spec.extensions), "detection": spec.detection,
                         "convert": "recognised, not converted", "advice": spec.not_converted,
                         "verify_against": "", "verify": "n/a"})
            continue
        missing = spec.missing_for_reference()
        missing_load = spec.missing_for_load()
        rows.append({
            "name": spec.name,
            "description": spec.description,
            "extensions": list(spec.extensions),
            "detection": spec.detection,
            "convert": "ready" if not missing_load else
                       "needs " + ", ".join(sorted({_extra(m, e) for m, e in missing_load})),
            "verify_against": spec.reference_name,
            "verify": "ready" if not missing else
                      "needs " + ", ".join(sorted({_extra(m, e) for m, e in missing})),
        })
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<11} {r['description']} ({', '.join(r['extensions'])})")
        click.echo(f"{'':<11} detected by: {r['detection']}")
        if "advice" in r:
            click.echo(f"{'':<11} recognised, not converted: {r['advice']}")
            continue
        click.echo(f"{'':<11} convert: {r['convert']}; verify against {r['verify_against']}: "
                   f"{r['verify']}")


def _on_sigterm(signum, frame):  # turn SIGTERM into a clean exit so temp outputs are removed
    raise KeyboardInterrupt


def _fail(message: str, code: int, as_json: bool) -> None:
    click.echo(f"modelport: {message}", err=True)
    if as_json:  # a CI job reading stdout still gets a report object
        _emit_json({"passed": False, "verified": False, "error": message, "exit_code": code})
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    from modelport._deferred import defer_rarely_used

    # Only in the command-line process: SymPy and ONNX's reference evaluator (about 0.5 s of
    # start-up) are imported when first used, if ever.
    defer_rarely_used()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    # commands whose --json is the report on stdout (batch's --json names a file)
    as_json = "--json" in argv and argv[:1] in (["convert"], ["verify"], ["inspect"], ["check"])
    if as_json:
        _protect_stdout()
    try:
        _run(argv, debug, as_json)
    finally:
        _restore_stdout()  # main() may be called in-process (tests, scripts): undo the redirect


def _run(argv: list[str], debug: bool, as_json: bool) -> None:
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not in the main thread
        pass
    try:
        cli.main(args=argv, prog_name="modelport", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if as_json:
            _fail(f"error: {exc.format_message()}", 2, True)
        exc.show()
        sys.exit(2)
    except click.exceptions.Abort:
        _fail("interrupted", 130, as_json)
    except ModelportError as exc:
        if debug:
            raise
        _fail(f"error: {exc}", exc.exit_code, as_json)
    except KeyboardInterrupt:
        _fail("interrupted", 130, as_json)
    except SystemExit:
        raise
    except Exception as exc:
        if debug:
            raise
        text = first_line(exc, "")
        _fail(f"internal error: {type(exc).__name__}: {text} "
              "(rerun with --debug for the traceback, and please report it)", EXIT_INTERNAL,
              as_json)


def run() -> None:
    """The ``modelport`` command (console script and ``python -m modelport``): :func:`main`,
    then an exit that skips the interpreter's teardown, with the cyclic garbage collector
    running less often.

    Freeing every module and object of onnx, onnx_ir and onnxscript at exit takes 0.1-0.2 s,
    a tenth of converting a ResNet-50. Once the command has returned (its outputs written and
    closed), the exit handlers run as usual (``atexit``: logging, temporary files), the
    standard streams are flushed and the process ends with ``os._exit``. Where that cannot be
    done safely (other threads still running, an exit status that is not a number, a stream
    that cannot be flushed) it exits the ordinary way. ``main()`` itself, which tests and
    scripts call in-process, never does this.
    """
    import gc

    # Most of what a conversion allocates (graph nodes, values, protobuf messages) lives until
    # it ends, yet the cyclic collector's default thresholds scan those objects about a
    # hundred times over a ResNet-50 (0.03-0.04 s). In this process it runs less often;
    # cycles are still collected.
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    _exit(0 if code is None else code)


_GC_THRESHOLDS = (100_000, 50, 50)


def _exit(code: Any) -> None:
    import atexit
    import os
    import threading

    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if not isinstance(code, int) or run_exitfuncs is None or threading.active_count() > 1:
        sys.exit(code)
    try:
        run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # e.g. stdout closed by the reader of a pipe
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    run()
