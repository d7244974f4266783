"""The base of every request and response body: frozen, like the contract it mirrors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

JsonObject = dict[str, Any]


class Schema(BaseModel):
    model_config = ConfigDict(frozen=True)
