"""Reference: the disk's rate of 200-byte appends each followed by fdatasync,
in DIR (the bench's data dir, so the same filesystem as the services).
    /usr/bin/python3 bench/fsync_rate.py DIR SECONDS"""
import os
import sys
import time

RECORD = b"x" * 199 + b"\n"


def main():
    directory, seconds = sys.argv[1], float(sys.argv[2])
    path = os.path.join(directory, "fsync-rate.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    latencies = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        before = time.monotonic()
        os.write(fd, RECORD)
        os.fdatasync(fd)
        latencies.append(time.monotonic() - before)
    elapsed = time.monotonic() - start
    os.close(fd)
    os.unlink(path)
    latencies.sort()
    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000
    print(f"BENCH syncs={len(latencies)} rate={len(latencies) / elapsed:.0f} "
          f"p50_ms={pct(0.5):.3f} p99_ms={pct(0.99):.3f} p999_ms={pct(0.999):.3f}")


if __name__ == "__main__":
    main()
