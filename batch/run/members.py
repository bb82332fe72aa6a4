"""Building the pool's members: each deployment's model rules, limiter, credential, planner,
sender, client and row requests (:mod:`.pool` routes rows through them)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial

import aiohttp

from ..core import EndpointSpec, JobSpec, lookup_model
from ..plan import OcrAccess, Planner, RequestBuilder
from ..send import ChatClient, Credential, RateLimiter, Target, credential_for
from .pool import DeploymentPool, Member
from .progress import Tally
from .rows import RowRequests
from .sender import RequestSender

__all__ = ["build_pool", "connect", "disconnect", "extensions_url"]


def build_pool(
    spec: JobSpec,
    credential: Credential | None,
    env: Mapping[str, str],
    vision_key: str | None,
    *,
    tally: Tally,
    stop: asyncio.Event,
    halt: Callable[[str], None],
    rng: random.Random,
) -> DeploymentPool:
    """Every deployment of the job checked (model in the catalogue, key set: SpecError / exit 2
    before anything is sent) and made a member with its own parts."""
    pool = DeploymentPool([_member(spec, ep, credential, env, vision_key) for ep in spec.deployments], halt)
    for member in pool.members:
        member_spec = replace(spec, endpoint=member.ep, limits=spec.limits_for(member.ep))
        member.sender = RequestSender(
            member_spec,
            member.target,
            member.limiter,
            tally,
            partial(_stopping, stop, member),
            partial(pool.leave, member),
            rng=rng,
            can_leave=lambda: len(pool.live()) > 1,
        )
    return pool


def _stopping(stop: asyncio.Event, member: Member) -> bool:
    return stop.is_set() or member.left.is_set()


def _member(
    spec: JobSpec, ep: EndpointSpec, credential: Credential | None, env: Mapping[str, str], vision_key: str | None
) -> Member:
    model = lookup_model(ep.model, ep.catalogue)
    target = Target.from_spec(ep)
    limits = spec.limits_for(ep)
    member_spec = replace(spec, endpoint=ep, limits=limits)
    limiter = RateLimiter(limits.tpm, limits.effective_rpm, request_header_window=60.0 if ep.kind == "openai" else 10.0)
    has_key = vision_key is not None
    access = OcrAccess(
        extensions_url=extensions_url(spec, target),
        vision_key=has_key,
        read=spec.ocr.vision_endpoint is not None and has_key,
    )
    return Member(
        ep,
        model,
        target,
        credential if credential is not None else credential_for(ep, env),
        limiter,
        Planner(member_spec, model, access=access),
        RequestBuilder(member_spec, model, target.model_in_body),
    )


def extensions_url(spec: JobSpec, target: Target) -> str | None:
    """The legacy enhancements' URL: a classic Azure deployment with a Vision resource."""
    ocr = spec.ocr
    classic = target.kind == "azure" and ocr.vision_endpoint is not None
    return target.extensions_url(ocr.enhancements_api_version) if classic else None


def connect(
    pool: DeploymentPool, spec: JobSpec, session: aiohttp.ClientSession, vision_key: str | None, rng: random.Random
) -> None:
    """Each deployment's client and row requests; the threads and the Read client are shared."""
    first: RowRequests | None = None
    for m in pool.members:
        assert m.sender is not None
        m.client = ChatClient(session, m.target, m.credential, m.ep.timeout_s)
        url = extensions_url(spec, m.target)
        if first is None:
            first = RowRequests.for_run(
                spec,
                m.model,
                m.planner,
                m.builder,
                session,
                extensions_url=url,
                vision_key=vision_key,
                policy=m.sender.policy,
                rng=rng,
            )
            m.rows = first
        else:
            m.rows = first.sharing(m.planner, m.builder, extensions_url=url)


async def disconnect(pool: DeploymentPool) -> None:
    """Threads ended, credentials closed (each once)."""
    closed: set[int] = set()
    for m in pool.members:
        if m.rows is not None:
            m.rows.close()
        close = getattr(m.credential, "close", None)
        if close is not None and id(m.credential) not in closed:
            closed.add(id(m.credential))
            await close()
