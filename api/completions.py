"""OpenAI-compatible ``/v1/completions`` and ``/v1/chat/completions`` over text jobs.

Each request becomes an ordinary text job (visible at ``/v1/jobs/{id}``). Without
``stream`` the answer waits for the job (up to ``GENQ_MAX_WAIT_S``); with ``stream: true``
every finished block is a chunk of Server-Sent Events, then ``data: [DONE]``. genq's decoding
parameters (``block_length``, ``steps``, ``remasking``, ``threshold``, ``cfg_scale``) are
accepted as extra body fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from api.auth import caller
from api.errors import Problem, invalid
from api.events import follow
from api.jobs import job_fields, json_body, publish
from api.schemas import FieldErrors, parse_job
from api.services import Services, db, services
from pipelines.registry import ModelSpec
from storage import jobs
from storage.db import as_utc
from storage.models import TERMINAL, Job

bp = Blueprint("completions", __name__)

EXTRA = ("block_length", "steps", "remasking", "threshold", "cfg_scale", "temperature", "seed")
# OpenAI fields accepted and ignored because they have one value here.
IGNORED = ("n", "user", "stop", "logprobs", "echo", "top_p")
# genq's field names as an OpenAI client knows them.
RENAMED = {"input.gen_length": "max_tokens", "input.prompt": "prompt"}


def _shape(spec: ModelSpec | None, max_tokens: Any) -> dict[str, Any]:
    """Map ``max_tokens`` onto gen_length, with a block length and steps that fit it."""
    if spec is None or not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return {} if max_tokens is None else {"gen_length": max_tokens}
    d = spec.defaults
    block = d.block_length if max_tokens % d.block_length == 0 else max_tokens
    blocks = max(1, max_tokens // block)
    return {
        "gen_length": max_tokens,
        "block_length": block,
        "steps": max(blocks, d.steps // blocks * blocks),
    }


def _job_body(body: dict[str, Any], chat: bool, spec: ModelSpec | None) -> dict[str, Any]:
    prompt_key = "messages" if chat else "prompt"
    allowed = {"model", prompt_key, "max_tokens", "stream", *EXTRA, *IGNORED}
    errors = [{"field": k, "message": "is not a known field"} for k in body if k not in allowed]
    if not isinstance(body.get("stream", False), bool):
        errors.append({"field": "stream", "message": "must be a boolean"})
    if prompt_key not in body:
        errors.append({"field": prompt_key, "message": "is required"})
    if errors:
        raise invalid(errors)
    given = {k: body[k] for k in EXTRA if k in body}
    shaped = _shape(spec, body.get("max_tokens"))
    return {"model": body.get("model"), "input": {prompt_key: body[prompt_key], **shaped, **given}}


def _openai_fields(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for e in errors:
        field = RENAMED.get(e["field"], e["field"])
        out.append({**e, "field": field.removeprefix("input.")})
    return out


def _created(job: Job) -> int:
    return int(as_utc(job.created_at).timestamp())


def _object(job: Job, chat: bool, text: str, finish: str | None, chunk: bool) -> dict[str, Any]:
    if chat:
        key, value = (
            ("delta", {"content": text})
            if chunk
            else ("message", {"role": "assistant", "content": text})
        )
        choice = {"index": 0, key: value, "finish_reason": finish}
        kind = "chat.completion.chunk" if chunk else "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        kind = "text_completion"
    result = {
        "id": f"cmpl-{job.id}",
        "object": kind,
        "created": _created(job),
        "model": job.model,
        "choices": [choice],
        "genq_job": job.id,
    }
    if not chunk:
        tokens = len((job.output or {}).get("token_ids") or [])
        result["usage"] = {"completion_tokens": tokens}
    return result


def _stream(svc: Services, job: Job, chat: bool) -> Iterator[str]:
    sent = ""
    for item in follow(svc, job.id, 0):
        if item is None:
            yield ": keep-alive\n\n"
            continue
        event, current = item
        text = event.data.get("text")
        if event.type == "succeeded":
            text = (current.output or {}).get("text", sent)
        if text is not None and text != sent:
            delta = text[len(sent) :] if text.startswith(sent) else text
            sent = text
            yield f"data: {json.dumps(_object(current, chat, delta, None, True))}\n\n"
        if event.type in TERMINAL:
            if event.type == "failed":
                error = {
                    "message": (current.error or {}).get("message", "failed"),
                    "type": (current.error or {}).get("code", "failed"),
                }
                yield f"data: {json.dumps({'error': error})}\n\n"
            else:
                finish = "stop" if event.type == "succeeded" else "cancelled"
                yield f"data: {json.dumps(_object(current, chat, '', finish, True))}\n\n"
    yield "data: [DONE]\n\n"


def _complete(chat: bool) -> Response:
    who, svc = caller(), services()
    body = json_body()
    if not isinstance(body, dict):
        raise invalid([{"field": "body", "message": "must be a JSON object"}])
    model = body.get("model")
    spec = svc.registry.get(model) if isinstance(model, str) else None
    if spec is not None and spec.kind != "text":
        raise invalid([{"field": "model", "message": f"model {model} is not a text model"}])
    try:
        spec, resolved, seed = parse_job(_job_body(body, chat, spec), svc.registry)
    except FieldErrors as exc:
        raise invalid(_openai_fields(exc.errors)) from None
    session = db()
    job, _ = jobs.create_job(session, **job_fields(who.owner, spec, resolved, seed))
    if body.get("stream"):
        publish(job.id, job.queue)
        return Response(
            _stream(svc, job, chat),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    with svc.notifier.listening(job.id) as finished:
        publish(job.id, job.queue)
        finished(svc.settings.max_wait_s)
    job = jobs.get_job(session, job.id) or job
    if job.status == "succeeded":
        return jsonify(_object(job, chat, job.output["text"], "stop", False))
    if job.status in TERMINAL:
        detail = (job.error or {}).get("message", job.status)
        raise Problem(502, "Generation failed", f"job {job.id}: {detail}", kind="job-failed")
    raise Problem(
        504,
        "Still running",
        f"job {job.id} is still running; poll /v1/jobs/{job.id}",
        kind="timeout",
    )


@bp.post("/v1/completions")
def completions() -> Response:
    """OpenAI-compatible text completion, run as a text job."""
    return _complete(chat=False)


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    """OpenAI-compatible chat completion, for models whose tokenizer has a chat template."""
    return _complete(chat=True)
