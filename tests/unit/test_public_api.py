"""The public surface is pinned: a name added or removed must be a decision."""

import tarry
import tarry.testing


def test_public_names() -> None:
    assert sorted(tarry.__all__) == tarry.__all__
    assert set(tarry.__all__) == {
        "Batch", "CancelOn", "Concurrency", "Context", "Cron", "DeadLetter", "DeadLetterKind", "Debounce", "Event",
        "ExpressionError", "InvalidEventError", "NonRetriableError", "Priority", "RateLimit", "ResumeHandle",
        "RetryAfterError", "Run", "RunStatus", "Singleton", "Step", "StepError", "StepRecord", "StepStatus",
        "StoreError", "Tarry", "TarryError", "Throttle", "Timeouts", "Trigger", "Wait", "WaitTimeoutError",
        "testing",
    }  # fmt: skip
    for name in tarry.__all__:
        assert hasattr(tarry, name)


def test_error_hierarchy() -> None:
    assert issubclass(tarry.InvalidEventError, ValueError)
    assert issubclass(tarry.ExpressionError, ValueError)
    for error in (tarry.InvalidEventError, tarry.StepError, tarry.NonRetriableError, tarry.RetryAfterError,
                  tarry.WaitTimeoutError, tarry.StoreError):  # fmt: skip
        assert issubclass(error, tarry.TarryError)


def test_testing_names() -> None:
    assert tarry.testing.__all__ == ["VirtualClock"]


def test_every_client_call_and_step_method_has_a_sync_twin() -> None:
    for name in ("send", "notify", "resume", "get_run", "wait_for_run", "runs_for_event", "list_runs", "cancel_run",
                 "idle", "dead_letters", "rerun", "cancel_runs", "rerun_runs"):  # fmt: skip
        assert callable(getattr(tarry.Tarry, name + "_sync"))
    for name in ("run", "sleep", "sleep_until", "send_event", "wait_for_event", "invoke", "resume_url",
                 "wait_for_resume"):  # fmt: skip
        assert callable(getattr(tarry.Step, name + "_sync"))
