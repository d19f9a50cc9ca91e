"""Context values the stack refuses before synthesizing anything, each with the key and the fix named."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from infra.settings import PipelineSettings, SettingsError
from tests.cdk_support import cdk_context


def _settings(**overrides) -> PipelineSettings:
    return PipelineSettings.from_context(cdk.App(context=cdk_context(**overrides)).node)


def test_more_than_one_training_instance_is_refused_with_what_to_do_instead():
    assert _settings(trainingInstanceCount=1).trainingInstanceCount == 1
    with pytest.raises(SettingsError, match=r"'trainingInstanceCount' is 2: training runs on one instance"):
        _settings(trainingInstanceCount=2)
