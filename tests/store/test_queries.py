"""Both dialects keep one set of named queries and one ordered list of migrations."""

from tarry._store.queries import load_migrations, load_queries


def test_both_dialects_define_the_same_queries_and_migrations() -> None:
    assert set(load_queries("sqlite")) == set(load_queries("postgresql"))
    assert [(v, n) for v, n, _ in load_migrations("sqlite")] == [(v, n) for v, n, _ in load_migrations("postgresql")]


def test_postgresql_queries_use_named_parameters_only() -> None:
    for name, sql in load_queries("postgresql").items():
        assert ":" not in sql.replace("::", "").replace("%(", ""), f"{name} has a SQLite-style parameter"
