import pytest

from oro_graph.settings import Settings, load_settings


def test_defaults_are_embedded_sqlite(monkeypatch):
    for name in ("ORO_DATABASE_URL", "ORO_REQUIRED_SUCCESSES", "ORO_LEASE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.database_url == "sqlite:///./oro_graph.db"
    assert (s.required_successes, s.lease_seconds, s.submission_cooldown_seconds) == (3, 300, 43200)
    assert (s.max_agent_bytes, s.rate_limit_per_minute, s.timestamp_skew_seconds) == (1048576, 100, 60)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h:5432/d", "postgresql+psycopg://u@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_postgres_urls_are_normalised(given, expected):
    assert Settings(database_url=given).database_url == expected


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("ORO_REQUIRED_SUCCESSES", "0"),
        ("ORO_LEASE_SECONDS", "soon"),
        ("ORO_DATABASE_URL", "mysql://x"),
        ("ORO_PUBLIC_BASE_URL", "example.com"),
        ("ORO_SUBMIT_RATE_LIMIT", "often"),
    ],
)
def test_bad_values_fail_naming_the_variable(monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    with pytest.raises(SystemExit) as err:
        load_settings()
    assert env in str(err.value)


def test_generated_secret_is_stable_and_private(tmp_path):
    s1 = Settings(data_dir=tmp_path)
    s2 = Settings(data_dir=tmp_path)
    assert s1.secret == s2.secret and len(s1.secret) >= 40
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    assert Settings(data_dir=tmp_path, secret_key="explicit").secret == b"explicit"


def test_state_dir_sits_beside_the_sqlite_file(tmp_path):
    s = Settings(database_url=f"sqlite:///{tmp_path}/x/oro.db")
    assert s.state_dir == tmp_path / "x" / "oro_graph_data"
