"""`llmrec serve`: the real server process on an ephemeral port, over a tiny saved run."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx
import pytest
from helpers import Server
from test_pipeline import runner

from llmrec.cli import app
from llmrec.generate import Recommender

pytestmark = pytest.mark.process  # starts processes, servers or engines: the process tier


@pytest.fixture(scope="module")
def run_dir(atomic_run):
    return atomic_run


@pytest.fixture(scope="module")
def server(run_dir):
    srv = Server(run_dir, "--max-batch", "8", "--max-wait-ms", "20")
    yield srv
    srv.stop()


def items(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["item"] for r in response.json()["items"]]


def test_answers_are_what_recommend_gives(server, run_dir):
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.url + "/readyz").json()["status"] == "ready"
    rec = Recommender.from_run(run_dir)
    for history, k in ((["m1", "m2", "m3"], 5), (["m7"], 10), (["m3", "m9", "m12", "m4"], 3)):
        served = httpx.post(server.url + "/recommend", json={"history": history, "k": k})
        offline = rec.recommend([history], k=k)[0]
        assert items(served) == [r.item for r in offline]
        assert [r["score"] for r in served.json()["items"]] == pytest.approx(
            [r.score for r in offline], abs=1e-4
        )
    cli = runner.invoke(app, ["recommend", str(run_dir), "--user", "u3", "-k", "4", "--json"])
    assert items(httpx.post(server.url + "/recommend", json={"user": "u3", "k": 4})) == [
        json.loads(line)["item"] for line in cli.stdout.splitlines()
    ]
    requests = [{"history": ["m1", "m2"], "k": 3}, {"user": "u5", "k": 6},
                {"history": ["m4"], "k": 3, "explain": True}]  # fmt: skip
    batch = httpx.post(server.url + "/recommend/batch", json={"requests": requests})
    assert batch.status_code == 200
    results = batch.json()["results"]
    assert [len(r["items"]) for r in results] == [3, 6, 3] and results[1]["user"] == "u5"
    assert [r["item"] for r in results[0]["items"]] == [r.item for r in rec.recommend([["m1", "m2"]], k=3)[0]]
    assert all(r["reason"] and r["evidence"] is not None for r in results[2]["items"])
    shortlist = httpx.post(
        server.url + "/recommend", json={"history": ["m1"], "k": 2, "candidates": ["m5", "m6", "m7"]}
    )
    assert set(items(shortlist)) <= {"m5", "m6", "m7"}


def test_concurrent_requests_are_batched_and_exact(server, run_dir):
    histories = [[f"m{(i * 7) % 30}", f"m{(i * 11 + 1) % 30}"] for i in range(40)]

    async def call_all():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(
                *(client.post("/recommend", json={"history": h, "k": 5}) for h in histories)
            )

    before = httpx.get(server.url + "/metrics").text
    responses = asyncio.run(call_all())
    offline = Recommender.from_run(run_dir).recommend(histories, k=5)
    assert [items(r) for r in responses] == [[x.item for x in row] for row in offline]
    after = httpx.get(server.url + "/metrics").text

    def count(text: str, name: str) -> float:
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))

    calls = count(after, "llmrec_batch_users_count") - count(before, "llmrec_batch_users_count")
    users = count(after, "llmrec_batch_users_sum") - count(before, "llmrec_batch_users_sum")
    assert users == 40 and calls < 40  # decoded in batches, not one by one
    assert 'llmrec_requests_total{endpoint="/recommend",status="200"}' in after
    assert "llmrec_queue_depth" in after and "llmrec_request_seconds_bucket" in after


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"user": "nobody"}, 404, "user"),
        ({"history": ["m1", "ghost"]}, 400, "history"),
        ({"history": ["m1"], "candidates": ["ghost"]}, 400, "candidates"),
        ({"history": []}, 422, "history"),
        ({"history": ["m1"], "k": 0}, 422, "k"),
        ({"history": ["m1"], "k": "ten"}, 422, "k"),
        ({"user": "u1", "history": ["m1"]}, 422, "user"),
        ({"history": ["m1"], "kk": 3}, 422, "kk"),
        ("{not json", 422, None),
    ],
)
def test_bad_requests_get_4xx_naming_the_field_and_the_server_keeps_serving(server, body, status, field):
    if isinstance(body, str):
        response = httpx.post(
            server.url + "/recommend", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = httpx.post(server.url + "/recommend", json=body)
    assert response.status_code == status, response.text
    if field is not None:
        assert field in response.text
    assert httpx.post(server.url + "/recommend", json={"history": ["m1"], "k": 2}).status_code == 200


def test_a_full_queue_answers_503_with_retry_after(run_dir):
    srv = Server(run_dir, "--max-batch", "1", "--max-wait-ms", "0", "--max-queue", "1")
    try:

        async def flood():
            async with httpx.AsyncClient(base_url=srv.url, timeout=60) as client:
                body = {"history": ["m1", "m2"], "k": 5, "explain": True}
                return await asyncio.gather(*(client.post("/recommend", json=body) for _ in range(60)))

        responses = asyncio.run(flood())
        codes = [r.status_code for r in responses]
        assert set(codes) == {200, 503}, codes
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "overloaded" in busy.json()["detail"]
        assert httpx.get(srv.url + "/healthz").status_code == 200
    finally:
        srv.stop()


def test_sigterm_answers_every_accepted_request_then_exits(run_dir):
    srv = Server(run_dir, "--max-batch", "4", "--max-wait-ms", "5")

    async def load_then_stop():
        limits = httpx.Limits(max_keepalive_connections=0)  # one connection per request
        async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=limits) as client:
            body = {"history": ["m1", "m2"], "k": 5, "explain": True}
            tasks = [asyncio.create_task(client.post("/recommend", json=body)) for _ in range(40)]
            await asyncio.sleep(0.3)
            srv.proc.send_signal(signal.SIGTERM)
            return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(load_then_stop())
    answered = [r for r in results if isinstance(r, httpx.Response)]
    refused = [r for r in results if isinstance(r, httpx.ConnectError)]
    assert len(answered) + len(refused) == 40, [
        r for r in results if not isinstance(r, httpx.Response | httpx.ConnectError)
    ]
    assert answered and all(r.status_code == 200 for r in answered)
    log = srv.proc.communicate(timeout=60)[0]
    # uvicorn shuts down gracefully, then re-raises the signal: the conventional exit status of SIGTERM
    assert "Finished server process" in log and srv.proc.returncode == -signal.SIGTERM


def test_items_added_to_the_run_reach_the_running_server(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    srv = Server(copy)
    try:
        body = {"history": ["new1", "m2"], "k": 40, "exclude_history": False}
        assert httpx.post(srv.url + "/recommend", json=body).status_code == 400  # not in the catalogue yet
        new = tmp_path / "new.csv"
        new.write_text("iid,name,genre\nnew1,Film one again,comedy\n")
        assert runner.invoke(app, ["items", "add", str(copy), str(new)]).exit_code == 0
        deadline = time.time() + 30
        while (response := httpx.post(srv.url + "/recommend", json=body)).status_code != 200:
            assert time.time() < deadline, response.text
            time.sleep(0.5)
        assert "new1" in items(response) and len(items(response)) == 31
    finally:
        srv.stop()
