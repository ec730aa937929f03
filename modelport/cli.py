"""The ``modelport`` command line: parse options, call :mod:`modelport.convert`, print.

Exit codes: 0 success, 1 verification failed, 2 bad input or unsupported content,
3 internal error (a bug: please report it with the --debug output), 130 interrupted.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import click

from modelport import __version__
from modelport.errors import InputSpecError, ModelportError

EXIT_MISMATCH = 1
EXIT_INTERNAL = 3


_DTYPES = ("float32", "float16", "float64", "bfloat16", "int64", "int32", "int16", "int8",
           "uint8", "uint16", "uint32", "uint64", "bool")


def _parse_inputs(specs: tuple[str, ...]) -> tuple[dict[str, list[int | str]], dict[str, str]]:
    """``NAME:DIMS[:DTYPE]`` → shapes and dtypes. Names may contain ':' (e.g. TF's ``x:0``)."""
    from modelport.graph_ir.io import parse_shape

    shapes: dict[str, list[int | str]] = {}
    dtypes: dict[str, str] = {}
    for spec in specs:
        rest, dtype = spec, None
        head, sep, last = spec.rpartition(":")
        if sep and last in _DTYPES:
            rest, dtype = head, last
        name, sep, dims = rest.rpartition(":")
        if not sep or not name:
            raise InputSpecError(
                f"--input {spec!r}: expected NAME:DIMS[:DTYPE], e.g. input:1,3,224,224 or "
                "ids:1,128:int64"
            )
        try:
            shapes[name] = parse_shape(dims)
        except ValueError:
            raise InputSpecError(f"--input {spec!r}: dims must be integers or names") from None
        if dtype:
            dtypes[name] = dtype
    return shapes, dtypes


def _load_options(weights, inputs, outputs=(), trust_code=False, random_weights=False,
                  nchw_inputs=False, dynamic=()):
    from modelport.importers.registry import LoadOptions

    shapes, dtypes = _parse_inputs(inputs)
    return LoadOptions(
        input_shapes=shapes, input_dtypes=dtypes, outputs=list(outputs) or None, weights=weights,
        trust_code=trust_code, random_weights=random_weights, nchw_inputs=nchw_inputs,
        dynamic=list(dynamic),
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
                      help="Allow executing code stored in the model (pickles, Lambda layers).")(fn)
    fn = click.option("--random-weights", is_flag=True,
                      help="Fill missing weights with seeded random values (structure checks).")(fn)
    fn = click.option("--nchw-inputs", is_flag=True,
                      help="Channels-last sources: take NCHW inputs (no input Transpose).")(fn)
    fn = click.option("--dynamic", multiple=True, metavar="DIM",
                      help="Make a dimension symbolic (e.g. batch).")(fn)
    return fn


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
    return fn


def _progress(quiet: bool, as_json: bool):
    from modelport.convert.progress import Progress

    return Progress(enabled=False) if quiet or as_json else Progress()


def _tolerances(rtol, atol):
    from modelport.convert.verify import DEFAULT_ATOL, DEFAULT_RTOL

    return (DEFAULT_RTOL if rtol is None else rtol, DEFAULT_ATOL if atol is None else atol)


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
@click.option("--verify", "do_verify", is_flag=True, help="Compare the result with the source.")
@source_options
@verify_options
@common_options
def convert(src, out, outputs, opset, level, force, external_data, do_verify, fmt, weights,
            inputs, trust_code, random_weights, nchw_inputs, dynamic, inputs_file, seed, rtol,
            atol, per_layer, device, debug, quiet, as_json):
    """Convert SRC to ONNX at OUT (`-o`)."""
    from modelport.convert.pipeline import convert as run

    options = _load_options(weights, inputs, outputs, trust_code, random_weights, nchw_inputs,
                            dynamic)
    rtol, atol = _tolerances(rtol, atol)
    result = run(
        src, out, format=fmt, options=options, opset=opset, level=level, force=force,
        external_data=external_data, verify=do_verify or per_layer,
        verify_kwargs=dict(rtol=rtol, atol=atol, seed=seed, inputs=inputs_file,
                           per_layer=per_layer, device=device),
        progress=_progress(quiet, as_json),
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        total = sum(result.seconds.values())
        click.echo(f"{result.source} ({result.format}) -> {result.output}: "
                   f"{result.nodes_exported} nodes, opset {result.opset}, "
                   f"{result.bytes / 1e6:.1f} MB in {total:.2f}s")
        if result.report is not None:
            click.echo(result.report.table())
    if not result.passed:
        sys.exit(EXIT_MISMATCH)


@cli.command()
@click.argument("src")
@click.argument("converted")
@source_options
@verify_options
@common_options
def verify(src, converted, fmt, weights, inputs, trust_code, random_weights, nchw_inputs,
           dynamic, inputs_file, seed, rtol, atol, per_layer, device, debug, quiet, as_json):
    """Compare CONVERTED (ONNX) with SRC on the same inputs."""
    from modelport.convert.pipeline import verify_model

    options = _load_options(weights, inputs, (), trust_code, random_weights, nchw_inputs, dynamic)
    rtol, atol = _tolerances(rtol, atol)
    report = verify_model(src, converted, format=fmt, options=options, rtol=rtol, atol=atol,
                          seed=seed, inputs=inputs_file, per_layer=per_layer, device=device,
                          progress=_progress(quiet, as_json))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
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
        click.echo(json.dumps(info, indent=2))
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
        click.echo(json.dumps(rows, indent=2))
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


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not in the main thread
        pass
    try:
        cli.main(args=argv, prog_name="modelport", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("modelport: interrupted", err=True)
        sys.exit(130)
    except ModelportError as exc:
        if debug:
            raise
        click.echo(f"modelport: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("modelport: interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        if debug:
            raise
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"modelport: internal error: {type(exc).__name__}: {text} "
                   "(rerun with --debug for the traceback, and please report it)", err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
