"""Text jobs (masked diffusion LM) end to end: REST, SSE streams, OpenAI-compatible APIs."""

from __future__ import annotations

import json

import requests

TEXT = {
    "model": "tiny-mlm",
    "input": {"prompt": "the cat sat", "gen_length": 16, "block_length": 8, "steps": 8, "seed": 5},
}


def read_sse(data: bytes) -> list[dict]:
    """Parse an SSE body into [{id, event, data}] (comments and retry lines skipped)."""
    events = []
    for block in data.decode().split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        if "data" in fields:
            events.append(fields)
    return events


def test_text_job_runs_to_success(client, auth, worker, wait_for):
    job = client.post("/v1/jobs", json=TEXT, headers=auth).get_json()
    assert job["kind"] == "text"
    done = wait_for(job["id"], auth)
    assert done["status"] == "succeeded", done["error"]
    output = done["output"]
    assert isinstance(output["text"], str) and output["text"]
    assert len(output["token_ids"]) == 16
    assert output["forwards"] == 8
    assert done["metrics"]["forwards_per_token"] == 0.5
    (artifact,) = done["artifacts"]
    assert artifact["content_type"].startswith("text/plain")
    assert requests.get(artifact["url"], timeout=10).text == output["text"]


def test_same_seed_same_tokens(client, auth, worker, wait_for):
    body = {**TEXT, "input": {**TEXT["input"], "temperature": 1.0}}
    runs = [
        wait_for(client.post("/v1/jobs", json=body, headers=auth).get_json()["id"], auth)
        for _ in range(2)
    ]
    assert runs[0]["output"]["token_ids"] == runs[1]["output"]["token_ids"]


def test_threshold_decoding_reports_its_forwards(client, auth, worker, wait_for):
    body = {**TEXT, "input": {**TEXT["input"], "threshold": 0.05}}
    done = wait_for(client.post("/v1/jobs", json=body, headers=auth).get_json()["id"], auth)
    assert done["status"] == "succeeded"
    assert done["output"]["forwards"] < 16  # a low threshold commits several tokens a step
    assert done["metrics"]["forwards_per_token"] == done["output"]["forwards"] / 16


def test_events_stream_blocks_and_resumes(client, auth, worker, wait_for):
    job = client.post("/v1/jobs", json=TEXT, headers=auth).get_json()
    wait_for(job["id"], auth)
    full = read_sse(client.get(f"/v1/jobs/{job['id']}/events", headers=auth).get_data())
    types = [e["event"] for e in full]
    assert types[0] == "job.started" and types[-1] == "job.succeeded"
    texts = [json.loads(e["data"]).get("text") for e in full]
    block_texts = [t for t in texts if t is not None]
    assert len(block_texts) == 2  # one per finished block, the text so far
    final = json.loads(full[-1]["data"])["data"]
    assert final["status"] == "succeeded" and block_texts[-1] == final["output"]["text"]
    # Resuming after any event gives exactly the rest.
    middle = full[len(full) // 2]["id"]
    rest = read_sse(
        client.get(
            f"/v1/jobs/{job['id']}/events", headers={**auth, "Last-Event-ID": middle}
        ).get_data()
    )
    assert [e["id"] for e in rest] == [e["id"] for e in full[len(full) // 2 + 1 :]]


def test_events_of_another_owner_are_404(client, auth, other_auth):
    job = client.post("/v1/jobs", json=TEXT, headers=auth).get_json()
    assert client.get(f"/v1/jobs/{job['id']}/events", headers=other_auth).status_code == 404


def test_text_validation_names_fields(client, auth):
    cases = {
        "input.gen_length": {"gen_length": 16, "block_length": 5},  # "a multiple of block_length"
        "input.steps": {"gen_length": 16, "block_length": 8, "steps": 3},
        "input.gen_length ": {"gen_length": 128},
        "input.threshold": {"threshold": 0.5, "remasking": "random"},
        "input.remasking": {"remasking": "sometimes"},
        "input.messages": {"messages": [{"role": "user", "content": "hi"}], "prompt": None},
    }
    for field, params in cases.items():
        body = {"model": "tiny-mlm", "input": {"prompt": "x", **params}}
        body["input"] = {k: v for k, v in body["input"].items() if v is not None}
        response = client.post("/v1/jobs", json=body, headers=auth)
        assert response.status_code == 422, (field, response.get_json())
        fields = [e["field"] for e in response.get_json()["errors"]]
        assert field.strip() in fields, (field, fields)


def test_batchable_jobs_share_forwards(client, auth, worker, wait_for):
    # Occupy the single worker so the text jobs queue up together behind it.
    slow = {
        "model": "tiny-sd-slow",
        "input": {"prompt": "wait", "width": 128, "height": 128, "num_inference_steps": 60},
    }
    blocker = client.post("/v1/jobs", json=slow, headers=auth).get_json()
    wait_for(blocker["id"], auth, until=lambda j: j["status"] == "running")
    prompts = ["a", "the dog ran far", "one two"]
    ids = [
        client.post(
            "/v1/jobs",
            headers=auth,
            json={"model": "tiny-mlm", "input": {**TEXT["input"], "prompt": p, "batch": True}},
        ).get_json()["id"]
        for p in prompts
    ]
    done = [wait_for(i, auth) for i in ids]
    assert all(j["status"] == "succeeded" for j in done), [j["error"] for j in done]
    assert [j["metrics"]["batch_size"] for j in done] == [3, 3, 3]
    assert all(j["output"]["forwards"] == 8 for j in done)  # 8 forwards served all three
    assert all(len(j["output"]["token_ids"]) == 16 for j in done)


def test_openai_completion(client, auth, worker):
    response = client.post(
        "/v1/completions",
        headers=auth,
        json={"model": "tiny-mlm", "prompt": "the cat", "max_tokens": 16, "seed": 1},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["finish_reason"] == "stop"
    job = client.get(f"/v1/jobs/{body['genq_job']}", headers=auth).get_json()
    assert body["choices"][0]["text"] == job["output"]["text"]
    assert body["usage"]["completion_tokens"] == 16


def test_openai_completion_stream(client, auth, worker):
    response = client.post(
        "/v1/completions",
        headers=auth,
        json={"model": "tiny-mlm", "prompt": "the cat", "max_tokens": 16, "stream": True},
    )
    assert response.mimetype == "text/event-stream"
    lines = [e["data"] for e in read_sse(response.get_data())]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    streamed = "".join(c["choices"][0]["text"] for c in chunks)
    job = client.get(f"/v1/jobs/{chunks[0]['genq_job']}", headers=auth).get_json()
    assert streamed == job["output"]["text"]
    assert len([c for c in chunks if c["choices"][0]["text"]]) >= 2  # one per block


def test_openai_chat_completion(client, auth, worker):
    messages = [{"role": "user", "content": "hello there"}]
    response = client.post(
        "/v1/chat/completions",
        headers=auth,
        json={"model": "tiny-mlm-chat", "messages": messages, "max_tokens": 8},
    )
    assert response.status_code == 200, response.get_json()
    choice = response.get_json()["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    streamed = client.post(
        "/v1/chat/completions",
        headers=auth,
        json={"model": "tiny-mlm-chat", "messages": messages, "max_tokens": 8, "stream": True},
    )
    chunks = [json.loads(e["data"]) for e in read_sse(streamed.get_data())[:-1]]
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert "content" in chunks[0]["choices"][0]["delta"]


def test_openai_errors_use_openai_field_names(client, auth):
    response = client.post(
        "/v1/chat/completions",
        headers=auth,
        json={"model": "tiny-mlm", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["messages"]
    response = client.post(
        "/v1/completions",
        headers=auth,
        json={"model": "tiny-mlm", "prompt": "x", "max_tokens": 1000, "frequency": 1},
    )
    fields = sorted(e["field"] for e in response.get_json()["errors"])
    assert fields == ["frequency"]
    response = client.post(
        "/v1/completions",
        headers=auth,
        json={"model": "tiny-mlm", "prompt": "x", "max_tokens": 1000},
    )
    assert [e["field"] for e in response.get_json()["errors"]] == ["max_tokens"]
    response = client.post(
        "/v1/completions", headers=auth, json={"model": "tiny-sd", "prompt": "x"}
    )
    assert [e["field"] for e in response.get_json()["errors"]] == ["model"]
