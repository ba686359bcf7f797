import pytest

import tarry


def make() -> tarry.Tarry:
    return tarry.Tarry("t", database_url="sqlite:///:memory:")


async def noop(ctx: tarry.Context) -> None:
    return None


def test_id_defaults_to_the_name_with_dashes() -> None:
    app = make()

    @app.function(trigger="a")
    async def send_welcome_email(ctx: tarry.Context) -> None: ...

    assert app.functions == ["send-welcome-email"]


def test_the_decorator_returns_the_function_unchanged() -> None:
    app = make()
    assert app.function(trigger="a")(noop) is noop


def test_duplicate_function_ids_are_refused_at_decoration() -> None:
    app = make()
    app.function(trigger="a")(noop)
    with pytest.raises(ValueError, match="duplicate function id 'noop'"):
        app.function(trigger="b")(noop)
    with pytest.raises(ValueError, match="duplicate function id 'x'"):
        app.function(trigger="a", id="x")(noop)
        app.function(trigger="b", id="x")(noop)
    assert app.functions == ["noop", "x"]


@pytest.mark.parametrize(
    ("trigger", "rule"),
    [
        ("", "non-empty"),
        ([], "an event name, a list of names"),
        ({"event": "a"}, "an event name, a list of names"),
        (42, "an event name, a list of names"),
        (["a", 3], "non-empty string"),
        ("app/*/x", "only at the end"),
        ("x" * 257, "at most 256"),
    ],
)
def test_unknown_trigger_forms_are_refused(trigger: object, rule: str) -> None:
    app = make()
    with pytest.raises(ValueError, match="invalid trigger") as info:
        app.function(trigger=trigger)(noop)  # type: ignore[arg-type]
    assert rule in str(info.value)
    assert app.functions == []


@pytest.mark.parametrize("retries", [-1, 101, 1.5, True, "3"])
def test_invalid_retries_are_refused(retries: object) -> None:
    with pytest.raises(ValueError, match="invalid retries"):
        make().function(trigger="a", retries=retries)(noop)  # type: ignore[arg-type]


def test_cancel_on_takes_cancel_on_items() -> None:
    with pytest.raises(ValueError, match=r"tarry\.CancelOn"):
        make().function(trigger="a", cancel_on=[{"event": "x"}])(noop)  # type: ignore[list-item]


@pytest.mark.parametrize("url", ["mysql://root@localhost/db", "sqlite:/x.db", "tarry.db", "", "redis://localhost"])
def test_unknown_database_urls_are_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="invalid database URL"):
        tarry.Tarry("t", database_url=url or "nothing")


def test_app_id_must_be_a_non_empty_string() -> None:
    with pytest.raises(ValueError, match="invalid app id"):
        tarry.Tarry("")
