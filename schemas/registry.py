"""The stored document kinds, for index creation and the dashboard."""

from __future__ import annotations

from schemas.dataflows import DataFlowDocument
from schemas.documents import StatefulDocument
from schemas.inputs import InputDocument
from schemas.provisioning import AccessGrantDocument, DeploymentDocument, ProvisionDocument, ResultDocument
from schemas.run import RunDocument

DOCUMENT_KINDS: tuple[type[StatefulDocument], ...] = (
    RunDocument,
    ProvisionDocument,
    DeploymentDocument,
    AccessGrantDocument,
    ResultDocument,
    InputDocument,
    DataFlowDocument,
)
