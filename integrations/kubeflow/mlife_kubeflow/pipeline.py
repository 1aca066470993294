"""The loop of `mlife demo` for the digits as one Kubeflow pipeline:

  make-digits → import-images → group-items → v1: train, registered, deployed (production), served with
  feedback on its wrong answers → the badcases added to test data → v2: train, registered and tested on the
  badcase test set, a testing task of its own on the test split, deployed (production) → BAM marks what v2
  passes fixed → v1 requested again: the gate BLOCKS it and that task FAILS, naming the regressed badcases → v3
  (the good parameters again; it runs although its upstream failed): train, registered, deployed (production)
  → it serves.

The blocked request is meant to fail, so a run ends Failed with that one task failed and every later task
succeeded (`ignore_upstream_failure`). Every task has caching off: each one acts on the platform.

    python -m mlife_kubeflow compile pipeline.yaml     # the YAML for a Kubeflow Pipelines cluster
    python -m mlife_kubeflow run --function digits-1   # kfp.local against MLIFE_URL / MLIFE_TOKEN
"""

from kfp import compiler, dsl

from mlife_kubeflow.components import (
    add_to_test_data,
    deploy,
    fixed_by_production,
    group_items,
    import_images,
    make_digits,
    registered_version,
    serve_and_feedback,
    test_model,
    train_model,
)

NAME = "mlife-digits-loop"
# examples/digits/train.py: logistic regression; a weak model, and a good one (as mlife.demo's Digits)
WEAK = {"C": 0.01, "max_iter": 2000}
GOOD = {"C": 1.0, "max_iter": 2000}


def step(task: dsl.PipelineTask, name: str) -> dsl.PipelineTask:
    return task.set_display_name(name).set_caching_options(False)


@dsl.pipeline(name=NAME, description="MLife's closed loop for the digits: data in, group items, train, test, "
              "register, deploy, feedback to badcases, badcase test set, a better model, a regressed one blocked "
              "by the gate, the better one deployed.")
def digits_loop(function: str = "digits", model: str = "digits", deployment: str = "digits", limit: int = 0,
                traffic: int = 100, max_feedback: int = 6, code_dir: str = "", timeout: float = 600.0) -> None:
    data = step(make_digits(limit=limit, code_dir=code_dir), "data in: digits as PNGs")
    document = step(import_images(data=data.outputs["data"], name=model), "import into DAM")
    grouped = step(group_items(function=function, document_id=document.output, name=model), "group items")
    train_id, test_id = grouped.outputs["train_dataset_id"], grouped.outputs["test_dataset_id"]

    def version(label: str, params: dict[str, float], badcase_set: dsl.PipelineTask | None = None,
                failed: dsl.PipelineTask | None = None) -> dsl.PipelineTask:
        """Train, then wait for the registered version tested on the split (and on the badcase test set: its
        training starts only once that set is frozen, so MTT tests the new version on it). `failed`: a task the
        training follows even when it failed."""
        trained = step(train_model(function=function, model=model, params=params, label=label,
                                   train_dataset_id=train_id, test_dataset_id=test_id, code_dir=code_dir,
                                   timeout=timeout), f"{label}: train")
        if badcase_set is not None:
            trained.after(badcase_set)
        if failed is not None:
            trained.after(failed).ignore_upstream_failure()
        registered = step(registered_version(model=model, task_id=trained.output, test_dataset_id=test_id,
                                             badcase_dataset_id=badcase_set.output if badcase_set else "",
                                             timeout=timeout), f"{label}: registered")
        return registered

    def deployed(label: str, registered: dsl.PipelineTask, promote: bool = True) -> dsl.PipelineTask:
        return step(deploy(deployment=deployment, model=model, version_id=registered.outputs["version_id"],
                           promote=promote, timeout=timeout), f"{label}: request deployment")

    v1 = version("v1", WEAK)
    v1_live = deployed("v1", v1)
    served = step(serve_and_feedback(function=function, deployment=deployment, version_id=v1.outputs["version_id"],
                                     data=data.outputs["data"], dataset_id=train_id, traffic=traffic,
                                     max_feedback=max_feedback, timeout=timeout),
                  "v1: serve, wrong answers as feedback").after(v1_live)
    badcase_set = step(add_to_test_data(function=function, version_id=v1.outputs["version_id"],
                                        test_dataset_id=test_id, timeout=timeout), "badcases to test data")
    badcase_set.after(served)

    v2 = version("v2", GOOD, badcase_set)
    tested = step(test_model(function=function, model=model, dataset_id=test_id, timeout=timeout),
                  "v2: testing task on the test split").after(v2)
    v2_live = deployed("v2", v2).after(tested)
    fixed = step(fixed_by_production(function=function, version_id=v2.outputs["version_id"], timeout=timeout),
                 "v2 is production: badcases fixed").after(v2_live)

    blocked = deployed("v1 again (blocked by the gate)", v1, promote=False).after(fixed)

    v3 = version("v3", GOOD, badcase_set, failed=blocked)  # the blocked request fails by design: the loop goes on
    v3_live = deployed("v3", v3)
    step(serve_and_feedback(function=function, deployment=deployment, version_id=v3.outputs["version_id"],
                            data=data.outputs["data"], dataset_id=test_id, traffic=20, max_feedback=0,
                            timeout=timeout), "v3: serves").after(v3_live)


def compile_pipeline(path: str) -> None:
    compiler.Compiler().compile(digits_loop, package_path=path)
