#!/usr/bin/env python3
"""Checks `primes --limits ...` against a straightforward reference (Python's big integers, a plain sieve).

usage: primes_reference.py PRIMES LIMIT... -- runs PRIMES with the limits, on 1 thread and on every
thread, and compares each printed count, sum and product (mod 1000000007) with the reference.
"""
import re
import subprocess
import sys

MODULUS = 1_000_000_007


def reference(limit):
    """The primes p < limit: (count, sum, product mod MODULUS), by the sieve of Eratosthenes."""
    if limit < 3:
        return 0, 0, 1
    composite = bytearray(limit)
    for p in range(2, int(limit ** 0.5) + 1):
        if not composite[p]:
            composite[p * p::p] = b"\1" * len(range(p * p, limit, p))
    primes = [n for n in range(2, limit) if not composite[n]]
    product = 1
    for p in primes:
        product = product * p % MODULUS
    return len(primes), sum(primes), product


def main():
    primes, limits = sys.argv[1], [int(a) for a in sys.argv[2:]]
    expected = {limit: reference(limit) for limit in limits}
    line = re.compile(r"^primes below (\d+): count (\d+), sum (\d+), product mod 1000000007 (\d+)$")
    failures = 0
    for threads in ("1", "0"):
        cmd = [primes, "--threads", threads, "--limits", ",".join(map(str, limits))]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            sys.exit(f"{' '.join(cmd)}: exit {run.returncode}\n{run.stdout}{run.stderr}")
        got = {}
        order = []
        for text in run.stdout.splitlines():
            if m := line.match(text):
                got[int(m[1])] = tuple(int(g) for g in m.groups()[1:])
                order.append(int(m[1]))
        if order != limits:
            print(f"--threads {threads}: printed in the order {order}, given {limits}")
            failures += 1
        for limit in limits:
            if got.get(limit) != expected[limit]:
                print(f"--threads {threads}: below {limit}: got {got.get(limit)}, expected {expected[limit]}")
                failures += 1
        if set(got) != set(limits):
            print(f"--threads {threads}: printed limits {sorted(got)}, asked {sorted(set(limits))}")
            failures += 1
        if not re.search(r"^time: [0-9.]+ s on \d+ threads?", run.stdout, re.M):
            print(f"--threads {threads}: no time printed")
            failures += 1
    print(f"{len(limits)} limits checked on 1 thread and on every thread: {failures} mismatches")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
