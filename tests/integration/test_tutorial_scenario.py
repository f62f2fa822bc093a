"""The tutorials' scenario end to end with pyrunc under buildah and podman
(engines.scenario; `make demo-engines` narrates the same run): build with
RUN layers, list, serve on a bridge at the container's own IP, ps, reach
it, exec + netstat, lsns, and nothing left behind afterwards."""
import os

import pytest

from conftest import PYRUNC, needs_root
from engines.scenario import BASE_IMAGE, IMAGE, OWN_NAMESPACES, PORT, SUBNET_PREFIX, Scenario, missing

pytestmark = [needs_root, pytest.mark.integration]


def test_tutorial_scenario_end_to_end():
    reasons = missing()
    if reasons:
        pytest.skip("; ".join(reasons))
    if not os.access(PYRUNC, os.X_OK):
        pytest.skip("no installed pyrunc launcher at %s (make venv)" % PYRUNC)
    facts = Scenario(PYRUNC, "/pyrunc-engines-tutorial-%d" % os.getpid()).run()
    # Each step checked itself (ScenarioError); the facts say the same again.
    assert facts["build_runtime_creates"] == 3
    assert facts["layers"] == 4 and facts["history_runs"] == 3
    assert IMAGE in facts["images"] and BASE_IMAGE in facts["images"]
    assert facts["ip"].startswith(SUBNET_PREFIX)
    assert len(facts["bridges"]) == 1
    assert any(row[0] == "tutorial-web" and row[2] == "Up" for row in facts["ps"])
    assert facts["served"].startswith("hello from a pyrunc container\n")
    assert any(a.endswith(":%d" % PORT) for a in facts["listening"])
    assert set(OWN_NAMESPACES) <= set(facts["own_namespaces"])
    assert {"create", "start", "state", "exec", "kill", "delete"} <= set(facts["runtime_verbs"])
    assert facts["leftovers"] == {}
