#!/usr/bin/env python3
"""Run every pixflow benchmark in one invocation and report ratios measured in the same run.

Called by scripts/bench (which builds Release, installs the tools and prepares the photos); see
bench/RESULTS.md for what is measured and the latest figures. Usage:

  run.py --cli PIXFLOW --bench PIXFLOW_BENCH --photos DIR --work DIR [--data DIR] [--reps 3]
         [--only lan,wan8,https,local,engine,rss] [--rtt-ms 80] [--rate-mb 3] [--rate8-mb 8]
         [--rss-items 1000,10000,100000] [--json FILE] [--markdown FILE] [--wait-load L[:MIN]] [--idle-wait-s 60]

Serves the photo sets (DIR, and the sets beside it under --data: large/, baseline/) with nginx on
loopback (bench/nginx.conf.in; http and https with HTTP/2, a certificate of a CA made for the run)
behind Imgur-shaped listings, in the conditions of CONDITIONS below: "lan" (nginx directly), "wan"
and "wan8" (through bench/latency_proxy.py: a round trip per request and 3 or 8 MB/s per connection),
"https" (wan8 over TLS) and "lan_https" (unthrottled TLS), "large" and "baseline" (wan8 with the
large-file set and the baseline-JPEG set). Then, interleaving the repetitions (the best of them is reported, the median is in the JSON too;
each run first waits, up to --idle-wait-s, until the machine's cores are 90 % idle, since other work on
a shared machine only ever adds time):
  - end to end, per condition: pixflow gallery (with --trace: the time from the last byte downloaded
    to the end of the run) | bench/baselines/seed_pipeline.py | pixflow-bench download
    (download-only) | curl --parallel --parallel-max 32 of every URL, known up front (the limit's
    download; over https both HTTP/1.1 and HTTP/2 once, then the faster); in lan and wan also
    bench/baselines/curl_vips.sh; a condition's controls, once (pixflow with one setting changed:
    per_host 16 in wan, durability per-item in wan8, the other download.http2 in https and lan_https);
    per photo set: pixflow-bench floor (the limit's CPU) and pixflow thumbs (thumbs-only)
  - the physical limit of each condition: max(curl's download wall, (floor CPU + curl's CPU + the
    servers' CPU during curl's download) / cores), and pixflow's ratio to it
  - local folder: pixflow thumbs (thumbs-only; 1 thread and every core) | pixflow-bench floor, alone
    and two at once (what this machine's cores give a perfectly parallel program)
  - peak RSS of pixflow gallery on listings of 1,000 and 10,000 distinct URLs (lan)
  - pixflow-bench engine (pixflow::Graph vs the same nodes wired by hand in tbb::flow and vs
    tbb::parallel_pipeline, trivial bodies; a diamond; the trace's cost)
  - Redis workers (part "worker"), on the wan8 gallery, with a loopback redis-server
    (tests/fixtures/redis): one `pixflow worker --exit-when-empty` draining the enqueued gallery vs a
    local `pixflow gallery` on the same cores; one worker pinned to core 0 (--threads 1) vs two pinned
    to cores 0 and 1
--only picks conditions and parts (local, engine, rss, worker); a run of only some of them prints its table
and writes WORK/results-only.json, and leaves --json and --markdown alone.
Prints the table, writes it as JSON (--json) and into the results block of --markdown.
Every run is checked: the expected number of thumbnails must exist, or the benchmark stops.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PER_PAGE = 60  # items per listing page, as Imgur's gallery pages
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
WORKERS_BEGIN, WORKERS_END = "<!-- bench:workers:begin -->", "<!-- bench:workers:end -->"

# Targets from issues 5, 12 and 15: (figure key, comparison, bound).
TARGETS = {
    "lan.vs_seed": (">=", 1.35),
    "wan.vs_seed": (">=", 5.0),
    "wan.vs_curl_vips": (">=", 2.5),
    "lan.overlap": ("<=", 1.1),
    "wan.overlap": ("<=", 1.1),
    "local.per_core_vs_floor": ("<=", 1.1),
    "local.scaling_2_vs_1": (">=", 1.85),
    "rss.ratio_10k_1k": ("<=", 1.2),
    "rss.mb_10k": ("<", 256.0),
    "rss.ratio_100k_10k": ("<=", 1.1),  # issue 15: memory flat in N
    "engine.ratio_flow": (">=", 0.9),
    "engine.diamond_ratio_flow": (">=", 0.9),
    # issue 15: within 1.15x the physical limit in every WAN condition; >= 4.5x the seeds at 8 MB/s
    "wan.vs_limit": ("<=", 1.15),
    "wan8.vs_limit": ("<=", 1.15),
    "https.vs_limit": ("<=", 1.15),
    "large.vs_limit": ("<=", 1.15),
    "baseline.vs_limit": ("<=", 1.15),
    "wan8.vs_seed": (">=", 4.5),
    # issue 13: one streaming worker vs a local run; two pinned workers vs one
    "workers.vs_local": (">=", 0.95),
    "workers.scale_2_vs_1": (">=", 1.8),
}
PARTS = ("local", "engine", "rss", "worker")  # besides the conditions, what --only can pick


# Downloaded items waiting for the cores hold places new transfers need (the wan8/https misses): the same
# run with three places per transfer instead of two.
IN_FLIGHT_CONTROL = ("in_flight_192", "`max_in_flight: 192` (three places per transfer)", {"max_in_flight": 192})


def log(msg: str) -> None:
    print("bench: " + msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- measuring one command -------------------------------------------------------------------------

class Run:
    """One finished command: wall time, CPU time and peak RSS of the process tree it waited for."""

    def __init__(self, argv, wall, rusage, code, stdout, stderr):
        self.argv, self.wall, self.code, self.stdout, self.stderr = argv, wall, code, stdout, stderr
        self.cpu = rusage.ru_utime + rusage.ru_stime
        self.maxrss_mb = rusage.ru_maxrss / 1024.0  # KiB on Linux

    def json_out(self) -> dict:
        return last_json(self.stdout, shlex.join(map(str, self.argv)))


def last_json(text: str, what: str) -> dict:
    """The JSON object a measuring command printed last on stdout. Each of them prints one JSON document
    (pixflow-bench on one line); it may span lines, and lines before it (a library's chatter) are
    skipped: the document is the last line-starting '{' whose value runs to the end of the output."""
    text = text.strip()
    decoder = json.JSONDecoder()
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    for start in reversed(starts):
        if not text.startswith("{", start):
            continue
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if not text[end:].strip():
            return value
    raise SystemExit("bench: %s printed no JSON object at the end of its output:\n%s" % (what, text[-2000:]))


def run(argv, cwd=None, env=None, check=True) -> Run:
    """Runs argv, measures its wall time and, with wait4, the CPU time and peak RSS of that process
    (getrusage of a child covers the children it waited for: ProcessPoolExecutor workers, xargs jobs)."""
    out_path, err_path = Path("/tmp/pixflow-bench-%d.out" % os.getpid()), Path("/tmp/pixflow-bench-%d.err" % os.getpid())
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=err, cwd=cwd, env=env)
        _, status, rusage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    out_path.unlink()
    err_path.unlink()
    result = Run(argv, wall, rusage, proc.returncode, stdout, stderr)
    if check and result.code != 0:
        raise SystemExit("bench: %s exited with %d\n%s%s" % (shlex.join(map(str, argv)), result.code,
                                                             stdout[-2000:], stderr[-4000:]))
    return result


def count_thumbnails(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if "_thumbnail" in p.name)


def fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


# --- the conditions ----------------------------------------------------------------------------------

class Network:
    """How a client reaches nginx: directly or through a latency proxy (rtt_ms > 0), over http or https."""

    def __init__(self, name: str, tls: bool, rtt_ms: float, rate_mb: float):
        self.name, self.tls, self.rtt_ms, self.rate_mb = name, tls, rtt_ms, rate_mb

    def describe(self) -> str:
        if self.rtt_ms <= 0:
            text = "nginx on loopback, unthrottled"
        else:
            text = ("through bench/latency_proxy.py: %g ms round trip per request (one more for a new connection), "
                    "%g MB/s per connection" % (self.rtt_ms, self.rate_mb))
        return text + (", over HTTPS (TLS 1.3, HTTP/2 offered; a CA made for the run)" if self.tls else "")


class Condition:
    """A network and a photo set; pixflow is measured against the seeds, curl and its limit there.
    `controls`: (key, label, config) runs of pixflow with one setting changed, beside its defaults."""

    def __init__(self, name: str, network: Network, data: str, curl_vips: bool = False, controls=()):
        self.name, self.network, self.data, self.curl_vips = name, network, data, curl_vips
        self.controls = list(controls)

    def describe(self) -> str:
        return self.network.describe() + ("" if self.data == "mix" else "; the %s photo set" % self.data)


def make_conditions(args, http2_default: bool) -> dict:
    """Every condition, in the order they are measured and printed. Add one here to add a column."""
    lan = Network("lan", False, 0, 0)
    wan = Network("wan", False, args.rtt_ms, args.rate_mb)
    wan8 = Network("wan8", False, args.rtt_ms, args.rate8_mb)
    wan8_tls = Network("wan8-tls", True, args.rtt_ms, args.rate8_mb)
    lan_tls = Network("lan-tls", True, 0, 0)
    other_http2 = "off" if http2_default else "auto"
    return {c.name: c for c in [
        Condition("lan", lan, "mix", curl_vips=True),
        Condition("wan", wan, "mix", curl_vips=True, controls=[
            ("per_host_16", "`per_host: 16` (the default before 32)", {"nodes": {"download": {"per_host": 16}}})]),
        Condition("wan8", wan8, "mix", controls=[
            ("per_item", "`durability: per-item` (fsync each file and its folder)", {"durability": "per-item"}),
            IN_FLIGHT_CONTROL]),
        Condition("https", wan8_tls, "mix", controls=[
            ("http2_" + other_http2, "`download.http2: %s`" % other_http2, {"nodes": {"download": {"http2": other_http2}}}),
            IN_FLIGHT_CONTROL]),
        Condition("lan_https", lan_tls, "mix", controls=[
            ("http2_" + other_http2, "`download.http2: %s`" % other_http2, {"nodes": {"download": {"http2": other_http2}}})]),
        Condition("large", wan8, "large"),
        Condition("baseline", wan8, "baseline"),
    ]}


def merged(a: dict, b: dict) -> dict:
    """b's keys over a's, objects merged key by key (a pixflow config onto another)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# --- the server --------------------------------------------------------------------------------------

class Server:
    """One nginx (http and https ports) serving every photo set, and a latency proxy per throttled
    network in front of the port of its scheme."""

    def __init__(self, state: Path, sets: dict, networks: list):
        self.state = fresh(state)
        self.sets = sets  # name -> folder
        self.networks = {n.name: n for n in networks}
        self.names = {k: sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_TYPES)
                      for k, folder in sets.items()}
        self.proxies = {}
        self.base = {}  # network name -> base URL
        self.ca = self.state / "tls" / "ca.pem"

    def start(self) -> None:
        subprocess.run(["bash", str(ROOT / "tests/fixtures/nginx/make_tls.sh"), str(self.state / "tls")], check=True)
        lan, tls = free_port(), free_port()
        while tls == lan:
            tls = free_port()
        for sub in ("tmp", "www/3", "sets"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        for name, folder in self.sets.items():
            (self.state / "sets" / name).symlink_to(folder.resolve(), target_is_directory=True)
        conf = (HERE / "nginx.conf.in").read_text()
        user = "user root;" if os.geteuid() == 0 else "# workers run as the invoking user"
        for key, value in {"@STATE@": self.state, "@PHOTOS@": self.sets["mix"], "@PORT@": lan, "@TLS_PORT@": tls,
                           "@USER_LINE@": user}.items():
            conf = conf.replace(key, str(value))
        (self.state / "nginx.conf").write_text(conf)
        for network in self.networks.values():
            upstream = tls if network.tls else lan
            scheme = "https" if network.tls else "http"
            if network.rtt_ms <= 0:
                self.base[network.name] = "%s://127.0.0.1:%d" % (scheme, upstream)
                continue
            proxy = subprocess.Popen(
                [sys.executable, str(HERE / "latency_proxy.py"), "--upstream", "127.0.0.1:%d" % upstream,
                 "--rtt-ms", str(network.rtt_ms), "--rate-mb", str(network.rate_mb)], stdout=subprocess.PIPE, text=True)
            self.proxies[network.name] = proxy
            line = proxy.stdout.readline().split()
            if len(line) != 2 or line[0] != "ready":
                raise SystemExit("bench: the latency proxy did not start")
            self.base[network.name] = "%s://127.0.0.1:%d" % (scheme, int(line[1]))
        self.base.setdefault("lan", "http://127.0.0.1:%d" % lan)  # the RSS listings
        (self.state / "www/3/empty.json").write_text('{"data": [], "success": true, "status": 200}')
        subprocess.run(["/usr/sbin/nginx", "-p", str(self.state), "-c", str(self.state / "nginx.conf"),
                        "-e", str(self.state / "error.log")], check=True)
        for port in (lan, tls):
            for _ in range(100):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                raise SystemExit("bench: nginx does not answer on port %d" % port)

    def cpu_s(self) -> float:
        """CPU seconds used so far by the serving side: the latency proxies and nginx's worker."""
        pids = [p.pid for p in self.proxies.values()]
        try:
            master = int((self.state / "nginx.pid").read_text())
            pids += [int(p) for p in Path("/proc/%d/task/%d/children" % (master, master)).read_text().split()]
        except (OSError, ValueError):
            pass
        total = 0
        for pid in pids:
            try:
                fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, IndexError, ValueError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def item(self, folder: Path, name: str, link: str, index: int) -> dict:
        return {"id": "b%07d" % index, "title": name, "type": IMAGE_TYPES[Path(name).suffix.lower()],
                "animated": False, "is_album": False, "in_gallery": True, "link": link,
                "size": (folder / name).stat().st_size}

    def write_listing(self, section: str, folder: Path, links: list) -> int:
        """Listing pages of `section` for (name, link) pairs of files in `folder`; returns the page count."""
        out = self.state / "www/3/gallery" / section / "viral"
        out.mkdir(parents=True, exist_ok=True)
        pages = (len(links) + PER_PAGE - 1) // PER_PAGE
        for page in range(pages):
            chunk = links[page * PER_PAGE:(page + 1) * PER_PAGE]
            data = [self.item(folder, name, link, page * PER_PAGE + i) for i, (name, link) in enumerate(chunk)]
            (out / ("%d.json" % page)).write_text(json.dumps({"data": data, "success": True, "status": 200}))
        return pages

    def condition_listing(self, c: Condition) -> list:
        """The listing of condition `c` (section = its name), links to its set over its network; returns
        every URL a client fetches: the pages (with the empty one at the end) and the photos."""
        base = self.base[c.network.name]
        links = [(n, "%s/s/%s/%s" % (base, c.data, n)) for n in self.names[c.data]]
        pages = self.write_listing(c.name, self.sets[c.data], links)
        return (["%s/3/gallery/%s/viral/%d.json" % (base, c.name, page) for page in range(pages + 1)] +
                [link for _, link in links])

    # The peak-RSS listings repeat the smallest photos of the set: 100,000 items of the whole mix would
    # take a quarter of an hour, and what grows with N is per-item state, not the image buffers.
    RSS_PHOTOS = 30

    def repeated_listing(self, items: int) -> str:
        """A listing of `items` distinct URLs over the same few files (/r/<k>/<name>), on the lan port."""
        section = "n%d" % items
        folder = self.sets["mix"]
        names = sorted(self.names["mix"], key=lambda n: ((folder / n).stat().st_size, n))[:self.RSS_PHOTOS]
        links = [(names[i % len(names)], "%s/r/%d/%s" % (self.base["lan"], i // len(names), names[i % len(names)]))
                 for i in range(items)]
        self.write_listing(section, self.sets["mix"], links)
        return section

    def stop(self) -> None:
        pid_file = self.state / "nginx.pid"
        if pid_file.exists():
            subprocess.run(["/usr/sbin/nginx", "-p", str(self.state), "-c", str(self.state / "nginx.conf"),
                            "-e", str(self.state / "error.log"), "-s", "stop"], check=False)
        for proxy in self.proxies.values():
            if proxy.poll() is None:
                proxy.terminate()
                try:
                    proxy.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proxy.kill()


# --- the measurements -------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work).resolve()
        self.photos = Path(args.photos).resolve()
        data = Path(args.data).resolve() if args.data else self.photos.parent
        self.cores = os.cpu_count() or 1
        self.http2_default = pixflow_http2_default(args.cli, self.work)
        every = make_conditions(args, self.http2_default)
        self.only = set(args.only)
        unknown = self.only - set(every) - set(PARTS)
        if unknown:
            raise SystemExit("bench: --only: unknown %s (conditions: %s; parts: %s)" % (
                ", ".join(sorted(unknown)), ", ".join(every), ", ".join(PARTS)))
        sets = {"mix": self.photos}
        for name in ("large", "baseline"):
            if (data / name).is_dir():
                sets[name] = data / name
        self.conditions = {}
        for name, c in every.items():
            if self.only and name not in self.only:
                continue
            if c.data not in sets:
                log("condition %s skipped: no %s photo set in %s (bench/prepare_data.py makes it)" % (name, c.data, data))
                continue
            self.conditions[name] = c
        self.parts = [p for p in PARTS if not self.only or p in self.only]
        self.worker_condition = every["wan8"]  # the Redis workers' gallery
        networks = {c.network.name: c.network for c in self.conditions.values()}
        if "worker" in self.parts:
            networks[self.worker_condition.network.name] = self.worker_condition.network
        self.server = Server(self.work / "server", sets, list(networks.values()))
        self.n = len(self.server.names["mix"])
        self.urls = {}  # condition -> every URL of its listing and photos (curl's download)
        self.samples = {}  # key -> list of dicts

    def add(self, key: str, measure, *args, **kwargs) -> None:
        """Runs measure(*args), adds what it returns to the samples of `key`, with the CPU time the
        serving side (nginx, proxies) spent meanwhile."""
        idle = wait_until_idle(max_wait_s=self.args.idle_wait_s)
        before = self.server.cpu_s()
        sample = measure(*args, **kwargs)
        sample["server_cpu_s"] = self.server.cpu_s() - before
        sample["idle_before"] = None if idle is None else round(idle, 3)
        self.samples.setdefault(key, []).append(sample)

    def out(self, name: str) -> Path:
        return fresh(self.work / "out" / name)

    def done_with(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def expect(self, what: str, got: int, want: int) -> None:
        if got != want:
            raise SystemExit("bench: %s made %d thumbnails, expected %d" % (what, got, want))

    def count(self, c: Condition) -> int:
        return len(self.server.names[c.data])

    def tls_env(self, c: Condition) -> dict:
        """The environment of a baseline: Python's urllib and curl trust the run's CA in https conditions."""
        env = dict(os.environ)
        if c.network.tls:
            env.update(SSL_CERT_FILE=str(self.server.ca), CURL_CA_BUNDLE=str(self.server.ca))
        return env

    def pixflow_config(self, c: Condition, config: dict = None) -> dict:
        base = {"nodes": {"download": {"ca_file": str(self.server.ca)}}} if c.network.tls else {}
        return merged(base, config or {})

    def config_file(self, config: dict, name: str) -> list:
        if not config:
            return []
        path = self.work / "out" / (name + ".config.json")
        path.write_text(json.dumps(config))
        return ["--config", path]

    # end to end
    def pixflow_gallery(self, c: Condition = None, section: str = None, items: int = None, config: dict = None) -> dict:
        """pixflow gallery on condition c's listing (or, for the RSS runs, `section` on the lan port)."""
        name = c.name if c else section
        out = self.out("pixflow-" + name)
        report = self.work / "out" / ("pixflow-%s.json" % name)
        trace = self.work / "out" / ("pixflow-%s.trace.json" % name)
        extra = self.config_file(self.pixflow_config(c, config) if c else (config or {}), "pixflow-" + name)
        if c:
            extra += ["--trace", trace]  # a span per download and per write: the tail after the last byte
        api = self.server.base[c.network.name] if c else self.server.base["lan"]
        r = run([self.args.cli, "gallery", "--api", api, "--section", name, "--client-id", "bench", "--pages", "0",
                 "--out", out, "--report", report, "--quiet"] + extra)
        rep = json.loads(report.read_text())
        want = items or self.count(c)
        self.expect("pixflow gallery (%s)" % name, rep["summary"]["ok"], want)
        self.expect("pixflow gallery (%s)" % name, count_thumbnails(out), want)
        self.done_with(out)
        nodes = {k: {f: v.get(f) for f in ("busy_s", "items", "peak_active", "peak_queue")}
                 for k, v in rep["nodes"].items()}
        sample = {"wall_s": r.wall, "cpu_s": r.cpu, "rss_mb": r.maxrss_mb, "report_wall_s": rep["wall_s"],
                  "peak_in_flight": rep.get("peak_in_flight"), "nodes": nodes}
        if c and trace.exists():
            sample.update(trace_tail(trace, self.cores))
            trace.unlink()
        return sample

    def seed(self, c: Condition) -> dict:
        out = self.out("seed-" + c.name)
        r = run([sys.executable, HERE / "baselines/seed_pipeline.py", "--api", self.server.base[c.network.name],
                 "--section", c.name, "--out", out], env=self.tls_env(c))
        self.expect("seed_pipeline.py", count_thumbnails(out), self.count(c))
        self.done_with(out)
        return dict(r.json_out(), wall_s=r.wall, cpu_s=r.cpu)

    def curl_vips(self, c: Condition) -> dict:
        out = self.out("curl-" + c.name)
        r = run(["bash", HERE / "baselines/curl_vips.sh", self.server.base[c.network.name], c.name, out, self.cores],
                env=self.tls_env(c))
        self.expect("curl + vipsthumbnail", count_thumbnails(out), self.count(c))
        self.done_with(out)
        return dict(r.json_out(), wall_s=r.wall, cpu_s=r.cpu)

    def download_only(self, c: Condition) -> dict:
        out = self.out("download-" + c.name)
        r = run([self.args.bench, "download", "--api", self.server.base[c.network.name], "--section", c.name,
                 "--out", out] + self.config_file(self.pixflow_config(c), "download-" + c.name))
        got = r.json_out()
        self.expect("pixflow-bench download", got["items"], self.count(c))
        self.done_with(out)
        return dict(got, wall_s=r.wall, cpu_s=r.cpu)

    def curl_download(self, c: Condition, protocol: str = "") -> dict:
        """The limit's download: one `curl --parallel --parallel-max 32` of every URL of the condition,
        known up front (the listing pages too), written to files; over https with `protocol` ("http1.1":
        32 connections; "http2": multiplexed, curl opening connections rather than waiting to share one)."""
        out = self.out("curl-download-" + c.name)
        config = self.work / "out" / ("curl-download-%s.cfg" % c.name)
        config.write_text("".join('url = "%s"\noutput = "f%05d"\n' % (u, i) for i, u in enumerate(self.urls[c.name])))
        argv = ["curl", "--parallel", "--parallel-max", "32", "-sS", "--fail", "-H", "Authorization: Client-ID bench",
                "--output-dir", out, "-K", config]
        if c.network.tls:
            argv += ["--cacert", self.server.ca] + (["--http1.1"] if protocol == "http1.1" else
                                                     ["--http2", "--parallel-immediate"])
        r = run(argv)
        got = sum(1 for _ in out.iterdir())
        if got != len(self.urls[c.name]):
            raise SystemExit("bench: curl --parallel wrote %d files, expected %d" % (got, len(self.urls[c.name])))
        self.done_with(out)
        return {"wall_s": r.wall, "cpu_s": r.cpu, "protocol": "HTTP/2" if protocol == "http2" else "HTTP/1.1"}

    # a photo set, for the limit (floor) and the overlap (thumbs-only)
    def set_folder(self, data: str) -> Path:
        return self.server.sets[data]

    def thumbs(self, threads: int, folder: Path = None) -> dict:
        folder = folder or self.photos
        out = self.out("thumbs-%d" % threads)
        report = self.work / "out" / ("thumbs-%d.json" % threads)
        r = run([self.args.cli, "thumbs", folder, "--out", out, "--threads", threads, "--report", report,
                 "--quiet"])
        rep = json.loads(report.read_text())
        self.expect("pixflow thumbs", count_thumbnails(out), sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_TYPES))
        self.done_with(out)
        nodes = {k: {f: v.get(f) for f in ("busy_s", "items", "peak_active")} for k, v in rep["nodes"].items()}
        return {"wall_s": r.wall, "cpu_s": r.cpu, "report_wall_s": rep["wall_s"], "nodes": nodes}

    def floor(self, folder: Path = None) -> dict:
        folder = folder or self.photos
        r = run([self.args.bench, "floor", folder, "--repeat", "1"])
        got = r.json_out()
        want = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_TYPES)
        if got["items"] != want or got["failed"]:
            raise SystemExit("bench: the floor program failed on some photos: %s" % got)
        return dict(got, wall_s=r.wall)

    def floor_concurrent(self) -> dict:
        """`cores` floor programs at once: each one's work time, to compare with one alone."""
        procs = [subprocess.Popen([str(self.args.bench), "floor", str(self.photos)], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True) for _ in range(self.cores)]
        outs = [last_json(p.communicate()[0], "pixflow-bench floor") for p in procs]
        return {"seconds": max(o["seconds"] for o in outs), "each_s": [o["seconds"] for o in outs]}

    def startup(self) -> dict:
        """Start and exit of the CLI alone (`--version`): loading OpenCV's library tree is in every run."""
        return {"wall_s": statistics.median(run([self.args.cli, "--version"]).wall for _ in range(5))}

    def engine(self, threads: int = 0) -> dict:
        return run([self.args.bench, "engine", "--items", str(self.args.engine_items), "--repeat", "3",
                    "--threads", str(threads)]).json_out()

    # the order of the measurements
    def data_key(self, data: str, what: str) -> str:
        """Where the floor / thumbs-only of a set are: the local part's for the main set when it runs."""
        if data == "mix" and "local" in self.parts:
            return {"floor": "local.floor", "thumbs": "local.thumbs_all"}[what]
        return "data.%s.%s" % (data, what)

    def measure_condition(self, c: Condition, rep: int) -> None:
        log("end to end, %s, repetition %d/%d" % (c.name, rep + 1, self.args.reps))
        k = c.name
        self.add(k + ".pixflow", self.pixflow_gallery, c)
        self.add(k + ".seed", self.seed, c)
        if c.curl_vips:
            self.add(k + ".curl_vips", self.curl_vips, c)
        self.add(k + ".download_only", self.download_only, c)
        if not c.network.tls:
            self.add(k + ".curl_download", self.curl_download, c)
        elif rep == 0:  # both protocols once; then only the faster one, the limit's
            self.add(k + ".curl_download_http1", self.curl_download, c, "http1.1")
            self.add(k + ".curl_download_http2", self.curl_download, c, "http2")
        else:
            faster = min(("http1", "http2"), key=lambda v: self.med("%s.curl_download_%s" % (k, v)))
            self.add("%s.curl_download_%s" % (k, faster), self.curl_download, c, {"http1": "http1.1"}.get(faster, faster))
        if rep == 0:  # controls: one run each (a setting's effect, not a figure of record)
            for key, _, config in c.controls:
                self.add("%s.pixflow_%s" % (k, key), self.pixflow_gallery, c, config=config)

    def measure(self) -> None:
        reps = self.args.reps
        for c in self.conditions.values():
            self.urls[c.name] = self.server.condition_listing(c)
        sets = sorted({c.data for c in self.conditions.values()})
        for rep in range(reps):
            for c in self.conditions.values():
                self.measure_condition(c, rep)
            for data in sets:
                if self.data_key(data, "floor").startswith("data."):
                    log("photo set %s: floor and thumbs-only, repetition %d/%d" % (data, rep + 1, reps))
                    self.add(self.data_key(data, "floor"), self.floor, self.set_folder(data))
                    self.add(self.data_key(data, "thumbs"), self.thumbs, 0, self.set_folder(data))
        if "local" in self.parts:
            for rep in range(reps):
                log("local folder, repetition %d/%d" % (rep + 1, reps))
                self.add("local.floor", self.floor)
                self.add("local.thumbs_1", self.thumbs, 1)
                self.add("local.thumbs_all", self.thumbs, 0)
                if self.cores > 1:
                    self.add("local.floor_concurrent", self.floor_concurrent)
            self.add("local.startup", self.startup)
        if "engine" in self.parts:
            log("engine micro-benchmark")
            self.add("engine", self.engine)
            self.add("engine_1_thread", self.engine, 1)
        if "worker" in self.parts:
            self.measure_workers()
        if "rss" in self.parts:
            # Last: the longest part, and peak RSS hardly depends on what else runs on the machine.
            for items in self.args.rss_items:
                log("peak RSS, %d items" % items)
                section = self.server.repeated_listing(items)
                self.add("rss.%d" % items, self.pixflow_gallery, section=section, items=items)

    # the Redis workers (issue 13): the gallery enqueued, then drained by workers
    def measure_workers(self) -> None:
        """One streaming worker vs a local run (wan8, every core); one worker pinned to one core vs two
        pinned to two (--threads 1 each). A loopback redis-server for the duration."""
        if " worker " not in run([self.args.cli, "--help"]).stdout:
            log("skipping the Redis workers: this pixflow was built without them (-DPIXFLOW_WITH_REDIS=OFF)")
            return
        redis = Redis(self.work / "redis")
        redis.start()
        try:
            for rep in range(self.args.reps):
                log("redis workers, repetition %d/%d" % (rep + 1, self.args.reps))
                self.add("workers.local", self.pixflow_gallery, self.worker_condition)
                self.add("workers.one", self.drain, redis, [None])
                if self.cores >= 2 and shutil.which("taskset"):
                    self.add("workers.pinned_1", self.drain, redis, [0])
                    self.add("workers.pinned_2", self.drain, redis, [0, 1])
        finally:
            redis.stop()

    def drain(self, redis: "Redis", pins: list) -> dict:
        """Enqueues the wan8 gallery on a fresh queue (not timed), then starts one worker per entry of
        `pins` at once (None: unpinned, every core; k: `taskset -c k`, --threads 1) and times them
        until the last one exits."""
        queue = "bench-%d-%d" % (os.getpid(), time.monotonic_ns())
        c = self.worker_condition
        enq = run([self.args.cli, "enqueue", "--redis", redis.url, "--queue", queue, "gallery", "--api",
                   self.server.base[c.network.name], "--section", c.name, "--client-id", "bench", "--pages", "0"])
        if "queued %d items" % self.n not in enq.stdout:
            raise SystemExit("bench: pixflow enqueue: %s" % enq.stdout.strip())
        out = self.out("workers-%d" % len(pins))
        procs = []
        started = time.monotonic()
        for i, pin in enumerate(pins):
            argv = [self.args.cli, "worker", "--redis", redis.url, "--queue", queue, "--out", out,
                    "--exit-when-empty", "--quiet", "--consumer", "bench-%d" % i]
            if pin is not None:
                argv = ["taskset", "-c", str(pin)] + argv + ["--threads", "1"]
            procs.append(subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        reports, cpu, walls = [], 0.0, []
        for proc in procs:
            _, status, rusage = os.wait4(proc.pid, 0)
            walls.append(time.monotonic() - started)
            cpu += rusage.ru_utime + rusage.ru_stime
            stdout, stderr = proc.stdout.read().decode(errors="replace"), proc.stderr.read().decode(errors="replace")
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit("bench: pixflow worker exited with %d\n%s%s" % (
                    os.waitstatus_to_exitcode(status), stdout[-2000:], stderr[-4000:]))
            reports.append(json.loads(stdout.strip().splitlines()[-1]))
        self.expect("pixflow worker x%d" % len(pins), sum(r["ok"] for r in reports), self.n)
        self.expect("pixflow worker x%d" % len(pins), count_thumbnails(out), self.n)
        self.done_with(out)
        return {"wall_s": max(walls), "each_s": walls, "cpu_s": cpu, "enqueue_s": enq.wall,
                "items_each": [r["items"] for r in reports], "reclaimed": sum(r["reclaimed"] for r in reports)}

    def worker_figures(self) -> dict:
        local, one, enqueue = self.med("workers.local"), self.med("workers.one"), self.med("workers.one", "enqueue_s")
        f = {"local_s": local, "one_s": one, "enqueue_s": enqueue, "vs_local": local / one,
             "vs_local_with_enqueue": local / (one + enqueue),
             "local_cpu_s": self.med("workers.local", "cpu_s"), "one_cpu_s": self.med("workers.one", "cpu_s")}
        if "workers.pinned_2" in self.samples:
            p1, p2 = self.med("workers.pinned_1"), self.med("workers.pinned_2")
            best2 = min(self.samples["workers.pinned_2"], key=lambda s: s["wall_s"])
            # The limit of two workers on this machine: the CPU their run needs (both workers, and nginx and
            # the latency proxy, which share the two cores here; the one pinned worker had the other core
            # to itself for them) spread perfectly over the two cores, with nothing else to wait for. The
            # most two cores can give here is one worker's CPU over that limit: what one core does alone
            # against what two do when the servers and a second process take their share.
            limit2 = (best2["cpu_s"] + best2["server_cpu_s"]) / 2
            cpu1 = self.med("workers.pinned_1", "cpu_s")
            f.update({"pinned_1_s": p1, "pinned_2_s": p2, "scale_2_vs_1": p1 / p2, "pinned_2_items_each": best2["items_each"],
                      "pinned_1_cpu_s": cpu1, "pinned_2_cpu_s": best2["cpu_s"],
                      "pinned_1_server_cpu_s": self.med("workers.pinned_1", "server_cpu_s"),
                      "pinned_2_server_cpu_s": best2["server_cpu_s"],
                      "pinned_2_limit_s": limit2, "pinned_2_vs_limit": best2["wall_s"] / limit2,
                      "scale_2_vs_1_limit": cpu1 / limit2})
        return f

    # figures: the best of the repetitions (interference only ever adds time)
    def med(self, key: str, field: str = "wall_s") -> float:
        return min(s[field] for s in self.samples[key])

    def best(self, *keys: str) -> dict:
        """The sample with the lowest wall time among those of `keys`."""
        return min((s for k in keys for s in self.samples.get(k, [])), key=lambda s: s["wall_s"])

    def condition_figures(self, c: Condition) -> dict:
        k = c.name
        p = self.med(k + ".pixflow")
        best_pixflow = self.best(k + ".pixflow")
        seed = self.med(k + ".seed")
        floor = self.med(self.data_key(c.data, "floor"), "seconds")
        thumbs_only = self.med(self.data_key(c.data, "thumbs"))
        download_only = self.med(k + ".download_only")
        curl = self.best(k + ".curl_download", k + ".curl_download_http1", k + ".curl_download_http2")
        cpu_bound = (floor + curl["cpu_s"] + curl["server_cpu_s"]) / self.cores
        limit = max(curl["wall_s"], cpu_bound)
        f = {"description": c.describe(), "photos": self.count(c), "data": c.data,
             "pixflow_s": p, "seed_s": seed, "download_only_s": download_only, "thumbs_only_s": thumbs_only,
             "vs_seed": seed / p, "overlap": p / max(download_only, thumbs_only),
             "pixflow_cpu_s": self.med(k + ".pixflow", "cpu_s"), "seed_cpu_s": self.med(k + ".seed", "cpu_s"),
             "server_cpu_s_during_pixflow": self.med(k + ".pixflow", "server_cpu_s"),
             "floor_s": floor, "curl_download_s": curl["wall_s"], "curl_download_protocol": curl["protocol"],
             "curl_cpu_s": curl["cpu_s"], "server_cpu_s_during_curl": curl["server_cpu_s"],
             "limit_cpu_s": cpu_bound, "limit_s": limit, "limit_by": "download" if curl["wall_s"] >= cpu_bound else "cpu",
             "vs_limit": p / limit}
        for field in ("tail_s", "last_download_end_s", "trace_end_s", "tail_busy_cores"):
            if field in best_pixflow:
                f[field] = best_pixflow[field]
        if c.network.tls:
            f["curl_download_http1_s"] = self.med(k + ".curl_download_http1")
            f["curl_download_http2_s"] = self.med(k + ".curl_download_http2")
        if c.curl_vips:
            cv = self.med(k + ".curl_vips")
            f.update({"curl_vips_s": cv, "vs_curl_vips": cv / p, "curl_vips_cpu_s": self.med(k + ".curl_vips", "cpu_s")})
        for key, label, _ in c.controls:
            v = self.med("%s.pixflow_%s" % (k, key))
            f.update({"pixflow_%s_s" % key: v, "vs_seed_%s" % key: seed / v, "vs_limit_%s" % key: v / limit,
                      "label_%s" % key: label})
            if c.curl_vips:
                f["vs_curl_vips_%s" % key] = f["curl_vips_s"] / v
        return f

    def figures(self) -> dict:
        f = {"conditions": list(self.conditions)}
        for c in self.conditions.values():
            f[c.name] = self.condition_figures(c)
        if "local" in self.parts:
            floor = self.med("local.floor", "seconds")
            t1, tall = self.med("local.thumbs_1"), self.med("local.thumbs_all")
            f["local"] = {"floor_s": floor, "floor_ms_per_item": floor * 1000 / self.n,
                          "floor_jpeg_ms": self.med("local.floor", "jpeg_ms"), "floor_png_ms": self.med("local.floor", "png_ms"),
                          "thumbs_1_s": t1, "thumbs_all_s": tall, "threads_all": self.cores,
                          "one_thread_vs_floor": t1 / floor, "per_core_vs_floor": tall * self.cores / floor,
                          "scaling_2_vs_1": t1 / tall}
            f["local"]["startup_s"] = self.med("local.startup")
            f["local"]["one_thread_vs_floor_in_graph"] = self.med("local.thumbs_1", "report_wall_s") / floor
            f["local"]["per_core_vs_floor_in_graph"] = self.med("local.thumbs_all", "report_wall_s") * self.cores / floor
            f["local"]["scaling_2_vs_1_in_graph"] = (self.med("local.thumbs_1", "report_wall_s") /
                                                     self.med("local.thumbs_all", "report_wall_s"))
            if "local.floor_concurrent" in self.samples:
                f["local"]["machine_scaling"] = self.cores * floor / self.med("local.floor_concurrent", "seconds")
        if "rss" in self.parts:
            rss = {}
            for items in self.args.rss_items:
                rss["mb_%s" % short(items)] = self.samples["rss.%d" % items][0]["rss_mb"]
                rss["wall_s_%s" % short(items)] = self.samples["rss.%d" % items][0]["wall_s"]
            for lo, hi in zip(self.args.rss_items, self.args.rss_items[1:]):  # each size against the one before
                rss["ratio_%s_%s" % (short(hi), short(lo))] = rss["mb_%s" % short(hi)] / rss["mb_%s" % short(lo)]
            f["rss"] = rss
        if "engine" in self.parts:
            f["engine"] = dict(self.samples["engine"][0])
            f["engine_1_thread"] = dict(self.samples["engine_1_thread"][0])
        return f


def pixflow_http2_default(cli: str, work: Path) -> bool:
    """download.http2 as the CLI's --dump-config shows it (the https condition's control is the other one)."""
    out = work / "out" / "dump-config"
    r = run([cli, "thumbs", str(work), "--out", out, "--dump-config"])
    return last_json(r.stdout, "pixflow --dump-config").get("nodes", {}).get("download", {}).get("http2", "auto") != "off"


def trace_tail(path: Path, cores: int) -> dict:
    """From a pixflow trace (Chrome JSON, a span per body and I/O operation, in microseconds): when the
    last download ended, when the last span ended, the time between ("the tail after the last byte"),
    and how many cores the compute spans kept busy in it on average."""
    events = json.loads(path.read_text())["traceEvents"]
    spans = [e for e in events if e.get("ph") == "X"]
    downloads = [e["ts"] + e["dur"] for e in spans if e.get("name") == "download"]
    if not spans or not downloads:
        return {}
    end = max(e["ts"] + e["dur"] for e in spans)
    last = max(downloads)
    busy = sum(max(0.0, min(end, e["ts"] + e["dur"]) - max(last, e["ts"])) for e in spans if e.get("cat") == "compute")
    tail = end - last
    return {"last_download_end_s": last / 1e6, "trace_end_s": end / 1e6, "tail_s": tail / 1e6,
            "tail_busy_cores": min(float(cores), busy / tail) if tail > 0 else 0.0}


class Redis:
    """A loopback redis-server for the worker runs: tests/fixtures/redis/start.sh and stop.sh."""

    def __init__(self, state: Path):
        self.state, self.url = state, None

    def start(self) -> None:
        subprocess.run(["bash", str(ROOT / "tests/fixtures/redis/start.sh"), str(self.state)], check=True,
                       stdout=subprocess.DEVNULL)
        self.url = (self.state / "url").read_text().strip()

    def stop(self) -> None:
        subprocess.run(["bash", str(ROOT / "tests/fixtures/redis/stop.sh"), str(self.state)], check=False,
                       stdout=subprocess.DEVNULL)


def worker_table(w: dict, v: dict, n: int) -> str:
    mark = mark_of(v)
    rows = ["| figure (wan8 gallery, %d photos, 128x128) | value | target |" % n, "|---|---|---|",
            "| local `pixflow gallery --pages 0`, every core | %.2f s (CPU %.1f s) | |" % (w["local_s"], w["local_cpu_s"]),
            "| one `pixflow worker --exit-when-empty`, every core, draining the enqueued gallery | %.2f s (CPU %.1f s) | |" % (
                w["one_s"], w["one_cpu_s"]),
            "| `pixflow enqueue` of the gallery (before the worker; not in the line above) | %.2f s | |" % w["enqueue_s"],
            "| **one worker vs local** (throughput: local wall / worker wall) | **%.2fx** | %s |" % (
                w["vs_local"], mark("workers.vs_local")),
            "| the same, counting the enqueue in the worker's time | %.2fx | |" % w["vs_local_with_enqueue"]]
    if "scale_2_vs_1" in w:
        rows += ["| one worker pinned to core 0 (`taskset -c 0`, `--threads 1`) | %.2f s (CPU %.1f s; nginx + proxy %.1f s) | |" % (
                     w["pinned_1_s"], w["pinned_1_cpu_s"], w["pinned_1_server_cpu_s"]),
                 "| two workers pinned to cores 0 and 1 (`--threads 1` each), at once | %.2f s (items %s; CPU %.1f s; nginx + proxy %.1f s) | |" % (
                     w["pinned_2_s"], " + ".join(str(x) for x in w["pinned_2_items_each"]), w["pinned_2_cpu_s"],
                     w["pinned_2_server_cpu_s"]),
                 "| limit of the two: their CPU and the servers' spread over both cores, (%.1f + %.1f) s / 2 | %.2f s (the run: %.2fx the limit) | |" % (
                     w["pinned_2_cpu_s"], w["pinned_2_server_cpu_s"], w["pinned_2_limit_s"], w["pinned_2_vs_limit"]),
                 "| the most two cores give here: one worker's CPU over that limit, %.1f s / %.2f s | %.2fx | |" % (
                     w["pinned_1_cpu_s"], w["pinned_2_limit_s"], w["scale_2_vs_1_limit"]),
                 "| **two pinned workers vs one** | **%.2fx** | %s |" % (w["scale_2_vs_1"], mark("workers.scale_2_vs_1"))]
    return "\n".join(rows)


def short(items: int) -> str:
    return "%dk" % (items // 1000) if items % 1000 == 0 else str(items)


def verdict(figures: dict) -> dict:
    out = {}
    for key, (op, bound) in TARGETS.items():
        section, name = key.split(".")
        value = figures.get(section, {}).get(name)
        if value is None:
            continue
        ok = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        out[key] = {"value": value, "target": "%s %g" % (op, bound), "met": ok}
    return out


# --- reporting -----------------------------------------------------------------------------------------

def mark_of(v: dict):
    def mark(key):
        if key not in v:
            return ""
        return "%s (target %s)" % ("met" if v[key]["met"] else "MISSED", v[key]["target"])
    return mark


def lan_wan_table(f: dict, v: dict) -> list:
    """The first comparison (lan and wan at 3 MB/s: the seeds, curl + vipsthumbnail), as since issue 5."""
    mark = mark_of(v)
    rows = []
    lan, wan = f["lan"], f["wan"]
    rows.append("| figure | lan (unthrottled) | wan (%s) | target |" % wan["description"].split(": ", 1)[-1])
    rows.append("|---|---|---|---|")
    rows.append("| pixflow gallery, %d photos | %.2f s | %.2f s | |" % (lan["photos"], lan["pixflow_s"], wan["pixflow_s"]))
    rows.append("| seeds' pipeline (threads, then processes) | %.2f s | %.2f s | |" % (lan["seed_s"], wan["seed_s"]))
    rows.append("| curl --parallel, then vipsthumbnail | %.2f s | %.2f s | |" % (lan["curl_vips_s"], wan["curl_vips_s"]))
    rows.append("| pixflow download-only | %.2f s | %.2f s | |" % (lan["download_only_s"], wan["download_only_s"]))
    rows.append("| pixflow thumbs-only (local folder) | %.2f s | %.2f s | |" % (lan["thumbs_only_s"], wan["thumbs_only_s"]))
    rows.append("| **pixflow vs seeds** | **%.2fx** | **%.2fx** | lan %s; wan %s |" % (
        lan["vs_seed"], wan["vs_seed"], mark("lan.vs_seed"), mark("wan.vs_seed")))
    rows.append("| **pixflow vs curl+vipsthumbnail** | **%.2fx** | **%.2fx** | wan %s |" % (
        lan["vs_curl_vips"], wan["vs_curl_vips"], mark("wan.vs_curl_vips")))
    rows.append("| **overlap** = pixflow / max(download-only, thumbs-only) | **%.2f** | **%.2f** | %s |" % (
        lan["overlap"], wan["overlap"], mark("lan.overlap")))
    rows.append("| CPU time: pixflow / seeds / curl+vips | %.1f / %.1f / %.1f s | %.1f / %.1f / %.1f s | |" % (
        lan["pixflow_cpu_s"], lan["seed_cpu_s"], lan["curl_vips_cpu_s"],
        wan["pixflow_cpu_s"], wan["seed_cpu_s"], wan["curl_vips_cpu_s"]))
    rows.append("| CPU time of nginx + proxy during the pixflow run (same 2 cores) | %.1f s | %.1f s | |" % (
        lan["server_cpu_s_during_pixflow"], wan["server_cpu_s_during_pixflow"]))
    if "pixflow_per_host_16_s" in wan:
        rows.append("| pixflow with `per_host: 16` (the default before 32): time, vs seeds, vs curl+vips | | %.2f s, %.2fx, %.2fx | |" % (
            wan["pixflow_per_host_16_s"], wan["vs_seed_per_host_16"], wan["vs_curl_vips_per_host_16"]))
    return rows


def conditions_table(f: dict, v: dict, cores: int) -> list:
    """Every condition with its physical limit: max(curl's download, (floor + curl's CPU + the servers'
    CPU) / cores), pixflow's ratio to it beside its ratio to the seeds, and the tail after the last byte."""
    mark = mark_of(v)
    rows = ["| condition | pixflow | seeds | **pixflow vs seeds** | limit = max(download, CPU / %d) | **pixflow / limit** | "
            "tail after the last byte (cores busy in it) | overlap | CPU: pixflow / seeds / servers during pixflow |" % cores,
            "|---|---|---|---|---|---|---|---|---|"]
    for name in f["conditions"]:
        c = f[name]
        limit = "%.2f s = max(%.2f, (%.2f + %.2f + %.2f) / %d), by %s" % (
            c["limit_s"], c["curl_download_s"], c["floor_s"], c["curl_cpu_s"], c["server_cpu_s_during_curl"], cores,
            c["limit_by"])
        targets = "; ".join(t for t in (mark(name + ".vs_seed"), mark(name + ".vs_limit")) if t)
        tail = "%.2f s (%.1f)" % (c["tail_s"], c["tail_busy_cores"]) if "tail_s" in c else ""
        rows.append("| %s: %s, %d photos (%s) | %.2f s | %.2f s | **%.2fx** | %s | **%.2fx** | %s | %.2f | %.1f / %.1f / %.1f s |%s" % (
            name, c["description"], c["photos"], c["data"], c["pixflow_s"], c["seed_s"], c["vs_seed"], limit,
            c["vs_limit"], tail, c["overlap"], c["pixflow_cpu_s"], c["seed_cpu_s"], c["server_cpu_s_during_pixflow"],
            " " + targets if targets else ""))
    rows.append("")
    rows.append("Limit: `curl --parallel --parallel-max 32` of every URL known up front (listing pages too), and "
                "the floor's CPU (decode + thumbnail + encode, one thread, in memory) plus curl's own CPU and the CPU "
                "nginx and the latency proxy took meanwhile, spread over %d cores. Overlap = pixflow / max(download-only, "
                "thumbs-only of the same photos)." % cores)
    controls = [(name, key) for name in f["conditions"] for key in
                sorted(k[len("label_"):] for k in f[name] if k.startswith("label_"))]
    extra = [name for name in f["conditions"] if "curl_download_http1_s" in f[name]]
    if controls or extra:
        rows.append("")
        rows.append("| control (one run each) | condition | pixflow | vs seeds | pixflow / limit |")
        rows.append("|---|---|---|---|---|")
        for name, key in controls:
            c = f[name]
            rows.append("| pixflow with %s | %s | %.2f s (defaults: %.2f s) | %.2fx | %.2fx |" % (
                c["label_" + key], name, c["pixflow_%s_s" % key], c["pixflow_s"], c["vs_seed_" + key], c["vs_limit_" + key]))
        for name in extra:
            c = f[name]
            rows.append("| curl download-only, HTTP/1.1 (32 connections) / HTTP/2 (multiplexed; the slower: one run) | %s | %.2f s / %.2f s | | |" % (
                name, c["curl_download_http1_s"], c["curl_download_http2_s"]))
    return rows


def table(f: dict, v: dict, cores: int) -> str:
    mark = mark_of(v)
    rows = []
    if "lan" in f and "wan" in f:
        rows += lan_wan_table(f, v) + [""]
    if f["conditions"]:
        rows += conditions_table(f, v, cores) + [""]
    if "local" in f:
        loc = f["local"]
        rows.append("| figure | value | target |")
        rows.append("|---|---|---|")
        rows.append("| floor: decode+thumbnail+encode, 1 thread, in memory | %.2f s (%.1f ms/photo; JPEG %.1f, PNG %.1f) | |" % (
            loc["floor_s"], loc["floor_ms_per_item"], loc["floor_jpeg_ms"], loc["floor_png_ms"]))
        rows.append("| pixflow thumbs, 1 thread / %d threads | %.2f s / %.2f s | |" % (
            loc["threads_all"], loc["thumbs_1_s"], loc["thumbs_all_s"]))
        rows.append("| **local thumbs per core vs the floor** (%d threads x wall / floor) | **%.2fx** (1 thread: %.2fx) | %s |" % (
            loc["threads_all"], loc["per_core_vs_floor"], loc["one_thread_vs_floor"], mark("local.per_core_vs_floor")))
        rows.append("| per core vs the floor, counting only the graph's run (the report's wall_s: no process start/exit) | %.2fx (1 thread: %.2fx) | |" % (
            loc["per_core_vs_floor_in_graph"], loc["one_thread_vs_floor_in_graph"]))
        rows.append("| **%d threads vs 1 thread** | **%.2fx** | %s |" % (
            loc["threads_all"], loc["scaling_2_vs_1"], mark("local.scaling_2_vs_1")))
        rows.append("| %d threads vs 1 thread, counting only the graph's run | %.2fx | |" % (
            loc["threads_all"], loc["scaling_2_vs_1_in_graph"]))
        rows.append("| pixflow process start + exit alone (`pixflow --version`) | %.2f s | |" % loc["startup_s"])
        if "machine_scaling" in loc:
            rows.append("| this machine: %d floor programs at once vs one alone (the ceiling for the line above) | %.2fx | |" % (
                loc["threads_all"], loc["machine_scaling"]))
    if "rss" in f:
        if "local" not in f:
            rows += ["| figure | value | target |", "|---|---|---|"]
        rss = f["rss"]
        keys = sorted((k for k in rss if k.startswith("mb_")), key=lambda k: int(k[3:-1]) if k.endswith("k") else int(k[3:]))
        rows.append("| peak RSS, pixflow gallery | %s | |" % ", ".join(
            "%.0f MB at %s items (%.0f s)" % (rss[k], k[3:], rss["wall_s_" + k[3:]]) for k in keys))
        for ratio_key in sorted((k for k in rss if k.startswith("ratio_")), key=len):
            hi, lo = ratio_key[len("ratio_"):].split("_")
            rows.append("| **peak RSS %s / %s items** | **%.2fx** (%.0f MB at %s) | %s %s |" % (
                hi, lo, rss[ratio_key], rss["mb_" + hi], hi, mark("rss." + ratio_key), mark("rss.mb_" + hi)))
    if "engine" in f:
        if "local" not in f and "rss" not in f:
            rows += ["| figure | value | target |", "|---|---|---|"]
        e = f["engine"]
        rows.append("| engine: 4 trivial stages, items/s (graph / hand-wired tbb::flow / parallel_pipeline) | %.0f / %.0f / %.0f | |" % (
            e["graph_items_per_s"], e["flow_items_per_s"], e["pipeline_items_per_s"]))
        rows.append("| **engine chain vs the same nodes wired by hand in tbb::flow** | **%.3fx** | %s |" % (
            e["ratio_flow"], mark("engine.ratio_flow")))
        rows.append("| engine chain vs tbb::parallel_pipeline | %.3fx | |" % e["ratio"])
        rows.append("| **engine diamond (broadcast → 2 computes → merge) vs hand-wired tbb::flow** | **%.3fx** | %s |" % (
            e["diamond_ratio_flow"], mark("engine.diamond_ratio_flow")))
        rows.append("| trace per item, off / on (trivial bodies) | %.0f ns / %.0f ns | |" % (
            e["trace_off_ns_per_item"], e["trace_on_ns_per_item"]))
        e1 = f["engine_1_thread"]
        rows.append("| the same on 1 thread: chain vs tbb::flow, vs parallel_pipeline; diamond vs tbb::flow | %.3fx, %.3fx; %.3fx | |" % (
            e1["ratio_flow"], e1["ratio"], e1["diamond_ratio_flow"]))
    return "\n".join(rows).strip()


def machine() -> dict:
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    mem_kb = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))
    return {"nproc": int(sh("nproc") or 0), "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"),
            "ram_gb": round(mem_kb / 1024 / 1024, 1), "kernel": platform.release(),
            "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
            "pixflow_commit": sh("git -C %s rev-parse --short HEAD" % shlex.quote(str(ROOT))),
            "tools": {"curl": sh("curl --version | head -1 | cut -d' ' -f1-2"),
                      "vips": sh("vipsthumbnail --vips-version"), "python": platform.python_version(),
                      "pillow": sh("%s -c 'import PIL; print(PIL.__version__)'" % sys.executable),
                      "nginx": sh("/usr/sbin/nginx -v 2>&1")}}


def idle_fraction(interval: float = 1.0) -> float:
    """The share of CPU time spent idle by the whole machine over `interval` seconds (/proc/stat)."""
    def sample():
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return fields[3] + fields[4], sum(fields[:8])  # idle + iowait, total (without guest)
    idle0, total0 = sample()
    time.sleep(interval)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_until_idle(want: float = 0.9, max_wait_s: float = 60.0):
    """Waits until the machine is `want` idle over one second (at most max_wait_s); returns that share
    (None without waiting when max_wait_s is 0)."""
    if max_wait_s <= 0:
        return None
    started = time.monotonic()
    while True:
        idle = idle_fraction()
        if idle >= want or time.monotonic() - started > max_wait_s:
            return idle


def load1() -> float:
    return float(open("/proc/loadavg").read().split()[0])


def wait_for_quiet(spec: str) -> dict:
    limit, _, minutes = spec.partition(":")
    limit, minutes = float(limit), float(minutes or 20)
    started = time.monotonic()
    while load1() >= limit and time.monotonic() - started < minutes * 60:
        log("waiting for a quiet machine: load %.2f >= %.2f (%.0f s so far)" % (load1(), limit, time.monotonic() - started))
        time.sleep(30)
    return {"wanted_below": limit, "waited_s": round(time.monotonic() - started), "load1_at_start": load1()}


def write_markdown(path: Path, text: str, begin: str = BEGIN, end: str = END) -> None:
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1]
        path.write_text(head + begin + "\n" + text + "\n" + end + tail)
    else:
        path.write_text(old + ("\n" if old else "") + begin + "\n" + text + "\n" + end + "\n")


def set_summaries(data: Path) -> dict:
    """The summaries bench/prepare_data.py wrote for the extra photo sets (manifest.json), by set."""
    try:
        manifest = json.loads((data / "manifest.json").read_text())
        return {k: v["summary"] for k, v in manifest.get("sets", {}).items()}
    except (OSError, ValueError, KeyError):
        return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", required=True)
    parser.add_argument("--bench", required=True)
    parser.add_argument("--photos", required=True, help="the main photo set")
    parser.add_argument("--data", default="", help="where the other sets are (large/, baseline/); default: beside --photos")
    parser.add_argument("--work", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", default="", help="conditions and parts to run, e.g. wan8,https,local (default: all)")
    parser.add_argument("--rtt-ms", type=float, default=80.0)
    parser.add_argument("--rate-mb", type=float, default=3.0, help="MB/s per connection in the wan condition")
    parser.add_argument("--rate8-mb", type=float, default=8.0, help="MB/s per connection in wan8, https, large, baseline")
    parser.add_argument("--rss-items", default="1000,10000,100000")
    parser.add_argument("--engine-items", type=int, default=2000000)
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    parser.add_argument("--data-summary", default="")
    parser.add_argument("--command", default="scripts/bench")
    parser.add_argument("--wait-load", default="", help="LOAD[:MINUTES]: first wait until the 1-min load is below")
    parser.add_argument("--idle-wait-s", type=float, default=60.0,
                        help="before each run, wait up to this long for the cores to be 90%% idle (0: never wait)")
    args = parser.parse_args()
    args.rss_items = [int(x) for x in args.rss_items.split(",") if x]
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]

    quiet = wait_for_quiet(args.wait_load) if args.wait_load else {"load1_at_start": load1()}
    bench = Bench(args)
    started = time.time()
    bench.server.start()
    try:
        for name, c in bench.conditions.items():
            log("%s: %s at %s" % (name, c.describe(), bench.server.base[c.network.name]))
        if "worker" in bench.parts:
            bench.server.condition_listing(bench.worker_condition)
        bench.measure()
    finally:
        bench.server.stop()
    quiet["load1_at_end"] = load1()
    figures = bench.figures()
    if "workers.one" in bench.samples:
        figures["workers"] = bench.worker_figures()
    verdicts = verdict(figures)
    text = table(figures, verdicts, bench.cores)
    workers_text = worker_table(figures["workers"], verdicts, bench.n) if "workers" in figures else ""
    when = datetime.datetime.now().astimezone()
    info = machine()
    summaries = dict(set_summaries(bench.photos.parent if not args.data else Path(args.data)),
                     mix=args.data_summary or "%d photos" % bench.n)
    result = {
        "date": when.isoformat(timespec="seconds"), "duration_s": round(time.time() - started),
        "command": args.command, "machine": info, "load": quiet,
        "conditions": {name: c.describe() for name, c in bench.conditions.items()},
        "data": {"photos": bench.n, "summary": args.data_summary, "sets": summaries, "per_page": PER_PAGE},
        "reps": args.reps, "only": args.only, "figures": figures, "targets": verdicts,
        "medians": {k: statistics.median(x.get("wall_s", x.get("seconds", 0.0)) for x in v)
                    for k, v in bench.samples.items()},
        "samples": bench.samples,
    }
    print(text + ("\n\n" + workers_text if workers_text else ""))
    missed = [k for k, v in verdicts.items() if not v["met"]]
    print("\ntargets missed: %s" % (", ".join(missed) if missed else "none"))
    if args.markdown and workers_text:
        write_markdown(Path(args.markdown), "\n".join([
            "Measured %s on %s (%d cores), pixflow %s; best of %d repetitions; 1-minute load average %.2f at the "
            "start, %.2f at the end. Command: `%s`." % (
                when.strftime("%Y-%m-%d %H:%M %Z"), info["cpu"] or "unknown CPU", info["nproc"], info["pixflow_commit"],
                args.reps, quiet["load1_at_start"], quiet["load1_at_end"], args.command), "", workers_text]),
            WORKERS_BEGIN, WORKERS_END)
    if args.only:
        # A part of the benchmark: its figures are not the results of record.
        path = bench.work / "results-only.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        log("--only %s: wrote %s%s" % (",".join(args.only), path, "".join(
            "; %s left alone" % x for x in (args.json, args.markdown) if x)))
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        used = sorted({c.data for c in bench.conditions.values()}, key=lambda d: d != "mix")
        block = "\n".join([
            "Measured %s on %s (%d cores, %s GB RAM, %s), pixflow %s; best of %d repetitions." % (
                when.strftime("%Y-%m-%d %H:%M %Z"), info["cpu"] or "unknown CPU", info["nproc"], info["ram_gb"],
                info["os"], info["pixflow_commit"], args.reps),
            "1-minute load average: %.2f at the start, %.2f at the end%s." % (
                quiet["load1_at_start"], quiet["load1_at_end"],
                " (waited %d s for it to drop below %g)" % (quiet["waited_s"], quiet["wanted_below"])
                if "waited_s" in quiet else ""),
            "Data: %s." % "; ".join("%s: %s" % (d if d != "mix" else "the photos", summaries.get(d, "?")) for d in used),
            "Conditions: %s." % "; ".join("%s = %s" % (name, c.describe()) for name, c in bench.conditions.items()),
            "Command: `%s` (took %d s for the measurements)." % (args.command, result["duration_s"]),
            "", text, "", "Targets missed: %s." % (", ".join(missed) if missed else "none")])
        write_markdown(Path(args.markdown), block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
