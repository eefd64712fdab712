#!/usr/bin/env python3
"""Side-by-side benchmark of aivault against peers on one machine (see benches/README.md).

Run through `benches/harness/run` (which builds and installs everything). Origin and load generator
share CPU 0; every proxy is pinned to CPU 1 and its CPU time is read from /proc.
"""
import argparse
import glob
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AIVAULT = os.path.join(ROOT, "target", "release", "aivault")
HARNESS = os.path.join(ROOT, "benches", "harness", "target", "release")
MITMDUMP = os.path.join(ROOT, ".tools", "bench-venv", "bin", "mitmdump")
HOSTS_FILE = "/etc/hosts"
MARK = "# aivault-bench"
CLK = os.sysconf("SC_CLK_TCK")
SECRET = "bench-secret"
BASE_HOSTS = ["api.bench.test", "tunnel.bench.test", "query.bench.test", "sigv4.bench.test"]


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

class Proc:
    def __init__(self, name, argv, cpu, env=None, ready=None, port=None):
        self.name = name
        full_env = dict(os.environ, **(env or {}))
        self.p = subprocess.Popen(["taskset", "-c", str(cpu)] + argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=full_env, text=True,
                                  preexec_fn=raise_fd_limit)
        self.line = ""
        if ready:
            deadline = time.time() + 60
            while time.time() < deadline:
                self.line = self.p.stdout.readline()
                if ready in self.line:
                    break
                if self.p.poll() is not None:
                    raise RuntimeError(f"{name} exited early")
        if port:
            wait_port(port)

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()


def raise_fd_limit():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---------------------------------------------------------------- load

def hey(url, c, seconds=None, n=None, proxy=None, headers=(), keepalive=True, pid=None, method="GET"):
    argv = ["taskset", "-c", "0", "hey", "-c", str(c), "-m", method]
    argv += ["-z", f"{seconds}s"] if n is None else ["-n", str(n)]
    if proxy:
        argv += ["-x", proxy]
    if not keepalive:
        argv += ["-disable-keepalive"]
    for h in headers:
        argv += ["-H", h]
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(argv + [url], capture_output=True, text=True, preexec_fn=raise_fd_limit).stdout
    used = cpu_seconds(pid) - before if pid else 0.0
    rps = float((re.search(r"Requests/sec:\s+([\d.]+)", out) or [0, 0])[1])
    pct = {int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)% in ([\d.]+) secs", out)}
    codes = {int(k): int(v) for k, v in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = sum(int(v) for v in re.findall(r"^\s+\[(\d+)\]\s+(?:Get|Post)", out, re.M))
    total = sum(codes.values())
    expected = 403 if url.endswith("/denied") else 200
    if set(codes) != {expected} or errors:
        # A proxy that skipped injection gets 401s from the origin: it must not "win" a run.
        raise RuntimeError(f"{url} via {proxy or 'direct'}: expected only HTTP {expected}, got {codes} and {errors} errors")
    return {
        "rps": rps, "p50_ms": pct.get(50), "p99_ms": pct.get(99), "codes": codes, "requests": total,
        "errors": errors, "cpu_us_per_req": (used * 1e6 / total) if total and pid else None,
    }


def interleaved(cases, rounds=3):
    """Runs each case of `cases` (name -> hey() keyword arguments) in turn, `rounds` times, so the
    machine's drift hits every case alike; returns name -> the run with the median CPU per request,
    with every round's CPU per request under "rounds_cpu_us"."""
    runs = {k: [] for k in cases}
    for _ in range(rounds):
        for k, kw in cases.items():
            runs[k].append(hey(**kw))
    out = {}
    for k, v in runs.items():
        mid = sorted(v, key=lambda r: r["cpu_us_per_req"] or 0)[len(v) // 2]
        out[k] = dict(mid, rounds_cpu_us=[round(r["cpu_us_per_req"] or 0, 2) for r in v],
                      rps=statistics.median(r["rps"] for r in v))
    return out


def newconn(proxy_url, seconds, threads=32, pid=None, bearer="placeholder", host="api.bench.test"):
    """W2's driver (harness/src/bin/newconn.rs): a new TCP connection, CONNECT and full TLS handshake
    per request, `threads` at a time. Returns what hey() returns for the fields W2 uses, plus the
    share of its core the proxy used (1.0: the proxy, not the load generator, was the limit)."""
    target, token = "direct", "-"
    if proxy_url:
        u = urllib.parse.urlsplit(proxy_url)
        target, token = f"{u.hostname}:{u.port}", u.password or "-"
    argv = ["taskset", "-c", "0", os.path.join(HARNESS, "newconn"), target, token, host, "127.0.0.1:443", "/small",
            str(seconds), str(threads), bearer]
    before = cpu_seconds(pid) if pid else 0.0
    done = subprocess.run(argv, capture_output=True, text=True, preexec_fn=raise_fd_limit)
    used = cpu_seconds(pid) - before if pid else 0.0
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"newconn via {proxy_url or 'direct'} failed: {done.stderr.strip()}")
    r = json.loads(done.stdout)
    if r["errors"] or not r["requests"]:
        raise RuntimeError(f"new connections via {proxy_url or 'direct'}: {r['errors']} errors: {done.stderr.strip()}")
    r["cpu_us_per_req"] = used * 1e6 / r["requests"] if pid else None
    r["proxy_core_share"] = used / r["seconds"] if pid else None
    return r


def curl_transfer(url, proxy, ca, pid=None, upload=None):
    argv = ["taskset", "-c", "0", "curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{size_upload} %{time_total}",
            "--cacert", ca, "-H", f"Authorization: Bearer {SECRET}"]
    if proxy:
        argv += ["--proxy", proxy]
    if upload:
        argv += ["--data-binary", f"@{upload}"]
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(rss_kib(pid))
            time.sleep(0.02)

    base = rss_kib(pid) if pid else 0
    t = threading.Thread(target=sample) if pid else None
    if t:
        t.start()
    out = subprocess.run(argv + [url], capture_output=True, text=True).stdout.split()
    stop.set()
    if t:
        t.join()
    down, up, secs = int(out[0]), int(out[1]), float(out[2])
    return {"mb_per_s": (max(down, up) / 1e6) / secs if secs else 0, "seconds": secs,
            "rss_growth_kib": (max(samples) - base) if samples else None}


def tunnel(proxy_port, host, token=None, ca=None):
    """CONNECT through a proxy and return a TLS socket to host:443."""
    s = socket.create_connection(("127.0.0.1", proxy_port))
    auth = f"Proxy-Authorization: Bearer {token}\r\n" if token else ""
    s.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n{auth}\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise RuntimeError("proxy closed the tunnel")
        head += chunk
    if b" 200" not in head.split(b"\r\n")[0]:
        raise RuntimeError(f"CONNECT refused: {head.splitlines()[0]!r}")
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
    return ctx.wrap_socket(s, server_hostname=host)


def get_on(sock, host, path):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {SECRET}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
    while len(body) < length:
        body += sock.recv(4096)
    return int(head.split()[1])


def first_contact(proxy_port, hosts, token=None, ca=None, workers=32):
    """New tunnel + one request per host, `workers` at a time; returns TTFB percentiles (ms)."""
    times, lock, todo = [], threading.Lock(), list(hosts)

    def work():
        while True:
            with lock:
                if not todo:
                    return
                host = todo.pop()
            t0 = time.time()
            s = tunnel(proxy_port, host, token, ca)
            status = get_on(s, host, "/small")
            s.close()
            with lock:
                times.append(((time.time() - t0) * 1000, status))

    threads = [threading.Thread(target=work) for _ in range(workers)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    ms = sorted(t for t, _ in times)
    return {"p50_ms": ms[len(ms) // 2], "p99_ms": ms[int(len(ms) * 0.99) - 1], "ok": sum(1 for _, s in times if s == 200)}


def sse_gaps(url, proxy, ca, events, gap_ms):
    argv = ["curl", "-sS", "-N", "--cacert", ca, "-H", f"Authorization: Bearer {SECRET}", f"{url}?n={events}&gap_ms={gap_ms}"]
    if proxy:
        argv[1:1] = ["--proxy", proxy]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE)
    arrivals, buf = [], b""
    while True:
        chunk = p.stdout.read1(4096)
        if not chunk:
            break
        now = time.time()
        buf += chunk
        while b"\n\n" in buf:
            _, buf = buf.split(b"\n\n", 1)
            arrivals.append(now)
    p.wait()
    gaps = [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:])]
    return {"events": len(arrivals), "gap_p50_ms": statistics.median(gaps) if gaps else None,
            "gap_p99_ms": sorted(gaps)[int(len(gaps) * 0.99) - 1] if gaps else None}


def hold_idle(proxy_port, host, n, token, ca):
    socks = []
    for _ in range(n):
        s = tunnel(proxy_port, host, token, ca)
        get_on(s, host, "/small")
        socks.append(s)
    return socks


# ---------------------------------------------------------------- setup

def start_squid(work, origin_ca):
    """Squid 5 (squid-openssl) with ssl-bump and request_header_add, P-256 CA, one process."""
    d = os.path.join(work, "squid")
    os.makedirs(d, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "30", "-subj", "/CN=squid bench CA"],
                   check=True, capture_output=True)
    subprocess.run(["/usr/lib/squid/security_file_certgen", "-c", "-s", f"{d}/ssl_db", "-M", "20MB"], check=True, capture_output=True)
    shutil.copy(origin_ca, f"{d}/origin-ca.pem")
    open(f"{d}/squid.conf", "w").write(f"""http_port 127.0.0.1:18086 ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=20MB tls-cert={d}/ca.pem tls-key={d}/ca.key
sslcrtd_program /usr/lib/squid/security_file_certgen -s {d}/ssl_db -M 20MB
sslcrtd_children 5
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile={d}/origin-ca.pem
request_header_access Authorization deny all
request_header_add Authorization "Bearer {SECRET}" all
http_access allow all
cache deny all
access_log none
cache_log {d}/cache.log
pid_filename {d}/squid.pid
coredump_dir {d}
""")
    subprocess.run(["chown", "-R", "proxy:proxy", d], check=True)
    return Proc("squid", ["squid", "-N", "-f", f"{d}/squid.conf"], 1, port=18086)


def hosts_file(extra):
    original = open(HOSTS_FILE).read()
    lines = [l for l in original.splitlines() if MARK not in l]
    lines.append(f"127.0.0.1 {' '.join(BASE_HOSTS)} {MARK}")
    for i in range(0, len(extra), 50):
        lines.append(f"127.0.0.1 {' '.join(extra[i:i + 50])} {MARK}")
    open(HOSTS_FILE, "w").write("\n".join(lines) + "\n")
    return original


def aivault(home, *args, json_out=False):
    argv = [AIVAULT, "--home", home] + list(args) + (["--json"] if json_out else [])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out) if json_out else out


def setup_vault(home):
    sid = aivault(home, "secrets", "create", "--name", "BENCH_KEY", "--value", SECRET, json_out=True)["ref"]
    aivault(home, "credential", "create", "bench", "--provider", "bench", "--secret-ref", sid, "--auth", "header",
            "--host", "api.bench.test", "--host", "*.bench.test")
    aivault(home, "capability", "create", "bench/all", "--credential", "bench", "--method", "GET", "--method", "POST",
            "--path", "/small", "--path", "/bytes", "--path", "/upload", "--path", "/sse", "--path", "/echo")
    aivault(home, "credential", "create", "bench-query", "--provider", "bench-query", "--secret-ref", sid, "--auth", "query",
            "--query-param", "key", "--host", "query.bench.test")
    aivault(home, "capability", "create", "bench-query/all", "--credential", "bench-query", "--method", "GET", "--path", "/small")
    aws = aivault(home, "secrets", "create", "--name", "BENCH_AWS", "--value",
                  json.dumps({"access_key_id": "AKIDBENCH", "secret_access_key": "benchsecretkey"}), json_out=True)["ref"]
    aivault(home, "credential", "create", "bench-sigv4", "--provider", "bench-aws", "--secret-ref", aws, "--auth", "aws-sigv4",
            "--aws-service", "execute-api", "--aws-region", "us-east-1", "--host", "sigv4.bench.test")
    aivault(home, "capability", "create", "bench-aws/all", "--credential", "bench-sigv4", "--method", "GET", "--path", "/small")
    # A second agent whose every request is checked against a rate limit it never reaches.
    global LIMITED_TOKEN
    LIMITED_TOKEN = aivault(home, "agent", "create", "bench-limited", json_out=True)["token"]
    aivault(home, "limit", "set", "--agent", "bench-limited", "--rate", "100000000/s")
    return aivault(home, "agent", "create", "bench", json_out=True)["token"]


LIMITED_TOKEN = None


# ---------------------------------------------------------------- report

def markdown(results):
    r = results
    rows = []
    w1 = r["W1"]
    direct32 = w1["direct"]["c32"]
    rows.append("| proxy | W1 c=1 p50 ms | W1 c=32 req/s | W1 c=32 p50 / p99 ms | added p50 / p99 ms | CPU µs/req | W2 conn/s | W2 p50 / p99 ms |")
    rows.append("|---|---|---|---|---|---|---|---|")
    for name, v in w1.items():
        c1, c32, w2 = v["c1"], v["c32"], r["W2"].get(name, {})
        added = "-" if name == "direct" else f"{c32['p50_ms'] - direct32['p50_ms']:.2f} / {c32['p99_ms'] - direct32['p99_ms']:.2f}"
        cpu = "-" if c32.get("cpu_us_per_req") is None else f"{c32['cpu_us_per_req']:.1f}"
        rows.append(f"| {name} | {c1['p50_ms']:.2f} | {c32['rps']:.0f} | {c32['p50_ms']:.2f} / {c32['p99_ms']:.2f} | {added} | {cpu} | "
                    f"{w2.get('rps', 0):.0f} | {w2.get('p50_ms', 0):.2f} / {w2.get('p99_ms', 0):.2f} |")
    out = ["## Keep-alive (W1) and new connections (W2)", "", *rows, ""]
    out += ["## Ratios and targets", "", "| target | measured | holds |", "|---|---|---|"]
    for t in r["targets"]:
        out.append(f"| {t['target']} | {t['measured']} | {'holds' if t['holds'] else 'does not hold'} |")
    if r.get("W7"):
        w7 = r["W7"]
        pg, rd = w7["c32"], w7["redb_c32"]
        prop = w7["propagation_ms"]
        out += ["", "## PostgreSQL backend (W7)", "", "| store | W1 c=32 req/s | CPU µs/req |", "|---|---|---|",
                f"| redb (W6 header, same run) | {rd['rps']:.0f} | {rd.get('cpu_us_per_req') or 0:.1f} |",
                f"| PostgreSQL | {pg['rps']:.0f} | {pg.get('cpu_us_per_req') or 0:.1f} |", "",
                f"Change propagation to a second proxy ({prop['n']} changes): p50 {prop['p50']:.1f} ms, "
                f"p99 {prop['p99']:.1f} ms, max {prop['max']:.1f} ms."]
    if r.get("baseline"):
        b = r["baseline"]
        cur, base = b["current"], b["baseline"]
        out += ["", "## Before / after (W1 c=32, two fresh proxies, seven rounds in alternating order, medians)", "", f"Baseline binary: `{b['binary']}`", "",
                "| build | req/s | CPU µs/req |", "|---|---|---|",
                f"| baseline | {base['rps']:.0f} | {base['cpu_us_per_req']:.1f} |",
                f"| current | {cur['rps']:.0f} | {cur['cpu_us_per_req']:.1f} |", "",
                f"Change in CPU per request: {100 * (cur['cpu_us_per_req'] / base['cpu_us_per_req'] - 1):+.1f} %."]
    if r.get("micro_ns"):
        out += ["", "## Micro-benchmarks (criterion, ns per iteration)", "", "| benchmark | ns |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in r["micro_ns"].items()]
    out += ["", "## Other workloads", "", "```json", json.dumps({k: r[k] for k in ("W0", "W1_colocated_c1", "W3", "W4", "W5", "W5_fresh", "W6", "handshake_rate") if k in r}, indent=2), "```"]
    return "\n".join(out) + "\n"


def svg_chart(results):
    bars = [(n, v["c32"]["p50_ms"], v["c32"]["p99_ms"]) for n, v in results["W1"].items()]
    top = max(p99 for _, _, p99 in bars) * 1.15 or 1
    w, h, left, bw = 640, 320, 60, 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<text x="{w/2}" y="18" text-anchor="middle">W1 keep-alive GET, 32 connections: latency p50 / p99 (ms)</text>']
    for i, (name, p50, p99) in enumerate(bars):
        x = left + i * (bw * 2 + 40)
        for j, (val, color) in enumerate([(p50, "#4a90d9"), (p99, "#d97b4a")]):
            bh = (h - 80) * val / top
            parts.append(f'<rect x="{x + j*bw}" y="{h - 40 - bh:.1f}" width="{bw - 4}" height="{bh:.1f}" fill="{color}"/>')
            parts.append(f'<text x="{x + j*bw + bw/2 - 2}" y="{h - 44 - bh:.1f}" text-anchor="middle">{val:.2f}</text>')
        parts.append(f'<text x="{x + bw}" y="{h - 22}" text-anchor="middle">{name}</text>')
    parts.append(f'<text x="{w - 120}" y="40" fill="#4a90d9">■ p50</text><text x="{w - 60}" y="40" fill="#d97b4a">■ p99</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="about 30 seconds: short runs, fewer hosts and connections")
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "results"))
    ap.add_argument("--no-mitmproxy", action="store_true")
    ap.add_argument("--no-squid", action="store_true")
    ap.add_argument("--profile-only", action="store_true",
                    help="only W1 c=32 on aivault under perf: CPU per request, flamegraph.svg and profile.md in --out")
    ap.add_argument("--baseline", metavar="AIVAULT_BINARY",
                    help="also measure this aivault binary (an earlier commit's release build) on the same vault, "
                         "interleaved with the current one: the before/after of a change in one run")
    ap.add_argument("--baseline-label", help="how the report names the baseline build (default: its path)")
    args = ap.parse_args()
    smoke = args.smoke
    dur = 2 if smoke else 8
    n_hosts = 50 if smoke else 1000
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="aivault-bench-")
    os.chmod(work, 0o755)  # squid drops to user "proxy" and must reach its own files; aivault's home stays 0700
    extra_hosts = [f"h{i:04d}.bench.test" for i in range(n_hosts)]
    original_hosts = hosts_file(extra_hosts)
    procs = []
    try:
        origin = Proc("origin", [os.path.join(HARNESS, "bench-origin"), "127.0.0.1:443", work], 0, ready="ready")
        procs.append(origin)
        ca = os.path.join(work, "origin-ca.pem")
        home = os.path.join(work, "aivault")
        token = setup_vault(home)
        aiv_ca = aivault(home, "ca", "path").strip()
        resolve = ",".join(f"{h}:443:127.0.0.1:443" for h in BASE_HOSTS + extra_hosts)
        env = {"AIVAULT_RESOLVE": resolve, "AIVAULT_UPSTREAM_CA": ca}
        # W5 holds up to 5000 idle tunnels from one agent: every tunnel holds a connection slot.
        limits = ["--max-connections", "8192", "--max-agent-connections", "8192"]
        aiv = Proc("aivault", [AIVAULT, "--home", home, "proxy", "--listen", "127.0.0.1:18081"] + limits, 1, env=env,
                   ready="listening on")
        aiv_tunnel = Proc("aivault-tunnel", [AIVAULT, "--home", home, "proxy", "--listen", "127.0.0.1:18084", "--unmatched", "tunnel"],
                          1, env=dict(env, AIVAULT_RESOLVE=resolve.replace("api.bench.test:443:127.0.0.1:443,", "")),
                          ready="listening on")
        hud = Proc("hudsucker", [os.path.join(HARNESS, "hudsucker-peer"), "127.0.0.1:18082", ca], 1, ready="ready")
        procs += [aiv, aiv_tunnel, hud]
        peers = {"aivault": (aiv, f"http://agent:{token}@127.0.0.1:18081"), "hudsucker": (hud, "http://127.0.0.1:18082")}
        if not args.no_mitmproxy and os.path.exists(MITMDUMP):
            addon = os.path.join(work, "inject.py")
            open(addon, "w").write(f'def request(flow):\n    flow.request.headers["authorization"] = "Bearer {SECRET}"\n')
            mitm = Proc("mitmproxy", [MITMDUMP, "-q", "--listen-host", "127.0.0.1", "--listen-port", "18083", "--set",
                                      f"confdir={work}/mitm", "--set", f"ssl_verify_upstream_trusted_ca={ca}", "-s", addon],
                        1, port=18083)
            procs.append(mitm)
            peers["mitmproxy"] = (mitm, "http://127.0.0.1:18083")
        if not args.no_squid and shutil.which("squid"):
            squid = start_squid(work, ca)
            procs.append(squid)
            peers["squid"] = (squid, "http://127.0.0.1:18086")
        url = "https://api.bench.test/small"
        placeholder = ["Authorization: Bearer placeholder"]
        results = {"machine": machine(), "smoke": smoke, "duration_s": dur}
        if args.profile_only:
            aurl = f"http://agent:{token}@127.0.0.1:18081"
            hey(url, 32, 2, proxy=aurl, headers=placeholder)  # warm the pool and the leaf cache
            plain = hey(url, 32, dur, proxy=aurl, headers=placeholder, pid=aiv.pid)
            log(f"W1 c=32: {plain['rps']:.0f} req/s, {plain['cpu_us_per_req']:.1f} µs CPU/request")
            print(json.dumps({"W1_c32": plain, "profile": profile(aiv.pid, url, aurl, placeholder, args.out, keep_folded=True)}, indent=2))
            return

        log("W0 direct and tunnel")
        results["W0"] = {
            "direct_c32": hey(url, 32, dur, headers=[f"Authorization: Bearer {SECRET}"]),
            "aivault_tunnel_c32": hey("https://tunnel.bench.test/small", 32, dur, proxy=f"http://agent:{token}@127.0.0.1:18084",
                                      headers=[f"Authorization: Bearer {SECRET}"], pid=aiv_tunnel.pid),
        }
        log("W1 keep-alive")
        results["W1"] = {"direct": {"c1": hey(url, 1, dur, headers=[f"Authorization: Bearer {SECRET}"]),
                                    "c32": results["W0"]["direct_c32"]}}
        # The two ratio targets compare aivault with hudsucker: their c=32 runs alternate seven
        # times (medians; rounds on this VM differ by up to half), so its drift hits both alike;
        # the other peers run once.
        paired = [n for n in ("aivault", "hudsucker") if n in peers]
        for name, (proc, purl) in peers.items():
            results["W1"][name] = {"c1": hey(url, 1, dur, proxy=purl, headers=placeholder, pid=proc.pid)}
            if name not in paired:
                results["W1"][name]["c32"] = hey(url, 32, dur, proxy=purl, headers=placeholder, pid=proc.pid)
        for name, v in interleaved({n: dict(url=url, c=32, seconds=dur, proxy=peers[n][1], headers=placeholder,
                                            pid=peers[n][0].pid) for n in paired}, rounds=3 if smoke else 7).items():
            results["W1"][name]["c32"] = v
        # Latency at c=1 is dominated by waking an idle core: measure aivault co-located with the
        # client and origin on CPU 0 too, so the pinned figure is not mistaken for proxy work.
        colo = Proc("aivault-colocated", [AIVAULT, "--home", home, "proxy", "--listen", "127.0.0.1:18085"], 0, env=env, ready="listening on")
        results["W1_colocated_c1"] = {
            "aivault": hey(url, 1, dur, proxy=f"http://agent:{token}@127.0.0.1:18085", headers=placeholder, pid=colo.pid),
            "direct": hey(url, 1, dur, headers=[f"Authorization: Bearer {SECRET}"]),
        }
        log("W1 c=1 latency with µs resolution (one connection, sequential requests)")
        n_lat = 2000 if smoke else 20000
        lat = lambda proxy, token_, ca_, bearer="placeholder": json.loads(subprocess.run(
            ["taskset", "-c", "0", os.path.join(HARNESS, "latency"), proxy, token_, ca_, "api.bench.test", "127.0.0.1:443",
             "/small", str(n_lat), bearer], capture_output=True, text=True, check=True).stdout)
        results["W1_latency_us"] = {"direct": lat("direct", "-", ca, SECRET), "aivault": lat("127.0.0.1:18081", token, aiv_ca)}
        results["W1_latency_us"]["aivault_colocated"] = lat("127.0.0.1:18085", token, aiv_ca)
        colo.stop()
        if "hudsucker" in peers:
            results["W1_latency_us"]["hudsucker"] = lat("127.0.0.1:18082", "-", os.path.join(work, "hudsucker-ca.pem"))
        if args.baseline:
            log("baseline: keep-alive c=32, current and baseline interleaved")
            results["baseline"] = before_after(args.baseline, home, env, url, placeholder, dur)
            results["baseline"]["label"] = args.baseline_label
        if shutil.which("perf") and shutil.which("inferno-flamegraph") and not smoke:
            log("profile: perf on the proxy under W1 c=32")
            results["profile"] = profile(aiv.pid, url, peers["aivault"][1], placeholder, args.out)
            results["own_phases"] = OWN_PHASES
        log("W2 new connection per request")
        results["W2"] = {"direct": newconn(None, dur, bearer=SECRET)}
        for name, (proc, purl) in peers.items():
            results["W2"][name] = newconn(purl, dur, pid=proc.pid)
        results["handshake_rate"] = json.loads(subprocess.run(
            ["taskset", "-c", "1", os.path.join(HARNESS, "handshake-rate"), "1" if smoke else "3"],
            capture_output=True, text=True).stdout)

        log("W3 first contact")
        minted_before = ping(18081, token)["leaf_certificates_minted"]
        cold = first_contact(18081, extra_hosts, token, aiv_ca)
        minted = ping(18081, token)["leaf_certificates_minted"] - minted_before
        warm = first_contact(18081, extra_hosts, token, aiv_ca)
        results["W3"] = {"hosts": n_hosts, "aivault": {"cold": cold, "warm": warm, "certificates_minted": minted}}
        if "hudsucker" in peers:
            results["W3"]["hudsucker"] = {"cold": first_contact(18082, extra_hosts), "warm": first_contact(18082, extra_hosts)}

        log("W4 bodies")
        big = 10 if smoke else 100
        upload = os.path.join(work, "upload.bin")
        with open(upload, "wb") as f:
            f.write(os.urandom(10 * 1024 * 1024))
        aurl = peers["aivault"][1]
        results["W4"] = {
            "get_1MiB": {"direct": hey("https://api.bench.test/bytes/1048576", 8, n=40 if smoke else 300, headers=[f"Authorization: Bearer {SECRET}"]),
                         "aivault": hey("https://api.bench.test/bytes/1048576", 8, n=40 if smoke else 300, proxy=aurl, headers=placeholder)},
            f"get_{big}MiB": {"direct": curl_transfer(f"https://api.bench.test/bytes/{big * 1048576}", None, ca),
                              "aivault": curl_transfer(f"https://api.bench.test/bytes/{big * 1048576}", aurl, aiv_ca, pid=aiv.pid)},
            "post_10MiB": {"direct": curl_transfer("https://api.bench.test/upload", None, ca, upload=upload),
                           "aivault": curl_transfer("https://api.bench.test/upload", aurl, aiv_ca, pid=aiv.pid, upload=upload)},
            "sse": {"direct": sse_gaps("https://api.bench.test/sse", None, ca, 100 if smoke else 500, 10),
                    "aivault": sse_gaps("https://api.bench.test/sse", aurl, aiv_ca, 100 if smoke else 500, 10)},
        }
        log("W5 idle connections")
        results["W5"] = {}
        for n in ([100] if smoke else [1000, 5000]):
            base_rss, base_fd = rss_kib(aiv.pid), fds(aiv.pid)
            socks = hold_idle(18081, "api.bench.test", n, token, aiv_ca)
            time.sleep(0.5)
            results["W5"][str(n)] = {"rss_kib_per_conn": (rss_kib(aiv.pid) - base_rss) / n, "fds_per_conn": (fds(aiv.pid) - base_fd) / n}
            for s in socks:
                s.close()
            time.sleep(1)
        # The same on a fresh proxy per count (after a 2 s warm-up): what a connection costs
        # without the allocator state W1-W4 leave behind, and without the memory the previous
        # count's closed connections left for this one to reuse.
        results["W5_fresh"] = {}
        for n in ([100] if smoke else [1000, 5000]):
            fresh = Proc(f"aivault-w5-{n}", [AIVAULT, "--home", home, "proxy", "--listen", "127.0.0.1:18095", "--console-listen", "off"]
                         + limits, 1, env=env, ready="listening on")
            try:
                hey(url, 32, 2, proxy=f"http://agent:{token}@127.0.0.1:18095", headers=placeholder)
                time.sleep(0.5)
                base_rss = rss_kib(fresh.pid)
                socks = hold_idle(18095, "api.bench.test", n, token, aiv_ca)
                time.sleep(0.5)
                results["W5_fresh"][str(n)] = {"rss_kib_per_conn": (rss_kib(fresh.pid) - base_rss) / n}
                for s in socks:
                    s.close()
            finally:
                fresh.stop()
        log("W6 per-strategy cost")
        results["W6"] = {
            "tunnel": results["W0"]["aivault_tunnel_c32"],
            "header": results["W1"]["aivault"]["c32"],
            "query": hey("https://query.bench.test/small", 32, dur, proxy=aurl, pid=aiv.pid),
            "sigv4": hey("https://sigv4.bench.test/small", 32, dur, proxy=aurl, pid=aiv.pid),
            "deny_403": hey("https://api.bench.test/denied", 32, dur, proxy=aurl, pid=aiv.pid),
        }
        # The 3 % comparisons, interleaved on one proxy: the plain header case, the same route for
        # an agent with a rate limit it never reaches (checked on every request), and a response
        # that quotes the credential (masking replaces bytes on every request).
        results["W6"].update(interleaved({
            "header_again": dict(url=url, c=32, seconds=dur, proxy=aurl, headers=placeholder, pid=aiv.pid),
            "header_rate_limited": dict(url=url, c=32, seconds=dur, proxy=f"http://agent:{LIMITED_TOKEN}@127.0.0.1:18081",
                                        headers=placeholder, pid=aiv.pid),
            "header_echo_masked": dict(url="https://api.bench.test/echo", c=32, seconds=dur, proxy=aurl,
                                       headers=placeholder, pid=aiv.pid),
        }))
        pg_url, pg_stop = start_postgres(work)
        if pg_url:
            log("W7 PostgreSQL backend")
            try:
                results["W7"] = fleet(work, env, pg_url, dur, smoke, dict(url=url, c=32, seconds=dur, proxy=aurl,
                                                                          headers=placeholder, pid=aiv.pid))
            finally:
                pg_stop()
        log("W8 audit under a burst at full speed")
        results["W8"] = audit_burst(home, env, token, url, placeholder, 3 if smoke else 60)
        log("W9 a large vault against a small one")
        results["W9"] = large_vault(work, env, dur, smoke)
        if not smoke:
            log("micro-benchmarks")
            results["micro_ns"] = micro(smoke)
        results["targets"] = targets(results)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(markdown(results))
        with open(os.path.join(args.out, "latency.svg"), "w") as f:
            f.write(svg_chart(results))
        log(f"results in {args.out}")
        if not smoke and os.path.abspath(args.out) == os.path.join(ROOT, "benches", "results"):
            import report
            report.main(args.out)
            log("benches/README.md rewritten from this run")
        print(markdown(results))
    finally:
        for p in procs:
            p.stop()
        open(HOSTS_FILE, "w").write(original_hosts)
        shutil.rmtree(work, ignore_errors=True)


# Where proxy CPU goes. A sampled stack is charged to its innermost recognised frame (the work
# itself, as a flame graph's self time: an allocation counts to the allocator, not its caller;
# the masking body wraps the response stream, so only the scan counts to masking). The shares add
# up to 100 %.
# The phases of work hudsucker does not do at all.
OWN_PHASES = ["audit: write batches to the store", "audit: encode and queue", "policy, scope, select", "response masking",
              "decrypt the secret", "strip and inject"]

# Phases that own everything beneath them (syscalls, allocations, redb), checked first: the
# audit writer's batches run on a blocking thread and would otherwise read as kernel time.
OWNING_PHASES = [
    ("audit: write batches to the store", ["AuditWriter", "AuditSink::spawn"]),
]

PHASES = [
    ("audit: encode and queue", ["audit_sink", "AuditEvent", "aivault::audit"]),
    ("response masking", ["aivault::proxy::redact::", "aho_corasick", "Needles", "MaskerCache"]),
    ("decrypt the secret", ["aivault::crypto::", "ring::aead", "service::opened"]),
    ("policy, scope, select", ["aivault::policy", "aivault::scope", "Snapshot>::select", "Snapshot>::pick", "resolve::Snapshot"]),
    ("strip and inject", ["aivault::auth::inject", "aivault::auth::template"]),
    ("agent token check", ["agent_auth", "outer::authenticate"]),
    ("TLS (rustls, ring)", ["rustls::", "ring::", "tokio_rustls", "ring_core_", "aes_hw", "gcm_", "ChaCha20"]),
    ("HTTP/1 and HTTP/2 (hyper, h2, http)", ["hyper::", "h2::", "http::", "hyper_util::", "httparse"]),
    ("tokio runtime and I/O", ["tokio::", "mio::"]),
    ("allocator", ["malloc", "free", "realloc", "cfree", "_int_"]),
    ("kernel (syscalls, network stack)", ["[unknown]", "entry_SYSCALL", "__x64_sys", "do_syscall"]),
]


def profile(pid, url, proxy_url, headers, out_dir, seconds=6, keep_folded=False):
    """perf record (DWARF stacks) on the proxy under W1 c=32; writes flamegraph.svg and profile.md
    (the CPU share of each phase) to out_dir and returns the shares."""
    data = os.path.join(out_dir, "perf.data")
    rec = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", "dwarf,32768", "-p", str(pid), "-o", data,
                            "--", "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hey(url, 32, seconds, proxy=proxy_url, headers=headers)
    rec.wait()
    script = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True).stdout
    folded = subprocess.run(["inferno-collapse-perf"], input=script, capture_output=True, text=True).stdout
    os.remove(data)
    if keep_folded:
        open(os.path.join(out_dir, "profile.folded"), "w").write(folded)
    svg = subprocess.run(["inferno-flamegraph", "--title", "aivault proxy, W1 keep-alive c=32"], input=folded,
                         capture_output=True, text=True).stdout
    open(os.path.join(out_dir, "flamegraph.svg"), "w").write(svg)
    total, shares = 0, {name: 0 for name, _ in OWNING_PHASES + PHASES}
    shares["other (aivault code, std)"] = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")[::-1]
        phase = next((name for name, keys in OWNING_PHASES if any(k in f for f in frames for k in keys)), None)
        phase = phase or next((name for f in frames for name, keys in PHASES if any(k in f for k in keys)),
                              "other (aivault code, std)")
        shares[phase] += n
    rows = sorted(((v * 100.0 / total if total else 0.0, k) for k, v in shares.items()), reverse=True)
    md = ["| phase | CPU share |", "|---|---|"] + [f"| {k} | {v:.1f} % |" for v, k in rows]
    open(os.path.join(out_dir, "profile.md"), "w").write("\n".join(md) + "\n")
    return {"samples": total, "shares_pct": {k: round(v, 1) for v, k in rows}}


def metrics_text(port):
    return subprocess.run(["curl", "-s", "--max-time", "2", f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True).stdout


def metric(port, name):
    for line in metrics_text(port).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def proxied_requests(port):
    """Requests the proxy counted (every `kind="request"` series of aivault_requests_total)."""
    text = metrics_text(port)
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith('aivault_requests_total{kind="request"'))


def audit_burst(home, env, token, url, headers, seconds):
    """W8: `seconds` of W1 c=32 on a fresh proxy; every request must be committed to the audit
    log (the proxy's own written counter, checked once its queue drained) with the queue and RSS
    sampled every 100 ms for their peaks."""
    p = Proc("aivault-w8", [AIVAULT, "--home", home, "proxy", "--listen", "127.0.0.1:18091", "--console-listen",
                             "127.0.0.1:18092"], 1, env=env, ready="listening on")
    try:
        base_rss = rss_kib(p.pid)
        written_before = metric(18092, "aivault_audit_records_written_total") or 0
        counted_before = proxied_requests(18092)
        peaks, stop = {"queue": 0, "rss_kib": 0}, threading.Event()

        def sample():
            while not stop.is_set():
                q = metric(18092, "aivault_audit_queue_depth")
                peaks["queue"] = max(peaks["queue"], int(q or 0))
                peaks["rss_kib"] = max(peaks["rss_kib"], rss_kib(p.pid))
                time.sleep(0.1)
        t = threading.Thread(target=sample)
        t.start()
        r = hey(url, 32, seconds, proxy=f"http://agent:{token}@127.0.0.1:18091", headers=headers, pid=p.pid)
        stop.set()
        t.join()
        # hey keeps at most 1,000,000 results: past that the proxy's own request counter (checked
        # to be at least hey's count) is the number of requests the log must hold.
        counted = int(proxied_requests(18092) - counted_before)
        need = max(counted, r["requests"])
        deadline, written = time.time() + 60, 0
        while time.time() < deadline:
            written = (metric(18092, "aivault_audit_records_written_total") or 0) - written_before
            if written >= need:
                break
            time.sleep(0.5)
        return {"seconds": seconds, "requests": need, "hey_requests": r["requests"], "proxy_counted": counted,
                "rps": r["rps"], "cpu_us_per_req": r["cpu_us_per_req"],
                "written": int(written), "peak_queue": peaks["queue"], "rss_growth_kib": peaks["rss_kib"] - base_rss}
    finally:
        p.stop()


def before_after(binary, home, env, url, placeholder, dur):
    """W1 c=32 on the current build and on `binary`, each a fresh proxy with a fresh vault of its
    own, on the same CPU; seven rounds, which of the two goes first alternating, so the machine's
    drift and the slot's position hit both alike. Reports the medians of CPU per request and
    req/s. (The long-running proxy of W1 is not used: its audit log is at retention by then, and
    a fresh baseline beside it measured about 10 % cheaper for that alone.)"""
    global AIVAULT, LIMITED_TOKEN
    saved, limited = AIVAULT, LIMITED_TOKEN
    procs, cases = [], {}
    try:
        for i, (label, exe) in enumerate([("current", AIVAULT), ("baseline", binary)]):
            # Its own vault, made by its own binary: an older build refuses a newer store schema.
            AIVAULT = exe
            label_home = f"{home}-{label}"
            tok = setup_vault(label_home)
            port = 18089 + i * 10
            procs.append(Proc(f"aivault-{label}", [exe, "--home", label_home, "proxy", "--listen", f"127.0.0.1:{port}",
                                                    "--console-listen", "off"], 1, env=env, ready="listening on"))
            cases[label] = dict(url=url, c=32, seconds=dur, proxy=f"http://agent:{tok}@127.0.0.1:{port}",
                                headers=placeholder, pid=procs[-1].pid)
    finally:
        AIVAULT, LIMITED_TOKEN = saved, limited
    runs = {"current": [], "baseline": []}
    try:
        for kw in cases.values():
            hey(**dict(kw, seconds=2, pid=None))
        for i in range(7):
            for label in (("current", "baseline") if i % 2 == 0 else ("baseline", "current")):
                runs[label].append(hey(**cases[label]))
    finally:
        for p in procs:
            p.stop()
    out = {"binary": binary, "runs": runs}
    for k, v in runs.items():
        out[k] = {"cpu_us_per_req": statistics.median(r["cpu_us_per_req"] for r in v),
                  "rps": statistics.median(r["rps"] for r in v)}
    return out


# Where the throwaway PostgreSQL runs. Both CPUs: pinned to CPU 0 beside the load generator and
# the origin, it got about 1 % of that CPU while runnable (this VM, kernel 6.18), a 16k-row COPY
# took 6 s instead of 0.1 s, and the proxy's audit queue filled and spilled: W7 measured the
# spill path, not the database's. On another host, as in a fleet, the database has its own CPU;
# here the kernel runs it where there is room (mostly CPU 1, whose time is the proxy's otherwise:
# the proxy's CPU per request is its own process's, so the database's share is not counted).
PG_CPUS = os.environ.get("AIVAULT_BENCH_PG_CPUS", "0,1")


def start_postgres(work):
    """A throwaway PostgreSQL cluster on 127.0.0.1:15432 (as the postgres user: the server refuses root)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        return None, None
    bindir = os.path.dirname(bins[-1])
    pgdir = os.path.join(work, "pg")
    os.makedirs(pgdir)
    subprocess.run(["chown", "postgres:postgres", pgdir], check=True)
    run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(run_as + [f"{bindir}/initdb", "-A", "trust", "-U", "postgres", "--no-sync", "-D", f"{pgdir}/data"],
                   check=True, capture_output=True)
    opts = f"-p 15432 -k {pgdir} -c listen_addresses=127.0.0.1 -c max_connections=200"
    subprocess.run(["taskset", "-c", PG_CPUS] + run_as + [f"{bindir}/pg_ctl", "-D", f"{pgdir}/data", "-o", opts, "-l",
                                                      f"{pgdir}/log", "-w", "start"], check=True, capture_output=True)
    stop = lambda: subprocess.run(run_as + [f"{bindir}/pg_ctl", "-D", f"{pgdir}/data", "-m", "fast", "-w", "stop"],
                                  capture_output=True)
    return "postgres://postgres@127.0.0.1:15432/postgres", stop


def fleet(work, env, url, dur, smoke, redb_case):
    """W7: the PostgreSQL backend. Keep-alive throughput and CPU per request on a PostgreSQL vault,
    interleaved with the redb proxy (`redb_case`: its hey() arguments; nothing per request touches
    the database, so they should match), and how long a change made by the CLI takes to be served
    by a second proxy on the same database (p50/p99)."""
    home_a, home_b = os.path.join(work, "fleet-a"), os.path.join(work, "fleet-b")
    fleet_env = {"AIVAULT_STORE_URL": url, "AIVAULT_MASTER_KEY": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}
    saved = {k: os.environ.get(k) for k in fleet_env}
    os.environ.update(fleet_env)
    procs = []
    try:
        token = setup_vault(home_a)
        aivault(home_b, "ca", "path")
        common = ["--console-listen", "off", "--max-connections", "8192"]
        pa = Proc("aivault-pg-a", [AIVAULT, "--home", home_a, "proxy", "--listen", "127.0.0.1:18087", "--console-listen",
                                   "127.0.0.1:18097", "--max-connections", "8192"], 1,
                  env=dict(env, **fleet_env), ready="listening on")
        pb = Proc("aivault-pg-b", [AIVAULT, "--home", home_b, "proxy", "--listen", "127.0.0.1:18088"] + common, 1,
                  env=dict(env, **fleet_env), ready="listening on")
        procs += [pa, pb]
        proxy = f"http://agent:{token}@127.0.0.1:18087"
        both = interleaved({"pg": dict(url="https://api.bench.test/small", c=32, seconds=dur, proxy=proxy,
                                       headers=["Authorization: Bearer placeholder"], pid=pa.pid),
                            "redb": redb_case})
        # Whether the audit writer kept up with the database: what it had to spill to disk, and
        # that every proxied request is committed once its queue drained.
        deadline = time.time() + 30
        while (metric(18097, "aivault_audit_queue_depth") or 0) > 0 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        audit = {"spilled": metric(18097, "aivault_audit_records_spilled_total"),
                 "written": metric(18097, "aivault_audit_records_written_total"), "requests": proxied_requests(18097)}
        changes = 10 if smoke else 100
        latencies = []
        for i in range(changes):
            before = ping(18088, token)["generation"]
            aivault(home_a, "agent", "create", f"probe-{i}")
            done = time.perf_counter()
            while ping(18088, token)["generation"] <= before:
                if time.perf_counter() - done > 5:
                    raise RuntimeError("proxy B did not see a change within 5 s")
                time.sleep(0.001)
            latencies.append((time.perf_counter() - done) * 1000)
        latencies.sort()
        pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
        return {"c32": both["pg"], "redb_c32": both["redb"], "audit": audit,
                "propagation_ms": {"n": changes, "p50": pct(0.50), "p99": pct(0.99), "max": latencies[-1]}}
    finally:
        for p in procs:
            p.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def large_vault(work, env, dur, smoke):
    """W9: a vault of 100,000 secrets, 10,000 capabilities over 1,000 hosts and 10,000 agents
    (smoke: a tenth, over the smoke run's hosts) against one of 10 secrets, 10 capabilities and
    10 agents, both filled through the service layer by `examples/large_vault.rs`. Proxy start
    (spawn to listening), RSS, keep-alive CPU per request interleaved ×3, and how long a CLI change
    takes to be served (agent create, then the proxy's generation), with the snapshot build time
    the proxy reports on /metrics."""
    gen = os.path.join(ROOT, "target", "release", "examples", "large_vault")
    sizes = {"small": (10, 1, 10, 10), "large": (10000, 50, 1000, 1000) if smoke else (100000, 1000, 10000, 10000)}
    ports = {"small": (18093, 18094), "large": (18095, 18096)}
    out, procs, cases = {}, [], {}
    try:
        for name, (n_secrets, n_hosts, n_caps, n_agents) in sizes.items():
            home = os.path.join(work, f"w9-{name}")
            t0 = time.perf_counter()
            made = json.loads(subprocess.run([gen, home, str(n_secrets), str(n_hosts), str(n_caps), str(n_agents), SECRET],
                                             capture_output=True, text=True, check=True).stdout)
            generate_s = time.perf_counter() - t0
            port, console = ports[name]
            t0 = time.perf_counter()
            p = Proc(f"aivault-w9-{name}", [AIVAULT, "--home", home, "proxy", "--listen", f"127.0.0.1:{port}",
                                            "--console-listen", f"127.0.0.1:{console}"], 1, env=env, ready="listening on")
            start_s = time.perf_counter() - t0
            procs.append(p)
            # The last host of the vault: nothing about being first in a table helps it.
            host = f"h{n_hosts - 1:04d}.bench.test"
            cases[name] = dict(url=f"https://{host}/small", c=32, seconds=dur, proxy=f"http://agent:{made['token']}@127.0.0.1:{port}",
                               headers=["Authorization: Bearer placeholder"], pid=p.pid)
            hey(**dict(cases[name], seconds=1))  # warm the pool and the leaf
            out[name] = {"secrets": n_secrets, "hosts": n_hosts, "capabilities": n_caps, "agents": n_agents,
                         "generate_s": generate_s, "generate_phases_s": made["phases"], "start_s": start_s,
                         "rss_kib_started": rss_kib(p.pid), "token": made["token"], "home": home, "console": console,
                         "port": port, "proc": p}
        runs = interleaved(cases)
        for name, o in out.items():
            o["c32"] = runs[name]
            o["rss_kib_after_load"] = rss_kib(o["proc"].pid)
        # A change made by the CLI: how long after `agent create` returns the proxy serves it.
        for name, o in out.items():
            visible, cli = [], []
            for i in range(3 if smoke else 10):
                before = ping(o["port"], o["token"])["generation"]
                t0 = time.perf_counter()
                aivault(o["home"], "agent", "create", f"w9-probe-{i}")
                done = time.perf_counter()
                cli.append((done - t0) * 1000)
                while ping(o["port"], o["token"])["generation"] <= before:
                    if time.perf_counter() - done > 10:
                        raise RuntimeError(f"the {name} vault's proxy did not see a change within 10 s")
                    time.sleep(0.005)
                visible.append((time.perf_counter() - done) * 1000)
            o["change_visible_ms"] = {"p50": statistics.median(visible), "max": max(visible)}
            o["cli_change_ms"] = {"p50": statistics.median(cli), "max": max(cli)}
            o["snapshot_build_s"] = metric(o["console"], "aivault_snapshot_build_seconds")
            o["rss_kib_after_changes"] = rss_kib(o["proc"].pid)
        for o in out.values():
            for k in ("proc", "token", "home", "console", "port"):
                o.pop(k)
        return out
    finally:
        for p in procs:
            p.stop()


def micro(smoke):
    """criterion medians of benches/micro.rs, in nanoseconds per iteration."""
    t = ["--warm-up-time", "0.5", "--measurement-time", "1" if smoke else "2"]
    out = subprocess.run(["taskset", "-c", "1", "cargo", "bench", "--bench", "micro", "--", "--output-format", "bencher", *t],
                         cwd=ROOT, capture_output=True, text=True).stdout
    return {name: int(ns.replace(",", "")) for name, ns in re.findall(r"^test (\S+)\s+\.\.\. bench:\s+([\d,]+) ns/iter", out, re.M)}


def ping(port, token):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET http://aivault.internal/ping HTTP/1.1\r\nHost: aivault.internal\r\nProxy-Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def targets(r):
    """The issue-13 targets, each with what was measured and whether it holds."""
    w1, out = r["W1"], []
    a32 = w1["aivault"]["c32"]
    row = lambda target, measured, holds, why="": out.append({"target": target, "measured": measured, "holds": holds, "why": why})
    if "hudsucker" in w1:
        h = w1["hudsucker"]["c32"]
        ratio = a32["cpu_us_per_req"] / h["cpu_us_per_req"]
        why = ""
        if r.get("profile"):
            own = sum(r["profile"]["shares_pct"].get(k, 0) for k in OWN_PHASES)
            why = (f"{own * a32['cpu_us_per_req'] / 100:.1f} µs of the {a32['cpu_us_per_req'] - h['cpu_us_per_req']:.1f} µs gap is "
                   "work hudsucker does not do (audit, policy, masking, decryption, injection; profile below)")
        # The two proxies' rounds alternate: each round's ratio shows how far this machine moved
        # the figure within the run.
        spread = ""
        pairs = list(zip(a32.get("rounds_cpu_us", []), h.get("rounds_cpu_us", [])))
        if len(pairs) > 1 and all(b > 0 for _, b in pairs):
            per_round = sorted(a / b for a, b in pairs)
            spread = f"; round by round {per_round[0]:.2f}–{per_round[-1]:.2f}×"
        row("proxy CPU per keep-alive request vs hudsucker ≤ 1.0× (aim 0.9×)",
            f"{a32['cpu_us_per_req']:.1f} vs {h['cpu_us_per_req']:.1f} µs ({ratio:.2f}×{spread})", ratio <= 1.0, why)
        row("keep-alive req/s at 32 connections vs hudsucker ≥ 1.0×",
            f"{a32['rps']:.0f} vs {h['rps']:.0f} req/s ({a32['rps'] / h['rps']:.2f}×)", a32["rps"] >= h["rps"])
    hs = r["handshake_rate"]["handshakes_per_s"]
    w2 = r["W2"]["aivault"]["rps"]
    share = r["W2"]["aivault"].get("proxy_core_share")
    used = f", the proxy using {100 * share:.0f} % of its core" if share is not None else ""
    row("new connections/s vs the in-memory handshake ceiling ≥ 50 % (aim 70 %)",
        f"{w2:.0f} vs {hs:.0f}/s ({100 * w2 / hs:.0f} %{used})", w2 >= 0.5 * hs)
    if "W1_latency_us" in r:
        lat = r["W1_latency_us"]
        d = lat["direct"]
        for key, where in [("aivault", "proxy on its own core"), ("aivault_colocated", "proxy on the client's core")]:
            if key in lat:
                a = lat[key]
                add50, add99 = a["p50_us"] - d["p50_us"], a["p99_us"] - d["p99_us"]
                why = ""
                if key == "aivault" and "hudsucker" in lat:
                    why = (f"hudsucker on its own core adds p50 +{lat['hudsucker']['p50_us'] - d['p50_us']:.0f} µs in this run: "
                           "waking an idle core per request on this VM")
                row(f"added latency, keep-alive, 1 connection ({where}): p50 ≤ 50 µs, p99 ≤ 500 µs",
                    f"p50 +{add50:.0f} µs, p99 +{add99:.0f} µs (direct {d['p50_us']:.0f} / {d['p99_us']:.0f} µs)",
                    add50 <= 50 and add99 <= 500, why)
    w6 = r["W6"]
    plain = w6["header_again"]["cpu_us_per_req"]
    for key, what in [("header_rate_limited", "with a rate limit"), ("header_echo_masked", "with response masking replacing an echo")]:
        if key in w6:
            v = w6[key]["cpu_us_per_req"]
            rounds = list(zip(w6[key].get("rounds_cpu_us", []), w6["header_again"].get("rounds_cpu_us", [])))
            row(f"CPU per request {what} within 3 % of the plain header case", f"{v:.1f} vs {plain:.1f} µs ({100 * (v / plain - 1):+.1f} %)",
                v <= plain * 1.03,
                "round by round " + ", ".join(f"{a - b:+.1f}" for a, b in rounds) + " µs (the plain case's rounds ran "
                + ", ".join(f"{b:.1f}" for _, b in rounds) + " µs)" if rounds else "")
    if r.get("W7"):
        pg, rd = r["W7"]["c32"]["cpu_us_per_req"], r["W7"]["redb_c32"]["cpu_us_per_req"]
        rounds = zip(r["W7"]["c32"].get("rounds_cpu_us", []), r["W7"]["redb_c32"].get("rounds_cpu_us", []))
        row("CPU per request with the PostgreSQL backend within 3 % of the plain header case (redb)",
            f"{pg:.1f} vs {rd:.1f} µs ({100 * (pg / rd - 1):+.1f} %)", pg <= rd * 1.03,
            "round by round " + ", ".join(f"{a - b:+.1f}" for a, b in rounds) + " µs; the database runs on both CPUs "
            "(its inserts, one a request, take time from the proxy's CPU as well as the load generator's)")
        a = r["W7"].get("audit")
        if a:
            row("PostgreSQL: the audit writer keeps up at full speed (nothing spilled, every request committed)",
                f"{int(a['spilled'] or 0)} spilled; {int(a['written'] or 0)} of {int(a['requests'] or 0)} requests committed",
                not a["spilled"] and (a["written"] or 0) >= (a["requests"] or 0),
                "the queue filled while the database was slow; the spilled records were stored afterwards")
    if "W8" in r:
        w8 = r["W8"]
        row(f"audit under a {w8['seconds']} s burst at full speed: every request recorded, queue bounded",
            f"{w8['written']} of {w8['requests']} requests committed; peak queue {w8['peak_queue']} records, RSS growth "
            f"{w8['rss_growth_kib'] / 1024:.1f} MiB", w8["written"] >= w8["requests"])
    for n, v in r["W5"].items():
        row(f"RSS per idle intercepted connection ≤ 32 KiB ({n} connections, the proxy W1-W4 ran on)", f"{v['rss_kib_per_conn']:.1f} KiB",
            v["rss_kib_per_conn"] <= 32, "includes what the allocator keeps from earlier workloads, and the larger count reuses "
            "memory the smaller one's closed connections left (see the fresh-proxy rows)")
    for n, v in r.get("W5_fresh", {}).items():
        row(f"RSS per idle intercepted connection ≤ 32 KiB ({n} connections, a fresh proxy each)", f"{v['rss_kib_per_conn']:.1f} KiB",
            v["rss_kib_per_conn"] <= 32)
    if "W9" in r:
        small, large = r["W9"]["small"], r["W9"]["large"]
        cs, cl = small["c32"]["cpu_us_per_req"], large["c32"]["cpu_us_per_req"]
        size = f"{large['secrets'] // 1000}k secrets, {large['capabilities'] // 1000}k capabilities, {large['agents'] // 1000}k agents"
        row(f"a large vault ({size}): CPU per request within 5 % of a 10-secret vault", f"{cl:.1f} vs {cs:.1f} µs ({100 * (cl / cs - 1):+.1f} %)",
            cl <= cs * 1.05)
        row("a large vault: proxy start ≤ 2 s", f"{large['start_s']:.2f} s (10-secret vault {small['start_s']:.2f} s)", large["start_s"] <= 2)
        row("a large vault: a change visible to a running proxy ≤ 1 s",
            f"p50 {large['change_visible_ms']['p50']:.0f} ms, max {large['change_visible_ms']['max']:.0f} ms "
            f"(snapshot build {1000 * (large['snapshot_build_s'] or 0):.0f} ms, RSS {large['rss_kib_after_changes'] / 1024:.0f} MiB; "
            f"10-secret vault {small['change_visible_ms']['p50']:.0f} ms, RSS {small['rss_kib_after_changes'] / 1024:.0f} MiB)",
            large["change_visible_ms"]["max"] <= 1000)
    return out


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(int(mem) / 1024 / 1024, 1), "kernel": os.uname().release,
            "commit": commit or "unknown"}


if __name__ == "__main__":
    main()
