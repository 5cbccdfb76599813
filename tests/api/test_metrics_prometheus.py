"""Debian's real Prometheus scraping `devenv server`'s `GET /metrics` on loopback with
bearer tokens, and queried through its own HTTP API: the series a user graphs and
alerts on follow what happens to their environments; scrapes without a valid token
are refused."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from devenv.api.metrics import families
from devenv.client.fleet_figures import Snapshot
from devenv.client.tokens import User
from tests.api.conftest import Api
from tests.e2e.harness import free_port, wait_for

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
SCRAPED_AS = ("admin", "alice", "mona")
"""The jobs that scrape with a user's token (the job is named for the user)."""


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def instant(self, promql: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The one sample's value; None when the query finds no series."""
        result = self.instant(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def until(self, promql: str, expected: float | None, timeout: float = 60) -> None:
        wait_for(lambda: self.value(promql) == expected, timeout, f"{promql} == {expected}")

    def targets(self) -> dict[str, dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["labels"]["job"]: t for t in answer["data"]["activeTargets"]}


def scrape_config(api: Api, tokens: Path) -> str:
    """Prometheus's configuration: one job per token, and two without a valid one."""
    target = api.url.removeprefix("http://")
    jobs = []
    for job in (*SCRAPED_AS, "wrong", "anonymous"):
        auth = (
            f"    authorization:\n      credentials_file: {tokens / job}\n"
            if job != "anonymous"
            else ""
        )
        jobs.append(
            f"  - job_name: {job}\n    metrics_path: /metrics\n{auth}"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
    return "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n" + "".join(jobs)


@pytest.fixture(scope="module")
def prometheus(api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Debian's prometheus is required: apt-get install prometheus")
    root = tmp_path_factory.mktemp("prometheus")
    if "mona" not in api.tokens:
        key = root / "mona_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        added = api.world.run("users", "add", "mona", "--key", f"{key}.pub", "--local-backend")
        api.tokens["mona"] = added.stdout.strip()
    tokens = root / "tokens"
    tokens.mkdir(mode=0o700)
    for job in SCRAPED_AS:
        (tokens / job).write_text(api.tokens[job] + "\n")
    (tokens / "wrong").write_text("devenv_" + "Zq9" * 14 + "\n")
    config = root / "prometheus.yml"
    config.write_text(scrape_config(api, tokens))
    port = free_port()
    log = root / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_for(lambda: _ready(server), 60, "Prometheus ready")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(server: Prometheus) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"prometheus exited: {server.log.read_text()[-2000:]}")
    try:
        return httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_prometheus_sees_a_users_environments_start_and_end(
    api: Api, prometheus: Prometheus
) -> None:
    running = 'devenv_environments{job="mona",status="running"}'
    ended = 'devenv_terminations_total{job="mona",reason="%s"}'
    prometheus.until('up{job="mona"}', 1)
    prometheus.until('devenv_cost_dollars_per_hour{job="mona",status="suspended"}', 0)
    assert prometheus.value(running) is None

    api.start("mona", "prom-run")
    prometheus.until(running, 1)
    prometheus.until('devenv_environments{job="admin",owner="mona",status="running"}', 1)
    labels = prometheus.instant(running)[0]["metric"]
    assert (labels["backend"], labels["owner"]) == ("local", "mona")
    # alice scrapes with her own token: mona's environment is not hers to see
    prometheus.until('up{job="alice"}', 1)
    assert prometheus.instant('devenv_environments{job="alice",owner="mona"}') == []

    api.start("mona", "prom-idle", inactivity_duration="3s")
    prometheus.until(ended % "inactivity_duration_exceeded", 1)
    with api.client("mona") as http:
        assert http.delete("/environments/prom-run", params={"wait": "true"}).status_code == 200
    prometheus.until(ended % "stopped_by_user", 1)
    prometheus.until(running, None)
    assert prometheus.value(ended % "inactivity_duration_exceeded") == 1


def test_scrapes_without_a_valid_token_are_refused(api: Api, prometheus: Prometheus) -> None:
    prometheus.until('up{job="admin"}', 1)
    prometheus.until('up{job="anonymous"}', 0)
    prometheus.until('up{job="wrong"}', 0)
    targets = prometheus.targets()
    for job in ("anonymous", "wrong"):
        assert "401" in targets[job]["lastError"], targets[job]
    assert prometheus.instant('devenv_environments{job=~"anonymous|wrong"}') == []
    # from loopback too: no token, no figures
    answer = httpx.get(f"{api.url}/metrics", timeout=10)
    assert answer.status_code == 401 and list(answer.json()) == ["error"]
    assert "devenv_" + "Zq9" not in api.server_log()


def test_every_query_of_the_grafana_dashboard_runs_on_what_prometheus_scraped(
    prometheus: Prometheus,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    prometheus.until('up{job="admin"}', 1)
    always = ("devenv_connections", "devenv_cost", "devenv_idle", "devenv_saved", "devenv_metrics")
    for query in queries:
        found = prometheus.instant(query.replace("$job", "admin"))  # a PromQL error is a 400
        if query.startswith(("sum(", "max(")) and any(name in query for name in always):
            assert found, query  # series present even with no environment running
    graphed = " ".join(queries)
    scraped = {family.name for family in families(_empty(), _admin())}
    assert {name for name in scraped if name not in graphed} == set()


def _empty() -> Snapshot:
    return Snapshot(at=datetime.now(UTC), live=[], closed={}, without_memo=0, read_seconds=0)


def _admin() -> User:
    return User(name="root", admin=True, token_sha256="0" * 64, created_at=datetime.now(UTC))


def test_promtool_finds_nothing_to_lint_in_a_scrape(api: Api) -> None:
    """Prometheus's own linter (Debian's prometheus package ships promtool): names, types,
    help texts and counters' _total suffix as its conventions want them."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is required: apt-get install prometheus")
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    scraped = httpx.get(f"{api.url}/metrics", headers=headers, timeout=30)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    linted = subprocess.run(
        [promtool, "check", "metrics"], input=scraped.text, capture_output=True, text=True
    )
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")
