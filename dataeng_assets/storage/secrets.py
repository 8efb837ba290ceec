"""Secrets the assets need, as resources configured from the environment (never from code)."""

from dagster import ConfigurableResource, Failure


class PiiKey(ConfigurableResource):
    """The key of the keyed hash (HMAC-SHA256) that replaces PII values in the cleaned layer."""

    key: str | None = None

    def key_bytes(self) -> bytes:
        if not self.key:
            # Not retried: only a person can set the key.
            raise Failure(
                description="a contract marks a column as PII but DATAENG_PII_KEY is not set: "
                "set it (a long random secret) in the environment",
                allow_retries=False,
            )
        return self.key.encode()
