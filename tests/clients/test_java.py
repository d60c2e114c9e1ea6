"""The Apache Kafka Java client 4.1.1 (idempotent producer by default, zstd,
admin, assigned consumer) against the broker: tests/java/SmokeTest.java."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

JAVA_DIR = os.path.join(ROOT, "tests", "java")


@pytest.mark.skipif(shutil.which("java") is None or not os.path.isdir(os.path.join(JAVA_DIR, "classes", "sluice")),
                    reason="Java client not set up (scripts/setup-test-env.sh needs mvn and javac)")
def test_java_client_smoke(broker):
    classpath = os.path.join(JAVA_DIR, "classes") + ":" + os.path.join(JAVA_DIR, "lib", "*")
    result = subprocess.run(["java", "-cp", classpath, "sluice.SmokeTest", broker.bootstrap],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1000 produced" in result.stdout
