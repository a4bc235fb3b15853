"""What the stacks need to know about one deployment, read from CDK context (``-c key=value``
or ``cdk.json``) with environment-variable fallbacks, validated before anything is built."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from kyo_otel import aws_names
from kyo_otel.errors import ConfigError

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

ALERT_EMAIL_ENV = "KYO_ALERT_EMAIL"


@dataclass(frozen=True)
class InfraSettings:
    """One deployment: the dimension values of its metrics and the AWS resources it watches."""

    service: str = "kyo-otp-service"  # the service.name dimension value
    environment: str = "production"  # the deployment.environment.name dimension value
    alert_email: str | None = None  # subscribed to the alert topic; none -> a synth warning
    ecs_cluster: str = "kyo-production-cluster"
    ecs_service: str = "kyo-api-service"
    rds_instance: str = "kyo-master-db"
    expected_tenants: int = 100  # for the custom-metric count the dashboard stack reports

    @classmethod
    def from_context(cls, context: Mapping[str, object], env: Mapping[str, str] | None = None) -> InfraSettings:
        """Context keys: service, environment, alertEmail, ecsCluster, ecsService, rdsInstance,
        expectedTenants. ``alertEmail`` falls back to the ``KYO_ALERT_EMAIL`` variable."""
        env = os.environ if env is None else env
        defaults = cls()

        def text(key: str, default: str) -> str:
            value = context.get(key)
            if value is None:
                return default
            if not isinstance(value, str) or not _NAME.match(value):
                raise ConfigError(key, value, "letters, digits, '.', '_' or '-' (at most 100)", "CDK context")
            return value

        email: object = context.get("alertEmail")
        source = "CDK context alertEmail"
        if email in (None, ""):
            email, source = env.get(ALERT_EMAIL_ENV) or None, ALERT_EMAIL_ENV
        if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
            raise ConfigError("alertEmail", email, "an email address", source)

        tenants = context.get("expectedTenants", defaults.expected_tenants)
        try:
            tenants = int(tenants)  # context given on the command line is a string
        except (TypeError, ValueError):
            raise ConfigError("expectedTenants", tenants, "a whole number >= 0", "CDK context") from None
        if tenants < 0:
            raise ConfigError("expectedTenants", tenants, "a whole number >= 0", "CDK context")

        return cls(
            service=text("service", defaults.service),
            environment=text("environment", defaults.environment),
            alert_email=email,
            ecs_cluster=text("ecsCluster", defaults.ecs_cluster),
            ecs_service=text("ecsService", defaults.ecs_service),
            rds_instance=text("rdsInstance", defaults.rds_instance),
            expected_tenants=tenants,
        )

    @property
    def title(self) -> str:
        """``Production`` for production: used in resource names."""
        return aws_names.environment_title(self.environment)
