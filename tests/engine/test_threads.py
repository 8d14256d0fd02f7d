"""Work that must match a fresh process runs with the default torch thread count, whatever the caller uses."""
import torch

from engine.threads import default_threads, run_with_default_threads


def test_runs_with_the_default_thread_count_and_leaves_the_callers_alone():
    default = default_threads()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert run_with_default_threads(torch.get_num_threads) == default
        assert torch.get_num_threads() == 1            # the caller keeps its own count
    finally:
        torch.set_num_threads(before)


def test_errors_reach_the_caller():
    def fail():
        raise ValueError("boom")

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        try:
            run_with_default_threads(fail)
        except ValueError as exc:
            assert str(exc) == "boom"
        else:
            raise AssertionError("the error was swallowed")
    finally:
        torch.set_num_threads(before)
