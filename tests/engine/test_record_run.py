"""Project.record_run: the one way a finished run is recorded (the CLI's train and the designer's panel)."""
import pytest
import torch

from engine.cli import main
from engine.graph import Graph
from engine.project import MAX_SAVED_BATCH_POINTS, Project, downsample, load_project
from engine.training import TrainConfig, TrainResult

# what every run record holds, whoever trained it
RUN_KEYS = {"id", "started_at", "dataset", "dataset_name", "config", "task", "class_names", "stopped", "best_epoch",
            "device", "epochs_run", "seconds", "test", "history", "batch_losses", "batches_per_epoch"}


def fake_result(epochs=2, best=1, note=""):
    states = {e: {"w": torch.full((3,), float(e))} for e in range(1, epochs + 1)}
    return TrainResult(model=None, history=[{"epoch": e, "loss": 1.0 / e} for e in states], test_metrics={"loss": 0.5},
                       best_epoch=best, stopped="completed", device="cpu", state_dict=states[best],
                       checkpoints=states, task="multiclass", class_names=["a", "b"], seconds=1.25, note=note)


def record(project, result=None, **kw):
    args = {"config": TrainConfig(epochs=2), "dataset": "digits", "started_at": "2024-01-01T00:00:00+0000",
            "dataset_name": "digits", "batch_losses": [1.0, 0.5, 0.25], "batches_per_epoch": 2, **kw}
    return project.record_run(result or fake_result(), **args)


def test_a_run_record_holds_the_data_settings_task_classes_and_batch_losses():
    project = Project(Graph("g"))
    run = record(project, options={"target": "label"})
    assert set(run) == RUN_KEYS
    assert run["id"] == 1 and run["task"] == "multiclass" and run["class_names"] == ["a", "b"]
    assert run["config"] == TrainConfig(epochs=2).to_dict() and run["batch_losses"] == [1.0, 0.5, 0.25]
    assert project.runs == [run] and project.config == TrainConfig(epochs=2)
    assert project.dataset == "digits" and project.dataset_options == {"target": "label"}
    assert torch.equal(project.weights["w"], torch.full((3,), 1.0))
    assert sorted(project.checkpoints[1]) == [1, 2]          # the epochs' weights, kept to restore one


def test_ids_are_one_more_than_the_highest_whatever_the_history_holds():
    project = Project(Graph("g"), runs=[{"id": 1}, {"id": 5}, {"id": "7"}, {"id": True}, "odd", {}])
    assert project.next_run_id() == 6
    assert record(project)["id"] == 6 and record(project)["id"] == 7
    assert Project(Graph("g")).next_run_id() == 1


def test_weights_not_applied_are_still_recorded_with_their_epochs():
    project = Project(Graph("g"), weights={"w": torch.zeros(3)})
    record(project, apply_weights=False)
    assert torch.equal(project.weights["w"], torch.zeros(3)) and 1 in project.checkpoints
    assert project.dataset_options == {}                  # no options given: the project's stay


def test_many_batch_losses_are_averaged_down_and_say_from_how_many():
    project = Project(Graph("g"))
    losses = [float(i % 10) for i in range(MAX_SAVED_BATCH_POINTS * 3)]
    run = record(project, batch_losses=losses)
    assert len(run["batch_losses"]) == MAX_SAVED_BATCH_POINTS and run["batch_losses_downsampled_from"] == len(losses)
    assert run["batch_losses"] == downsample(losses)
    assert run["batch_losses"][0] == pytest.approx(1.0)     # the mean of 0, 1, 2


@pytest.mark.slow
def test_the_cli_records_what_the_designer_records(tmp_path):
    path = tmp_path / "digits.json"
    assert main(["new", "digits_mlp", "-o", str(path)]) == 0
    assert main(["train", str(path), "--dataset", "digits", "--epochs", "2", "--batch-size", "64"]) == 0
    project = load_project(path.with_suffix(".deepwire"))
    run = project.runs[0]
    assert set(run) == RUN_KEYS and run["id"] == 1
    assert run["task"] == "multiclass" and run["class_names"] == [str(i) for i in range(10)]
    assert run["dataset"] == "digits" and run["dataset_name"]
    assert run["batches_per_epoch"] > 0 and len(run["batch_losses"]) == 2 * run["batches_per_epoch"]
    assert sorted(project.checkpoints[1]) == [1, 2]          # epochs kept, as the designer keeps them
    # a history with a gap: the next id follows the highest, not the count
    project.runs[0]["id"] = 4
    from engine.project import save_project
    save_project(path.with_suffix(".deepwire"), project)
    assert main(["train", str(path.with_suffix(".deepwire")), "--epochs", "1"]) == 0
    assert [r["id"] for r in load_project(path.with_suffix(".deepwire")).runs] == [4, 5]
