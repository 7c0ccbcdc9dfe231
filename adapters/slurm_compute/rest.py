"""A small async client of slurmrestd: the calls the backend makes, with a fresh token on each, a token turned
down read or minted again once, and a slurmrestd that is briefly away (restarted) waited for, bounded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import structlog

from adapters.slurm_compute.api import JobRequest, SlurmApi, SlurmJob, error_number, errors_of
from adapters.slurm_compute.tokens import TokenSource

log = structlog.get_logger("gxwf.slurm.rest")

# slurm_errno.h: ESLURM_INVALID_JOB_ID, ESLURM_ALREADY_DONE.
INVALID_JOB_ID = 2017
ALREADY_DONE = 2021
# What slurmrestd answers for a token slurmctld refused (v0.0.38 has no 401 for it): error -1 with this text,
# or one of the authentication errors (SLURM_PROTOCOL_AUTHENTICATION_ERROR, ESLURM_AUTH_*).
_AUTH_TEXT = "unable to load"
_AUTH_NUMBERS = frozenset({1007, *range(6000, 6100)})


class SlurmError(Exception):
    """slurmrestd answered with errors: `numbers` are Slurm's error numbers (slurm_errno.h)."""

    def __init__(self, what: str, status: int, errors: list[dict[str, Any]]) -> None:
        self.status = status
        self.errors = errors
        self.numbers = [n for e in errors if (n := error_number(e)) is not None]
        said = "; ".join(" ".join(str(part) for part in (e.get("error"), e.get("description")) if part) for e in errors)
        super().__init__(f"{what}: slurmrestd answered HTTP {status}" + (f": {said}" if said else ""))


class SlurmUnreachable(Exception):
    """slurmrestd did not answer within the client's patience."""


def _refused_token(status: int, answer: Any) -> bool:
    if status in (401, 403):
        return True
    if status < 500:
        return False
    for error in errors_of(answer):
        if error_number(error) in _AUTH_NUMBERS or _AUTH_TEXT in str(error.get("description") or ""):
            return True
    return False


class SlurmRest:
    def __init__(
        self,
        url: str,
        user: str,
        tokens: TokenSource,
        api: SlurmApi,
        *,
        client: httpx.AsyncClient | None = None,
        patience_seconds: float = 15.0,
    ) -> None:
        self.user = user
        self.tokens = tokens
        self.api = api
        self.patience_seconds = patience_seconds
        self.client = client or httpx.AsyncClient(base_url=url.rstrip("/"), timeout=httpx.Timeout(30.0, connect=5.0))

    async def close(self) -> None:
        await self.client.aclose()

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, *, idempotent: bool = True
    ) -> tuple[int, Any]:
        """`idempotent` False (a submit): sent again only when it surely never arrived (no connection); after
        any other transport error SlurmUnreachable, for the caller to look for what it may have made first."""
        deadline = time.monotonic() + self.patience_seconds
        pause = 0.1
        refused_once = False
        while True:
            token = await self.tokens.token()
            headers = {"X-SLURM-USER-NAME": self.user, "X-SLURM-USER-TOKEN": token}
            try:
                response = await self.client.request(method, path, json=body, headers=headers)
            except httpx.TransportError as error:
                if not idempotent and not isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
                    raise SlurmUnreachable(f"slurmrestd {method} {path}: {error!r} (it may have arrived)") from None
                # Restarted or briefly overloaded: its jobs run on, so wait for it rather than fail the run.
                if time.monotonic() + pause > deadline:
                    raise SlurmUnreachable(f"slurmrestd {method} {path}: {error!r}") from None
                log.info("slurmrestd not answering, trying again", path=path, error=repr(error))
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            try:
                answer: Any = response.json()
            except ValueError:
                answer = {}
            if _refused_token(response.status_code, answer) and not refused_once:
                refused_once = True
                self.tokens.rejected(token)
                log.info("slurmrestd refused the token, renewing it", status=response.status_code)
                continue
            return response.status_code, answer

    async def ping(self) -> None:
        status, answer = await self._send("GET", self.api.ping_path(), None)
        if status != 200:
            raise SlurmError("ping", status, errors_of(answer))

    async def submit(self, job: JobRequest) -> int:
        status, answer = await self._send("POST", self.api.submit_path(), self.api.submit_body(job), idempotent=False)
        job_id = self.api.submitted_job_id(answer) if isinstance(answer, dict) else None
        if status != 200 or job_id is None:
            raise SlurmError(f"submitting {job.name}", status, errors_of(answer))
        if errors := errors_of(answer):
            # Accepted with a warning (a partition limit it waits for): the job exists and stays pending.
            log.warning("job submitted with errors", job=job.name, job_id=job_id, errors=errors)
        return job_id

    async def job(self, job_id: int) -> SlurmJob | None:
        """The job, or None once slurmctld has no record of it."""
        status, answer = await self._send("GET", self.api.job_path(job_id), None)
        if status == 200 and isinstance(answer, dict):
            found = [job for job in self.api.jobs(answer) if job.job_id == job_id]
            return found[0] if found else None
        errors = errors_of(answer)
        if any(error_number(e) == INVALID_JOB_ID for e in errors) or status == 404:
            return None
        raise SlurmError(f"reading job {job_id}", status, errors)

    async def jobs(self) -> list[SlurmJob]:
        status, answer = await self._send("GET", self.api.jobs_path(), None)
        if status != 200 or not isinstance(answer, dict):
            raise SlurmError("listing jobs", status, errors_of(answer))
        return self.api.jobs(answer)

    async def cancel(self, job_id: int) -> None:
        """Signal the job to end (SIGTERM, then SIGKILL after the cluster's KillWait); a job that is gone or
        already done is fine."""
        status, answer = await self._send("DELETE", self.api.job_path(job_id), None)
        if status == 200:
            return
        errors = errors_of(answer)
        if any(error_number(e) in (INVALID_JOB_ID, ALREADY_DONE) for e in errors):
            return
        raise SlurmError(f"cancelling job {job_id}", status, errors)
