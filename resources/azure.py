"""Azure storage credentials, taken from the environment only (Dagster ``EnvVar``), shared by lake and landing."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from kpi_lake.storage import EMULATOR_ACCOUNT, EMULATOR_KEY, EMULATOR_URL, parse_azure_uri

#: The standard variables, as the Azure SDKs and delta-rs read them. Secrets among them are never logged.
AZURE_ENV_VARS = {
    "account_name": "AZURE_STORAGE_ACCOUNT_NAME",
    "account_key": "AZURE_STORAGE_ACCOUNT_KEY",
    "sas_token": "AZURE_STORAGE_SAS_TOKEN",
    "client_id": "AZURE_CLIENT_ID",
    "client_secret": "AZURE_CLIENT_SECRET",
    "tenant_id": "AZURE_TENANT_ID",
}


class AzureStorage(dg.ConfigurableResource):
    """How to reach Azure storage. Fields left empty fall back to DefaultAzureCredential / managed identity.

    Authentication, first that applies: the Azurite emulator (``AZURE_STORAGE_USE_EMULATOR=true``), an account
    key, a SAS token, a service principal (client id, secret, tenant), then the ambient identity.
    """

    account_name: str | None = None
    account_key: str | None = None
    sas_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    tenant_id: str | None = None
    use_emulator: bool = False
    emulator_url: str | None = None

    @classmethod
    def from_env(cls) -> AzureStorage:
        """Bind every field that has a variable set to that variable through ``EnvVar``."""
        bound: dict[str, Any] = {
            field: dg.EnvVar(variable)
            for field, variable in AZURE_ENV_VARS.items()
            if os.environ.get(variable)
        }
        use_emulator = os.environ.get("AZURE_STORAGE_USE_EMULATOR", "").strip().lower() in (
            "1",
            "true",
            "yes",
        )
        if use_emulator and os.environ.get("AZURITE_BLOB_STORAGE_URL"):
            bound["emulator_url"] = dg.EnvVar("AZURITE_BLOB_STORAGE_URL")
        return cls(use_emulator=use_emulator, **bound)

    def _account(self, uri: str) -> str | None:
        if self.use_emulator:
            return EMULATOR_ACCOUNT
        return self.account_name or parse_azure_uri(uri).account

    def delta_storage_options(self, uri: str) -> dict[str, str]:
        """Storage options for delta-rs and polars (object_store keys)."""
        if self.use_emulator:
            endpoint = (self.emulator_url or EMULATOR_URL).rstrip("/")
            # An explicit endpoint rather than object_store's use_emulator flag, which ignores the endpoint
            # option and only honours AZURITE_BLOB_STORAGE_URL from the process environment.
            return {
                "account_name": EMULATOR_ACCOUNT,
                "account_key": EMULATOR_KEY,
                "endpoint": f"{endpoint}/{EMULATOR_ACCOUNT}",
                "allow_http": "true",
            }
        options: dict[str, str] = {}
        account = self._account(uri)
        if account:
            options["account_name"] = account
        if self.account_key:
            options["account_key"] = self.account_key
        elif self.sas_token:
            options["sas_token"] = self.sas_token.lstrip("?")
        elif self.client_id and self.client_secret and self.tenant_id:
            options.update(
                client_id=self.client_id, client_secret=self.client_secret, tenant_id=self.tenant_id
            )
        return options

    def filesystem(self, uri: str):
        """An fsspec filesystem (adlfs) for listing and reading files under ``uri``."""
        import adlfs  # imported here: the Azure SDK costs import time that local runs need not pay

        if self.use_emulator:
            endpoint = (self.emulator_url or EMULATOR_URL).rstrip("/")
            connection = (
                f"DefaultEndpointsProtocol=http;AccountName={EMULATOR_ACCOUNT};AccountKey={EMULATOR_KEY};"
                f"BlobEndpoint={endpoint}/{EMULATOR_ACCOUNT};"
            )
            return adlfs.AzureBlobFileSystem(connection_string=connection)
        kwargs: dict[str, Any] = {"account_name": self._account(uri)}
        if self.account_key:
            kwargs["account_key"] = self.account_key
        elif self.sas_token:
            kwargs["sas_token"] = self.sas_token
        elif self.client_id and self.client_secret and self.tenant_id:
            kwargs.update(
                client_id=self.client_id, client_secret=self.client_secret, tenant_id=self.tenant_id
            )
        else:
            kwargs["anon"] = False  # adlfs then uses DefaultAzureCredential (managed identity, az login, …)
        return adlfs.AzureBlobFileSystem(**kwargs)
