"""The SMS gateway of the e2e run: the one thing a test cannot have in production, a gateway
whose deliveries it can read.

Codes are "delivered" into Redis (``e2e:code:<tenant>:<phone>``) so that the traffic can verify
them, and the gateway refuses every delivery for the tenant ``gateway-down`` with an error that
names the phone number, as a real gateway client's exception would: the service answers 502 and
logs the exception (a phone number in an exception message, on its way to CloudWatch Logs).
"""

from __future__ import annotations


GATEWAY_DOWN = "gateway-down"


def code_key(tenant: str, phone: str) -> str:
    return f"e2e:code:{tenant}:{phone}"


class RedisGateway:
    def __init__(self, client) -> None:
        self.client = client

    def send(self, tenant: str, phone: str, code: str) -> None:
        if tenant == GATEWAY_DOWN:
            raise ConnectionError(f"SMS gateway refused the message to {phone}: account suspended")
        self.client.set(code_key(tenant, phone), code, ex=600)
