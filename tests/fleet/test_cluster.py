"""edgepose.fleet.cluster: the security policy, the lab's workers, their
probes and the version check, on a real LocalCluster."""
from __future__ import annotations

import shutil
import socket
import subprocess
import warnings

import pytest

distributed = pytest.importorskip("distributed")

from edgepose.fleet import cluster as fc


@pytest.mark.parametrize("address, local", [
    ("tcp://127.0.0.1:8786", True), ("tcp://127.8.9.10:1", True), ("localhost:8786", True),
    ("tcp://localhost:8786", True), ("tcp://[::1]:8786", True), ("inproc://10.0.0.1/1/2", True),
    ("tls://127.0.0.1:8786", True), ("tcp://192.168.1.10:8786", False),
    ("tcp://laptop:8786", False), ("tcp://0.0.0.0:8786", False), ("tcp://[fe80::1]:8786", False),
    ("10.0.0.2:8786", False), ("tls://lab.example.org:8786", False),
])
def test_is_local_address(address, local):
    assert fc.is_local_address(address) is local


def test_connect_local_cluster_object_and_loopback_address(lab_cluster):
    with fc.connect(lab_cluster) as client:
        assert len(fc.lab_workers(client)) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", fc.InsecureClusterWarning)
        with fc.connect(lab_cluster.scheduler_address) as client:
            assert {w.name for w in fc.lab_workers(client)} == {"0", "1"}


@pytest.mark.parametrize("address, security, got", [
    ("tcp://192.0.2.1:8786", None, "tcp:// without TLS"),
    ("tls://192.0.2.1:8786", None, "tls:// without certificates"),
    ("tcp://lab.example.org:8786", object(),
     r"tcp:// \(certificates given, but the address is not tls://\)"),
])
def test_remote_address_refused_without_tls(address, security, got):
    with pytest.raises(ValueError, match=rf"Refusing the scheduler at {address}: it is not a "
                                         rf"local address .* given {got}.*remote code "
                                         r"execution.*--insecure"):
        fc.connect(address, security=security)


def test_insecure_warns_and_then_connects(monkeypatch):
    made = []
    monkeypatch.setattr(distributed, "Client", lambda *a, **k: made.append((a, k)) or "client")
    with pytest.warns(fc.InsecureClusterWarning, match=r"192\.0\.2\.1:8786 without TLS "
                                                       r"\(--insecure\): anyone who can reach"):
        assert fc.connect("tcp://192.0.2.1:8786", insecure=True) == "client"
    assert made[0][0] == ("tcp://192.0.2.1:8786",) and made[0][1]["security"] is None


def test_no_scheduler_is_a_connection_error():
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match=rf"No Dask scheduler answered at "
                                              rf"tcp://127.0.0.1:{port} within 1 s.*dask "
                                              "scheduler"):
        fc.connect(f"tcp://127.0.0.1:{port}", timeout=1)


def test_security_files_checked(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ValueError, match=r"TLS needs the lab's CA certificate and this "
                                         r"client's certificate: got --tls-ca-file without "
                                         r"--tls-cert"):
        fc.security_from_files(ca, None, None)
    with pytest.raises(ValueError, match=r"--tls-cert .*nope.pem does not exist"):
        fc.security_from_files(ca, tmp_path / "nope.pem", None)
    assert fc.security_from_files(None, None, None) is None


def _non_loopback_ip() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing interface
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def test_tls_on_a_network_address(tmp_path):
    """A scheduler with self-made certificates on this machine's network
    address: reachable with tls:// and the certificates, refused without."""
    ip = _non_loopback_ip()
    if shutil.which("openssl") is None or ip is None:
        pytest.skip("needs openssl and a non-loopback IPv4 address")
    key, cert = tmp_path / "lab.key", tmp_path / "lab.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=edgepose-lab", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = distributed.Security(tls_ca_file=str(cert), tls_scheduler_cert=str(cert),
                                  tls_scheduler_key=str(key), tls_worker_cert=str(cert),
                                  tls_worker_key=str(key), tls_client_cert=str(cert),
                                  tls_client_key=str(key), require_encryption=True)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tls://", host=ip, security=server,
                                  dashboard_address=None, silence_logs=40) as lab:
        address = lab.scheduler_address
        assert address.startswith(f"tls://{ip}:") and not fc.is_local_address(address)
        with pytest.raises(ValueError, match="tls:// without certificates"):
            fc.connect(address)
        security = fc.security_from_files(cert, cert, key)
        with fc.connect(address, security=security) as client:
            assert client.submit(sum, [1, 2]).result(timeout=30) == 3


def test_workers_and_probes(lab_client):
    workers = fc.lab_workers(lab_client)
    assert [w.name for w in workers] == ["0", "1"]
    assert all(w.is_device and w.nthreads == 1 for w in workers)
    assert [w.name for w in fc.lab_workers(lab_client, ["1"])] == ["1"]
    assert fc.lab_workers(lab_client, [workers[0].address])[0].name == "0"
    with pytest.raises(ValueError, match=r"--devices names 'pi5', which no worker of the lab "
                                         r"is; the workers are: 0, 1\."):
        fc.lab_workers(lab_client, ["0", "pi5"])
    probes = fc.probe_workers(lab_client, workers)
    assert set(probes) == {"0", "1"}
    for probe in probes.values():
        assert probe["cpu"]["cores_logical"] >= 1 and probe["edgepose"]["version"]


def test_same_versions_pass(lab_client):
    report = fc.check_versions(lab_client)
    assert not report.mixed and set(report.workers) == {"0", "1"}
    assert report.workers["0"]["edgepose"] == report.client["edgepose"]
    assert "All 2 workers run the same versions" in report.describe()


def test_version_mismatch_refused_before_work(lab_client, monkeypatch):
    real = fc.local_versions()
    monkeypatch.setattr(fc, "local_versions", lambda: real | {"edgepose": "9.9.9"})
    with pytest.raises(fc.VersionMismatchError,
                       match=rf"Versions differ on 2 of 2 workers: 0: edgepose "
                             rf"{real['edgepose']} \(expected 9.9.9\); 1: .*"
                             r"--allow-mixed-versions"):
        fc.check_versions(lab_client)
    report = fc.check_versions(lab_client, allow_mixed=True)
    assert report.mismatches["1"] == {"edgepose": {"expected": "9.9.9",
                                                   "got": real["edgepose"]}}


def test_compare_versions_rules():
    client = {"edgepose": "0.1.0", "python": "3.11.7", "numpy": "2.1.0", "distributed": "1",
              "runtimes": {}}
    same = {"edgepose": "0.1.0", "python": "3.11.9", "numpy": "2.1.0", "distributed": "1"}
    workers = {
        "pi4": same | {"runtimes": {"onnxruntime": "1.20.0", "ai-edge-litert": "1.2"}},
        "pi5": same | {"runtimes": {"onnxruntime": "1.20.0"}},           # no litert: fine
        "nuc": same | {"python": "3.12.1", "runtimes": {"onnxruntime": "1.19.2"}},
    }
    report = fc.compare_versions(client, workers)
    assert report.mismatches == {"nuc": {"python": {"expected": "3.11.7", "got": "3.12.1"},
                                         "onnxruntime": {"expected": "1.20.0",
                                                         "got": "1.19.2"}}}
    assert "nuc: python 3.12.1 (expected 3.11.7), onnxruntime 1.19.2 (expected 1.20.0)" \
        in report.describe()


def _lab_args(**given):
    import argparse

    from edgepose.fleet.flags import add_cluster_flags

    parser = argparse.ArgumentParser()
    add_cluster_flags(parser)
    argv = []
    for key, value in given.items():
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return parser.parse_args(argv)


def test_open_lab_prints_the_insecure_warning_and_checks_versions(lab_cluster, monkeypatch,
                                                                  capsys):
    """--insecure on a non-local address: the warning on stderr, then the
    lab's workers and versions (the connection itself goes to the local
    cluster: nothing here listens on a network)."""
    from edgepose.fleet.flags import open_lab

    real_client = distributed.Client
    monkeypatch.setattr(distributed, "Client",
                        lambda address, **kw: real_client(lab_cluster, **kw))
    args = _lab_args(cluster="tcp://192.0.2.1:8786", insecure=True, devices="1")
    with open_lab(args) as lab:
        assert [w.name for w in lab.workers] == ["1"] and not lab.versions.mixed
    err = capsys.readouterr().err
    assert "warning: Connecting to the scheduler at tcp://192.0.2.1:8786 without TLS " \
           "(--insecure): anyone who can reach that scheduler can run any code" in err


def test_open_lab_usage_errors(tmp_path):
    from edgepose._cli import UsageError
    from edgepose.fleet.flags import check_cluster_flags, open_lab

    with pytest.raises(UsageError, match=r"Refusing the scheduler at tcp://10.1.2.3:8786"):
        open_lab(_lab_args(cluster="tcp://10.1.2.3:8786"))
    with pytest.raises(UsageError, match=r"--tls-key .*k.pem does not exist: pass a PEM file"):
        (tmp_path / "c.pem").write_text("x")
        open_lab(_lab_args(cluster="tls://10.1.2.3:8786", tls_ca_file=tmp_path / "c.pem",
                           tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem"))
    with pytest.raises(UsageError, match=r"--insecure is a device-lab option and needs "
                                         r"--cluster ADDR"):
        check_cluster_flags(_lab_args(insecure=True))
