#!/usr/bin/env bash
# Installs what the client test suite needs, idempotently:
#   - kcat from Debian (librdkafka 2.0.2: an old client worth testing), when root
#   - DejaVu fonts (chart text of `bench compare`), when root
#   - a Python venv in .venv with pinned confluent-kafka, kafka-python, pytest
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kcat >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing kcat (Debian package)" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
    else
        echo "kcat missing and cannot apt-get install it: the kcat test will be skipped" >&2
    fi
fi

# DejaVu Sans: `bench compare` lays out chart text with it.
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null
    else
        echo "fonts-dejavu-core missing: the bench chart test will fail" >&2
    fi
fi

if [ ! -x .venv/bin/pytest ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/clients/requirements.txt

# The JVM side from Maven Central (tests/java/pom.xml): the Java client,
# Kafka Streams, Kafka Connect with the FileStream connectors, and Kafka's
# admin tools. Fetched again whenever the pom changes.
if command -v mvn >/dev/null 2>&1 && command -v javac >/dev/null 2>&1; then
    (
        cd tests/java
        if [ ! -f lib/.pom.xml ] || ! cmp -s pom.xml lib/.pom.xml; then
            rm -rf lib
            mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib
            cp pom.xml lib/.pom.xml
        fi
        mkdir -p classes
        javac -cp "lib/*" -d classes src/main/java/sluice/*.java
    )
else
    echo "mvn/javac missing: the Java client, Streams and Connect tests will be skipped" >&2
fi
