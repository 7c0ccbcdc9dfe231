"""A typed async client of the WorkflowApi (httpx); it speaks only the API's HTTP and knows none of the server."""

from gxwf_client.client import ApiError, WorkflowClient
from gxwf_client.models import (
    Asset,
    AssetDetail,
    Input,
    LogEvent,
    ResultFile,
    ResultList,
    RunAccepted,
    RunStatus,
    RunSummary,
)

__all__ = [
    "ApiError",
    "Asset",
    "AssetDetail",
    "Input",
    "LogEvent",
    "ResultFile",
    "ResultList",
    "RunAccepted",
    "RunStatus",
    "RunSummary",
    "WorkflowClient",
]
