#!/usr/bin/env python3
"""Run every pixflow benchmark in one invocation and report ratios measured in the same run.

Called by scripts/bench (which builds Release, installs the tools and prepares the photos); see
bench/RESULTS.md for what is measured and the latest figures. Usage:

  run.py --cli PIXFLOW --bench PIXFLOW_BENCH --photos DIR --work DIR [--reps 3] [--rtt-ms 80]
         [--rate-mb 3] [--rss-items 1000,10000] [--json FILE] [--markdown FILE] [--wait-load L[:MIN]]
         [--only worker]

Serves DIR with nginx on loopback (bench/nginx.conf.in) behind Imgur-shaped listings, in two
conditions: "lan" (nginx directly) and "wan" (through bench/latency_proxy.py: a round trip per
request and a bandwidth cap per connection). Then, interleaving the repetitions (the best of them is
reported, the median is in the JSON too; each run first waits, up to a minute, until the machine's
cores are 90 % idle, since other work on a shared machine only ever adds time):
  - end to end, per condition: pixflow gallery | bench/baselines/seed_pipeline.py |
    bench/baselines/curl_vips.sh | pixflow-bench download (download-only); in "wan" also pixflow with
    32 connections per host (its default is 16)
  - local folder: pixflow thumbs (thumbs-only; 1 thread and every core) | pixflow-bench floor, alone
    and two at once (what this machine's cores give a perfectly parallel program)
  - peak RSS of pixflow gallery on listings of 1,000 and 10,000 distinct URLs (lan)
  - pixflow-bench engine (pixflow::Graph vs the same nodes wired by hand in tbb::flow and vs
    tbb::parallel_pipeline, trivial bodies; a diamond; the trace's cost)
  - Redis workers (--only worker runs just these), on the wan gallery, with a loopback redis-server
    (tests/fixtures/redis): one `pixflow worker --exit-when-empty` draining the enqueued gallery vs a
    local `pixflow gallery` on the same cores; one worker pinned to core 0 (--threads 1) vs two pinned
    to cores 0 and 1
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

# Targets from issue 5: (figure key, comparison, bound).
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
    "engine.ratio_flow": (">=", 0.9),
    "engine.diamond_ratio_flow": (">=", 0.9),
    # issue 13: one streaming worker vs a local run; two pinned workers vs one
    "workers.vs_local": (">=", 0.95),
    "workers.scale_2_vs_1": (">=", 1.8),
}


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
        return json.loads(self.stdout.strip().splitlines()[-1])


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


# --- the server --------------------------------------------------------------------------------------

class Server:
    """nginx (both conditions, one instance) and the latency proxy in front of the throttled port."""

    def __init__(self, state: Path, photos: Path, rtt_ms: float, rate_mb: float):
        self.state, self.photos = fresh(state), photos
        self.rtt_ms, self.rate_mb = rtt_ms, rate_mb
        self.names = sorted(p.name for p in photos.iterdir() if p.suffix.lower() in IMAGE_TYPES)
        self.proxy = None

    def start(self) -> None:
        lan = free_port()
        self.proxy = subprocess.Popen(
            [sys.executable, str(HERE / "latency_proxy.py"), "--upstream", "127.0.0.1:%d" % lan,
             "--rtt-ms", str(self.rtt_ms), "--rate-mb", str(self.rate_mb)], stdout=subprocess.PIPE, text=True)
        line = self.proxy.stdout.readline().split()
        if len(line) != 2 or line[0] != "ready":
            raise SystemExit("bench: the latency proxy did not start")
        proxy = int(line[1])
        self.base = {"lan": "http://127.0.0.1:%d" % lan, "wan": "http://127.0.0.1:%d" % proxy}
        for sub in ("tmp", "www/3"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        self.write_listings()
        conf = (HERE / "nginx.conf.in").read_text()
        user = "user root;" if os.geteuid() == 0 else "# workers run as the invoking user"
        for key, value in {"@STATE@": self.state, "@PHOTOS@": self.photos, "@PORT@": lan,
                           "@USER_LINE@": user}.items():
            conf = conf.replace(key, str(value))
        (self.state / "nginx.conf").write_text(conf)
        subprocess.run(["/usr/sbin/nginx", "-p", str(self.state), "-c", str(self.state / "nginx.conf"),
                        "-e", str(self.state / "error.log")], check=True)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", lan), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("bench: nginx does not answer")

    def cpu_s(self) -> float:
        """CPU seconds used so far by the serving side: the latency proxy and nginx's worker."""
        pids = [self.proxy.pid]
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

    def item(self, name: str, link: str, index: int) -> dict:
        return {"id": "b%07d" % index, "title": name, "type": IMAGE_TYPES[Path(name).suffix.lower()],
                "animated": False, "is_album": False, "in_gallery": True, "link": link,
                "size": (self.photos / name).stat().st_size}

    def write_listing(self, section: str, links: list) -> None:
        folder = self.state / "www/3/gallery" / section / "viral"
        folder.mkdir(parents=True, exist_ok=True)
        for page in range(0, (len(links) + PER_PAGE - 1) // PER_PAGE):
            chunk = links[page * PER_PAGE:(page + 1) * PER_PAGE]
            data = [self.item(name, link, page * PER_PAGE + i) for i, (name, link) in enumerate(chunk)]
            (folder / ("%d.json" % page)).write_text(json.dumps({"data": data, "success": True, "status": 200}))

    def write_listings(self) -> None:
        (self.state / "www/3/empty.json").write_text('{"data": [], "success": true, "status": 200}')
        for condition, base in self.base.items():
            self.write_listing(condition, [(n, "%s/photos/%s" % (base, n)) for n in self.names])

    def repeated_listing(self, items: int) -> str:
        """A listing of `items` distinct URLs over the same files (/r/<k>/<name>), on the lan port."""
        section = "n%d" % items
        links = [(self.names[i % len(self.names)], "%s/r/%d/%s" % (self.base["lan"], i // len(self.names),
                                                                    self.names[i % len(self.names)]))
                 for i in range(items)]
        self.write_listing(section, links)
        return section

    def stop(self) -> None:
        pid_file = self.state / "nginx.pid"
        if pid_file.exists():
            subprocess.run(["/usr/sbin/nginx", "-p", str(self.state), "-c", str(self.state / "nginx.conf"),
                            "-e", str(self.state / "error.log"), "-s", "stop"], check=False)
        if self.proxy and self.proxy.poll() is None:
            self.proxy.terminate()
            try:
                self.proxy.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proxy.kill()


# --- the measurements -------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work).resolve()
        self.photos = Path(args.photos).resolve()
        self.cores = os.cpu_count() or 1
        self.server = Server(self.work / "server", self.photos, args.rtt_ms, args.rate_mb)
        self.n = len(self.server.names)
        self.samples = {}  # key -> list of dicts

    def add(self, key: str, measure, *args, **kwargs) -> None:
        """Runs measure(*args), adds what it returns to the samples of `key`, with the CPU time the
        serving side (nginx, proxy) spent meanwhile."""
        idle = wait_until_idle()
        before = self.server.cpu_s()
        sample = measure(*args, **kwargs)
        sample["server_cpu_s"] = self.server.cpu_s() - before
        sample["idle_before"] = round(idle, 3)
        self.samples.setdefault(key, []).append(sample)

    def out(self, name: str) -> Path:
        return fresh(self.work / "out" / name)

    def done_with(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def expect(self, what: str, got: int, want: int) -> None:
        if got != want:
            raise SystemExit("bench: %s made %d thumbnails, expected %d" % (what, got, want))

    # end to end
    def pixflow_gallery(self, condition: str, section: str = None, items: int = None, config: dict = None) -> dict:
        out = self.out("pixflow-" + condition)
        report = self.work / "out" / ("pixflow-%s.json" % condition)
        extra = []
        if config:
            path = self.work / "out" / "config.json"
            path.write_text(json.dumps(config))
            extra = ["--config", path]
        r = run([self.args.cli, "gallery", "--api", self.server.base["lan" if section else condition],
                 "--section", section or condition, "--client-id", "bench", "--pages", "0", "--out", out,
                 "--report", report, "--quiet"] + extra)
        rep = json.loads(report.read_text())
        want = items or self.n
        self.expect("pixflow gallery (%s)" % (section or condition), rep["summary"]["ok"], want)
        self.expect("pixflow gallery (%s)" % (section or condition), count_thumbnails(out), want)
        self.done_with(out)
        nodes = {k: {f: v.get(f) for f in ("busy_s", "items", "peak_active", "peak_queue")}
                 for k, v in rep["nodes"].items()}
        return {"wall_s": r.wall, "cpu_s": r.cpu, "rss_mb": r.maxrss_mb, "report_wall_s": rep["wall_s"],
                "peak_in_flight": rep.get("peak_in_flight"), "nodes": nodes}

    def seed(self, condition: str) -> dict:
        out = self.out("seed-" + condition)
        r = run([sys.executable, HERE / "baselines/seed_pipeline.py", "--api", self.server.base[condition],
                 "--section", condition, "--out", out])
        self.expect("seed_pipeline.py", count_thumbnails(out), self.n)
        self.done_with(out)
        return dict(r.json_out(), wall_s=r.wall, cpu_s=r.cpu)

    def curl_vips(self, condition: str) -> dict:
        out = self.out("curl-" + condition)
        r = run(["bash", HERE / "baselines/curl_vips.sh", self.server.base[condition], condition, out, self.cores])
        self.expect("curl + vipsthumbnail", count_thumbnails(out), self.n)
        self.done_with(out)
        return dict(r.json_out(), wall_s=r.wall, cpu_s=r.cpu)

    def download_only(self, condition: str) -> dict:
        out = self.out("download-" + condition)
        r = run([self.args.bench, "download", "--api", self.server.base[condition], "--section", condition,
                 "--out", out])
        got = r.json_out()
        self.expect("pixflow-bench download", got["items"], self.n)
        self.done_with(out)
        return dict(got, wall_s=r.wall, cpu_s=r.cpu)

    # local folder
    def thumbs(self, threads: int) -> dict:
        out = self.out("thumbs-%d" % threads)
        report = self.work / "out" / ("thumbs-%d.json" % threads)
        r = run([self.args.cli, "thumbs", self.photos, "--out", out, "--threads", threads, "--report", report,
                 "--quiet"])
        rep = json.loads(report.read_text())
        self.expect("pixflow thumbs", count_thumbnails(out), self.n)
        self.done_with(out)
        nodes = {k: {f: v.get(f) for f in ("busy_s", "items", "peak_active")} for k, v in rep["nodes"].items()}
        return {"wall_s": r.wall, "cpu_s": r.cpu, "report_wall_s": rep["wall_s"], "nodes": nodes}

    def floor(self) -> dict:
        r = run([self.args.bench, "floor", self.photos, "--repeat", "1"])
        got = r.json_out()
        if got["items"] != self.n or got["failed"]:
            raise SystemExit("bench: the floor program failed on some photos: %s" % got)
        return dict(got, wall_s=r.wall)

    def floor_concurrent(self) -> dict:
        """`cores` floor programs at once: each one's work time, to compare with one alone."""
        procs = [subprocess.Popen([str(self.args.bench), "floor", str(self.photos)], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True) for _ in range(self.cores)]
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        return {"seconds": max(o["seconds"] for o in outs), "each_s": [o["seconds"] for o in outs]}

    def startup(self) -> dict:
        """Start and exit of the CLI alone (`--version`): loading OpenCV's library tree is in every run."""
        return {"wall_s": statistics.median(run([self.args.cli, "--version"]).wall for _ in range(5))}

    def engine(self, threads: int = 0) -> dict:
        return run([self.args.bench, "engine", "--items", str(self.args.engine_items), "--repeat", "3",
                    "--threads", str(threads)]).json_out()

    def measure(self) -> None:
        reps = self.args.reps
        for rep in range(reps):
            for condition in ("lan", "wan"):
                log("end to end, %s, repetition %d/%d" % (condition, rep + 1, reps))
                self.add(condition + ".pixflow", self.pixflow_gallery, condition)
                self.add(condition + ".seed", self.seed, condition)
                self.add(condition + ".curl_vips", self.curl_vips, condition)
                self.add(condition + ".download_only", self.download_only, condition)
                if condition == "wan":
                    # The old default, as a control: per-connection round trips bound the WAN run.
                    self.add("wan.pixflow_per_host_16", self.pixflow_gallery, condition,
                             config={"nodes": {"download": {"per_host": 16}}})
        for rep in range(reps):
            log("local folder, repetition %d/%d" % (rep + 1, reps))
            self.add("local.floor", self.floor)
            self.add("local.thumbs_1", self.thumbs, 1)
            self.add("local.thumbs_all", self.thumbs, 0)
            if self.cores > 1:
                self.add("local.floor_concurrent", self.floor_concurrent)
        self.add("local.startup", self.startup)
        log("engine micro-benchmark")
        self.add("engine", self.engine)
        self.add("engine_1_thread", self.engine, 1)
        self.measure_workers()
        # Last: the longest part, and peak RSS hardly depends on what else runs on the machine.
        for items in self.args.rss_items:
            log("peak RSS, %d items" % items)
            section = self.server.repeated_listing(items)
            self.add("rss.%d" % items, self.pixflow_gallery, "rss", section=section, items=items)

    # the Redis workers (issue 13): the gallery enqueued, then drained by workers
    def measure_workers(self) -> None:
        """One streaming worker vs a local run (wan, every core); one worker pinned to one core vs two
        pinned to two (--threads 1 each). A loopback redis-server for the duration."""
        if " worker " not in run([self.args.cli, "--help"]).stdout:
            log("skipping the Redis workers: this pixflow was built without them (-DPIXFLOW_WITH_REDIS=OFF)")
            return
        redis = Redis(self.work / "redis")
        redis.start()
        try:
            for rep in range(self.args.reps):
                log("redis workers, repetition %d/%d" % (rep + 1, self.args.reps))
                self.add("workers.local", self.pixflow_gallery, "wan")
                self.add("workers.one", self.drain, redis, [None])
                if self.cores >= 2 and shutil.which("taskset"):
                    self.add("workers.pinned_1", self.drain, redis, [0])
                    self.add("workers.pinned_2", self.drain, redis, [0, 1])
        finally:
            redis.stop()

    def drain(self, redis: "Redis", pins: list) -> dict:
        """Enqueues the wan gallery on a fresh queue (not timed), then starts one worker per entry of
        `pins` at once (None: unpinned, every core; k: `taskset -c k`, --threads 1) and times them
        until the last one exits."""
        queue = "bench-%d-%d" % (os.getpid(), time.monotonic_ns())
        enq = run([self.args.cli, "enqueue", "--redis", redis.url, "--queue", queue, "gallery", "--api",
                   self.server.base["wan"], "--section", "wan", "--client-id", "bench", "--pages", "0"])
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
            f.update({"pinned_1_s": p1, "pinned_2_s": p2, "scale_2_vs_1": p1 / p2, "pinned_2_items_each": best2["items_each"],
                      "pinned_1_cpu_s": self.med("workers.pinned_1", "cpu_s"), "pinned_2_cpu_s": best2["cpu_s"],
                      "pinned_1_server_cpu_s": self.med("workers.pinned_1", "server_cpu_s"),
                      "pinned_2_server_cpu_s": best2["server_cpu_s"]})
        return f

    # figures: the best of the repetitions (interference only ever adds time)
    def med(self, key: str, field: str = "wall_s") -> float:
        return min(s[field] for s in self.samples[key])

    def figures(self) -> dict:
        f = {}
        thumbs_only = self.med("local.thumbs_all")
        for c in ("lan", "wan"):
            p = self.med(c + ".pixflow")
            f[c] = {"pixflow_s": p, "seed_s": self.med(c + ".seed"), "curl_vips_s": self.med(c + ".curl_vips"),
                    "download_only_s": self.med(c + ".download_only"), "thumbs_only_s": thumbs_only,
                    "vs_seed": self.med(c + ".seed") / p, "vs_curl_vips": self.med(c + ".curl_vips") / p,
                    "overlap": p / max(self.med(c + ".download_only"), thumbs_only),
                    "pixflow_cpu_s": self.med(c + ".pixflow", "cpu_s"), "seed_cpu_s": self.med(c + ".seed", "cpu_s"),
                    "curl_vips_cpu_s": self.med(c + ".curl_vips", "cpu_s"),
                    "server_cpu_s_during_pixflow": self.med(c + ".pixflow", "server_cpu_s")}
            if c + ".pixflow_per_host_16" in self.samples:
                p16 = self.med(c + ".pixflow_per_host_16")
                f[c].update({"pixflow_per_host_16_s": p16, "vs_seed_per_host_16": self.med(c + ".seed") / p16,
                             "vs_curl_vips_per_host_16": self.med(c + ".curl_vips") / p16})
        floor = self.med("local.floor", "seconds")
        t1, tall = self.med("local.thumbs_1"), thumbs_only
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
        rss = {}
        for items in self.args.rss_items:
            rss["mb_%s" % short(items)] = self.samples["rss.%d" % items][0]["rss_mb"]
            rss["wall_s_%s" % short(items)] = self.samples["rss.%d" % items][0]["wall_s"]
        if len(self.args.rss_items) >= 2:
            lo, hi = self.args.rss_items[0], self.args.rss_items[-1]
            rss["ratio_%s_%s" % (short(hi), short(lo))] = rss["mb_%s" % short(hi)] / rss["mb_%s" % short(lo)]
        f["rss"] = rss
        f["engine"] = dict(self.samples["engine"][0])
        f["engine_1_thread"] = dict(self.samples["engine_1_thread"][0])
        return f


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
    def mark(key):
        return "%s (target %s)" % ("met" if v[key]["met"] else "MISSED", v[key]["target"]) if key in v else ""
    rows = ["| figure (wan gallery, %d photos, 128x128) | value | target |" % n, "|---|---|---|",
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

def table(f: dict, v: dict, n: int, rtt_ms: float, rate_mb: float) -> str:
    def mark(key):
        if key not in v:
            return ""
        return "%s (target %s)" % ("met" if v[key]["met"] else "MISSED", v[key]["target"])

    rows = []
    rows.append("| figure | lan (unthrottled) | wan (%g ms RTT, %g MB/s per connection) | target |" % (rtt_ms, rate_mb))
    rows.append("|---|---|---|---|")
    lan, wan = f["lan"], f["wan"]
    rows.append("| pixflow gallery, %d photos | %.2f s | %.2f s | |" % (n, lan["pixflow_s"], wan["pixflow_s"]))
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
    loc = f["local"]
    rows.append("")
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
    rss = f["rss"]
    keys = sorted((k for k in rss if k.startswith("mb_")), key=lambda k: int(k[3:-1]) if k.endswith("k") else int(k[3:]))
    rows.append("| peak RSS, pixflow gallery | %s | |" % ", ".join(
        "%.0f MB at %s items (%.0f s)" % (rss[k], k[3:], rss["wall_s_" + k[3:]]) for k in keys))
    ratio_key = next((k for k in rss if k.startswith("ratio_")), None)
    if ratio_key:
        hi, lo = ratio_key[len("ratio_"):].split("_")
        rows.append("| **peak RSS %s / %s items** | **%.2fx** (%.0f MB at %s) | %s %s |" % (
            hi, lo, rss[ratio_key], rss["mb_" + hi], hi, mark("rss." + ratio_key), mark("rss.mb_" + hi)))
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
    return "\n".join(rows)


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


def wait_until_idle(want: float = 0.9, max_wait_s: float = 60.0) -> float:
    """Waits until the machine is `want` idle over one second (at most max_wait_s); returns that share."""
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", required=True)
    parser.add_argument("--bench", required=True)
    parser.add_argument("--photos", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=80.0)
    parser.add_argument("--rate-mb", type=float, default=3.0, help="MB/s per connection in the wan condition")
    parser.add_argument("--rss-items", default="1000,10000")
    parser.add_argument("--engine-items", type=int, default=2000000)
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    parser.add_argument("--data-summary", default="")
    parser.add_argument("--command", default="scripts/bench")
    parser.add_argument("--wait-load", default="", help="LOAD[:MINUTES]: first wait until the 1-min load is below")
    parser.add_argument("--only", choices=["worker"], help="run only this part (worker: the Redis workers); "
                        "writes its own block of --markdown, not --json")
    args = parser.parse_args()
    args.rss_items = [int(x) for x in args.rss_items.split(",") if x]

    quiet = wait_for_quiet(args.wait_load) if args.wait_load else {"load1_at_start": load1()}
    bench = Bench(args)
    started = time.time()
    bench.server.start()
    try:
        log("serving %d photos: lan %s, wan %s (rtt %g ms, %g MB/s per connection)" % (
            bench.n, bench.server.base["lan"], bench.server.base["wan"], args.rtt_ms, args.rate_mb))
        bench.measure_workers() if args.only == "worker" else bench.measure()
    finally:
        bench.server.stop()
    quiet["load1_at_end"] = load1()
    figures = bench.figures() if not args.only else {}
    if "workers.one" in bench.samples:
        figures["workers"] = bench.worker_figures()
    verdicts = verdict(figures)
    text = table(figures, verdicts, bench.n, args.rtt_ms, args.rate_mb) if not args.only else ""
    workers_text = worker_table(figures["workers"], verdicts, bench.n) if "workers" in figures else ""
    when = datetime.datetime.now().astimezone()
    info = machine()
    result = {
        "date": when.isoformat(timespec="seconds"), "duration_s": round(time.time() - started),
        "command": args.command, "machine": info, "load": quiet,
        "conditions": {"lan": "nginx on loopback, unthrottled",
                       "wan": "through bench/latency_proxy.py: %g ms round trip per request (one more for a new "
                              "connection), %g MB/s per connection" % (args.rtt_ms, args.rate_mb)},
        "data": {"photos": bench.n, "summary": args.data_summary, "per_page": PER_PAGE},
        "reps": args.reps, "figures": figures, "targets": verdicts,
        "medians": {k: statistics.median(x.get("wall_s", x.get("seconds", 0.0)) for x in v)
                    for k, v in bench.samples.items()},
        "samples": bench.samples,
    }
    print(text + ("\n\n" if text else "") + workers_text)
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
        log("--only %s: %s and the main results block left as they are" % (args.only, args.json or "the JSON"))
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        block = "\n".join([
            "Measured %s on %s (%d cores, %s GB RAM, %s), pixflow %s; best of %d repetitions." % (
                when.strftime("%Y-%m-%d %H:%M %Z"), info["cpu"] or "unknown CPU", info["nproc"], info["ram_gb"],
                info["os"], info["pixflow_commit"], args.reps),
            "1-minute load average: %.2f at the start, %.2f at the end%s." % (
                quiet["load1_at_start"], quiet["load1_at_end"],
                " (waited %d s for it to drop below %g)" % (quiet["waited_s"], quiet["wanted_below"])
                if "waited_s" in quiet else ""),
            "Data: %s." % (args.data_summary or "%d photos" % bench.n),
            "Conditions: lan = %s; wan = %s." % (result["conditions"]["lan"], result["conditions"]["wan"]),
            "Command: `%s` (took %d s for the measurements)." % (args.command, result["duration_s"]),
            "", text, "", "Targets missed: %s." % (", ".join(missed) if missed else "none")])
        write_markdown(Path(args.markdown), block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
