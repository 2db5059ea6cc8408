"""recllm.serve.load's sampler of what else uses the CPU (other processes' CPU time from /proc, ours left out) and its
server child process."""

import os
import sys
import time

import pytest

from recllm.serve.load import LoadSampler, _busy_ticks, _cpu_ticks, _ours


def test_ours_is_the_process_and_its_descendants():
    ticks = {1: (0, 5), 10: (1, 7), 11: (10, 3), 12: (11, 0), 20: (1, 9)}
    assert _ours(ticks, 10) == {10, 11, 12}


@pytest.mark.skipif(not os.path.isfile("/proc/stat"), reason="needs /proc")
def test_a_busy_process_outside_the_test_is_counted_and_a_child_is_not():
    """A busy loop detached from this process (its parent exits, so it is nobody's descendant here) is another
    process; a busy child of this process is part of the test."""
    import subprocess

    busy = [sys.executable, "-c", "import time\nend = time.time() + 4\nwhile time.time() < end: pass"]
    child = subprocess.Popen(busy)
    launcher = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; print(subprocess.Popen("
                                 f"{busy!r}, start_new_session=True, stdout=subprocess.DEVNULL).pid)"],
                                stdout=subprocess.PIPE, text=True)  # the loop holds no pipe: this returns at once
    detached = int(launcher.communicate()[0])
    try:
        assert os.getpid() in _cpu_ticks() and child.pid in _ours(_cpu_ticks(), os.getpid())
        assert detached not in _ours(_cpu_ticks(), os.getpid()) and _busy_ticks() > 0
        with LoadSampler(every=0.5) as sampler:
            time.sleep(2.0)
        summary = sampler.summary()
        assert summary["others_mean"] > 0.5  # the detached loop's core (and whatever else runs here)
    finally:
        child.kill()
        child.wait()
        try:
            os.kill(detached, 9)
        except ProcessLookupError:  # it ended by itself
            pass


def test_the_load_servers_log_goes_to_a_file_and_its_end_is_shown_when_it_exits(tmp_path):
    """The load test's server wrote its log into a pipe nobody read during the run: 64 KiB of logged errors would
    block it, and the load test would time a hung service. The log is a file now; a server that exits at start
    still shows the log's end."""
    from recllm.serve.load import Server

    server = Server(tmp_path / "no-such-run", tmp_path / "x.db", encoder=False)
    with server, pytest.raises(RuntimeError, match=r"the server exited: .*no-such-run"):
        server.start()
    assert server.proc.stderr is None and server._log is None  # no pipe; the file is closed
    assert not (tmp_path / "x.db").exists()
