"""Kafka's jars, assembled from Maven Central with `mvn`, and the Java that runs them.

The pom is package data (`streams/ops/resources/kafka-pom.xml`); each release is
assembled once into `<home>/kafka-<version>/libs`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from streams.core.exceptions import EmbeddedServiceError

MVN_TIMEOUT_S = 900.0


def assemble_kafka_jars(
    *, dist_dir: Path, libs_dir: Path, mvn_log_path: Path, kafka_version: str
) -> None:
    """Fetch release `kafka_version`'s runtime jars into `libs_dir` (staged, then renamed).

    The caller holds the hub home's lock and has checked that `libs_dir` lacks them.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EmbeddedServiceError(
            "Maven (mvn) is needed once to fetch the Kafka jars; install it, or point "
            "KAFKA_BOOTSTRAP_SERVERS at a running cluster"
        )
    dist_dir.mkdir(parents=True, exist_ok=True)
    pom = dist_dir / "pom.xml"
    pom.write_bytes(
        resources.files("streams.ops").joinpath("resources", "kafka-pom.xml").read_bytes()
    )
    staging = dist_dir / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        mvn, "-B", "-ntp", "-f", str(pom), "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        f"-Dkafka.version={kafka_version}",
    ]  # fmt: skip
    with mvn_log_path.open("w") as log:
        try:
            done = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=MVN_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServiceError(
                f"mvn did not assemble Kafka {kafka_version} within "
                f"{MVN_TIMEOUT_S:.0f} s; see {mvn_log_path}"
            ) from exc
    if done.returncode != 0 or not has_kafka_jars(staging):
        raise EmbeddedServiceError(
            f"mvn could not assemble Kafka {kafka_version} "
            f"(exit {done.returncode}); see {mvn_log_path}"
        )
    shutil.rmtree(libs_dir, ignore_errors=True)
    staging.rename(libs_dir)


def has_kafka_jars(libs: Path) -> bool:
    return libs.is_dir() and any(libs.glob("kafka_2.13-*.jar"))


def java() -> str:
    """The `java` executable: `$JAVA_HOME/bin/java`, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise EmbeddedServiceError("Java 17 or newer is needed to run the embedded Kafka")
    return found
