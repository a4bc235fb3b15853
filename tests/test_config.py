"""Configuration: one precedence rule (argument > KYO_OTEL_* > OTEL_* > default), read from a dict."""

from __future__ import annotations

import pytest

import kyo_otel
from kyo_otel import ConfigError, resolve_settings


def test_defaults_follow_the_environment_name():
    assert resolve_settings({"environment": "development"}, {}).exporter("traces") == "console"
    assert resolve_settings({"environment": "test"}, {}).exporter("metrics") == "memory"
    for name in ("production", "staging"):
        settings = resolve_settings({"environment": name}, {})
        assert {settings.exporter(s) for s in ("traces", "metrics", "logs")} == {"otlp"}


def test_environment_comes_from_kyo_variable_and_every_value_says_where_it_came_from():
    settings = resolve_settings({}, {"KYO_OTEL_ENVIRONMENT": "production", "OTEL_SERVICE_NAME": "otp"})
    assert settings.environment == "production"
    assert settings.service_name == "otp"
    assert settings.sources["environment"] == "KYO_OTEL_ENVIRONMENT"
    assert settings.sources["service_name"] == "OTEL_SERVICE_NAME"
    assert settings.sources["sampler"] == "default"


def test_argument_beats_kyo_variable_beats_otel_variable_beats_default():
    env = {"KYO_OTEL_SERVICE_NAME": "from-kyo", "OTEL_SERVICE_NAME": "from-otel"}
    assert resolve_settings({"service_name": "from-arg"}, env).service_name == "from-arg"
    assert resolve_settings({}, env).service_name == "from-kyo"
    assert resolve_settings({}, {"OTEL_SERVICE_NAME": "from-otel"}).service_name == "from-otel"
    assert resolve_settings({}, {}).service_name == "unknown_service"


def test_profile_and_per_signal_exporters_share_the_precedence():
    # A standard variable beats the environment name's default...
    settings = resolve_settings({"environment": "development"}, {"OTEL_TRACES_EXPORTER": "otlp"})
    assert (settings.exporter("traces"), settings.exporter("logs")) == ("otlp", "console")
    # ...a kyo profile beats the standard variable...
    settings = resolve_settings({}, {"KYO_OTEL_PROFILE": "memory", "OTEL_TRACES_EXPORTER": "otlp"})
    assert settings.exporter("traces") == "memory"
    # ...and an argument beats both.
    settings = resolve_settings({"profile": "none"}, {"KYO_OTEL_PROFILE": "memory"})
    assert settings.exporter("logs") == "none"
    settings = resolve_settings({"profile": "console", "metrics_exporter": "otlp"}, {})
    assert (settings.exporter("metrics"), settings.exporter("traces")) == ("otlp", "console")


def test_sdk_disabled_turns_every_signal_off():
    settings = resolve_settings({"environment": "production"}, {"OTEL_SDK_DISABLED": "true"})
    assert [settings.exporter(s) for s in ("traces", "metrics", "logs")] == ["none"] * 3


def test_otlp_endpoint_defaults_to_the_local_collector_for_the_protocol():
    assert resolve_settings({}, {}).otlp_endpoint == "http://localhost:4317"
    http = resolve_settings({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert http.otlp_endpoint == "http://localhost:4318"
    settings = resolve_settings({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317/",
                                     "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=abc,tenant=a%20b"})
    assert settings.otlp_endpoint == "http://collector:4317"
    assert settings.otlp_headers == {"x-api-key": "abc", "tenant": "a b"}


def test_standard_sampler_variables_keep_their_meaning():
    settings = resolve_settings({}, {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    assert (settings.sampler, settings.sample_ratio) == ("traceidratio", 0.25)
    assert settings.sources["sample_ratio"] == "OTEL_TRACES_SAMPLER_ARG"


def test_standard_batch_processor_variables_keep_their_meaning():
    settings = resolve_settings({}, {"OTEL_BSP_MAX_QUEUE_SIZE": "4096", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1024",
                                     "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "256", "OTEL_BSP_SCHEDULE_DELAY": "500"})
    assert (settings.span_queue_size, settings.span_export_batch_size, settings.batch_delay) == (4096, 1024, 500)
    assert (settings.log_queue_size, settings.log_export_batch_size) == (2048, 256)
    assert settings.sources["span_export_batch_size"] == "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"


def test_resource_attributes_variable_is_parsed():
    settings = resolve_settings({}, {"OTEL_RESOURCE_ATTRIBUTES": "team=otp,cloud.region=ap-northeast-1"})
    assert settings.resource_attributes == {"team": "otp", "cloud.region": "ap-northeast-1"}


@pytest.mark.parametrize(
    ("arguments", "env", "fragments"),
    [
        ({"profile": "cloudwatch"}, {}, ["profile", "'cloudwatch'", "console, otlp, memory, none"]),
        ({}, {"KYO_OTEL_PROFILE": "prod"}, ["profile", "'prod'", "KYO_OTEL_PROFILE"]),
        ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"}, ["otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317"]),
        ({"otlp_endpoint": "http://:4317"}, {}, ["otlp_endpoint", "scheme http or https"]),
        ({}, {"OTEL_TRACES_SAMPLER_ARG": "2"}, ["sample_ratio", "'2'", "[0, 1]"]),
        ({"sample_ratio": -0.1}, {}, ["sample_ratio", "[0, 1]"]),
        ({}, {"OTEL_TRACES_SAMPLER": "sometimes"}, ["sampler", "'sometimes'", "parentbased_traceidratio"]),
        ({}, {"OTEL_TRACES_EXPORTER": "zipkin"}, ["traces_exporter", "OTEL_TRACES_EXPORTER", "otlp"]),
        ({}, {"OTEL_SDK_DISABLED": "maybe"}, ["disabled", "'maybe'", "true or false"]),
        ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, ["otlp_protocol", "grpc, http/protobuf"]),
        ({}, {"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, ["metric_export_interval", "a number"]),
        ({"tenant_cardinality_cap": 0}, {}, ["tenant_cardinality_cap", "an integer"]),
        ({}, {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "0"}, ["span_export_batch_size", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "an integer"]),
        ({"colour": True}, {}, ["argument", "'colour'", "service_name"]),
        ({}, {"KYO_OTEL_FLUSH_ON_SIGTERM": "later"}, ["flush_on_sigterm", "KYO_OTEL_FLUSH_ON_SIGTERM", "'later'", "true or false"]),
    ],
)
def test_bad_values_raise_config_error_naming_setting_value_and_what_is_allowed(arguments, env, fragments):
    with pytest.raises(ConfigError) as caught:
        resolve_settings(arguments, env)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message


def test_configure_validates_before_installing_anything():
    with pytest.raises(ConfigError, match="sample_ratio"):
        kyo_otel.configure(environment="test", sample_ratio=2)
    with pytest.raises(ConfigError, match="profile"):
        kyo_otel.configure(env={"KYO_OTEL_PROFILE": "loud"})


def test_metric_interval_is_short_on_the_console_and_a_minute_for_collectors():
    assert resolve_settings({"environment": "development"}, {}).metric_export_interval == 10_000
    assert resolve_settings({"environment": "production"}, {}).metric_export_interval == 60_000
    assert resolve_settings({}, {"OTEL_METRIC_EXPORT_INTERVAL": "5000"}).metric_export_interval == 5000


def test_the_default_environment_is_development_and_test_under_pytest():
    """The pytest plugin makes ``test`` the default, so an app factory's ``configure()`` gets the
    memory profile in a test run; an environment named by argument or variable still wins."""
    from tests.support.subprocess_python import run_python

    outside = run_python("from kyo_otel import resolve_settings; print(resolve_settings({}, {}).environment)")
    assert outside.stdout.strip() == "development", outside.stderr
    assert (resolve_settings({}, {}).environment, resolve_settings({}, {}).exporter("traces")) == ("test", "memory")
    assert resolve_settings({}, {"KYO_OTEL_ENVIRONMENT": "production"}).environment == "production"
    assert resolve_settings({"environment": "staging"}, {}).environment == "staging"
