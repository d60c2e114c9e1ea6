"""Starts the real broker binary on a free loopback port with a temp data
dir for each test module, and stops it by its PID afterwards."""
import collections
import os
import shutil
import socket
import subprocess
import tempfile
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BROKER = os.environ.get("SLUICE_BROKER_BIN", os.path.join(ROOT, "target", "debug", "broker"))
READY_TIMEOUT_S = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def thread_stacks(pid):
    """Every thread's stack of a stuck process, when gdb is installed (for
    a hang's report; the suite does not need gdb)."""
    if not shutil.which("gdb"):
        return ""
    try:
        out = subprocess.run(["gdb", "-batch", "-p", str(pid), "-ex", "thread apply all bt"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout[-20000:]
    except (subprocess.SubprocessError, OSError) as error:
        return f"(no stacks: {error})"


class Broker:
    def __init__(self, data_dir, settings=()):
        self.data_dir = data_dir
        self.settings = list(settings)
        self.proc = None
        self.port = None
        self.admin_port = None
        self.log = collections.deque(maxlen=2000)

    def log_lines(self):
        """The last lines the broker wrote to stderr."""
        return list(self.log)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, keep_port=False):
        """Starts the broker; `keep_port` restarts it on the ports it had, so
        clients reconnect to the address they bootstrapped from."""
        if not (keep_port and self.port):
            self.port = free_port()
            self.admin_port = free_port()
        cmd = [BROKER, "--listen", self.bootstrap, "--data-dir", self.data_dir,
               "--set", f"sluice.admin.listen=127.0.0.1:{self.admin_port}"]
        for s in self.settings:
            cmd += ["--set", s]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        ready = threading.Event()

        def drain():
            for line in self.proc.stderr:
                self.log.append(line)
                if os.environ.get("SLUICE_TEST_LOG"):
                    print(f"[broker] {line}", end="")
                if "sluice broker ready" in line:
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(READY_TIMEOUT_S):
            stacks = thread_stacks(self.proc.pid)
            self.kill()
            tail = "".join(list(self.log)[-40:])
            raise RuntimeError(f"broker did not become ready; its last log lines:\n{tail}\n{stacks}")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            return self.proc.wait()
        return None


@pytest.fixture
def broker_factory():
    started = []
    dirs = []

    def make(settings=(), data_dir=None):
        if data_dir is None:
            d = tempfile.TemporaryDirectory()
            dirs.append(d)
            data_dir = d.name
        b = Broker(data_dir, settings)
        b.start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.kill()
    for d in dirs:
        d.cleanup()


@pytest.fixture
def broker(broker_factory):
    return broker_factory(settings=["num.partitions=3", "message.max.bytes=2000000"])
