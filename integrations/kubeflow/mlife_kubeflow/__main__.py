"""`python -m mlife_kubeflow compile [PATH]`: the pipeline as YAML for a Kubeflow Pipelines cluster (by default
integrations/kubeflow/pipeline.yaml, the copy checked in).
`python -m mlife_kubeflow run [--function F] [--limit N] …`: the pipeline with kfp.local's SubprocessRunner in
this Python (every component in a subprocess of this venv), against MLIFE_URL / MLIFE_TOKEN. Exits 1 when the run
failed, as it does by design: the regressed v1's deployment request is blocked by the gate and fails its task."""

import argparse
import sys
import tempfile
from pathlib import Path

from mlife_kubeflow.pipeline import compile_pipeline, digits_loop

CHECKED_IN = Path(__file__).resolve().parents[1] / "pipeline.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlife_kubeflow")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile the pipeline to YAML")
    c.add_argument("path", nargs="?", default=str(CHECKED_IN))
    r = sub.add_parser("run", help="run the pipeline with kfp.local (SubprocessRunner, this venv)")
    r.add_argument("--function", default="digits", help="the function, and the model and deployment unless named")
    r.add_argument("--model")
    r.add_argument("--deployment")
    r.add_argument("--limit", type=int, default=0, help="at most this many digit images (0: all)")
    r.add_argument("--traffic", type=int, default=100)
    r.add_argument("--max-feedback", type=int, default=6)
    r.add_argument("--code-dir", default="", help="the training code folder (default: examples/digits)")
    r.add_argument("--timeout", type=float, default=600.0, help="seconds any one wait may take")
    r.add_argument("--pipeline-root", help="where kfp.local keeps the task outputs (default: a new temporary folder)")
    args = parser.parse_args(argv)
    if args.command == "compile":
        compile_pipeline(args.path)
        print(f"compiled to {args.path}")
        return 0
    from kfp import local

    root = args.pipeline_root or tempfile.mkdtemp(prefix="mlife-kfp-")
    print(f"kfp.local: task outputs in {root}")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root)
    try:
        digits_loop(function=args.function, model=args.model or args.function,
                    deployment=args.deployment or args.function, limit=args.limit, traffic=args.traffic,
                    max_feedback=args.max_feedback, code_dir=args.code_dir, timeout=args.timeout)
    except RuntimeError as exc:  # kfp.local: "Pipeline … finished with status FAILURE. Inner task failed: …"
        print(exc)
        return 1
    except ValueError as exc:
        # kfp.local 2.17.3, when a task before the blocked request failed: v3's training, which follows a failed
        # task, is started all the same and asks for outputs of tasks that never ran ("… not found")
        print(f"kfp.local stopped after a failed task (see the log above): {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
