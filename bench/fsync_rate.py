"""Reference: the disk's rate of 200-byte appends each followed by fdatasync,
in DIR (the bench's data dir, so the same filesystem as the services).
    /usr/bin/python3 bench/fsync_rate.py DIR SECONDS [grow|prealloc] [LINES_PER_SYNC]
grow (the default) appends to a file that grows with each write; prealloc
writes into a file first extended with fallocate (as the log's open
segment is, LOG_FILE_PREALLOCATE_BYTES ahead), so fdatasync has no size
to write."""
import os
import sys
import time

RECORD = b"x" * 199 + b"\n"
PREALLOCATE_BYTES = 16 * 1024 * 1024  # log_file.c's step


def main():
    directory, seconds = sys.argv[1], float(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "grow"
    lines = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    path = os.path.join(directory, "fsync-rate.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    allocated, offset = 0, 0
    chunk = RECORD * lines
    latencies = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        before = time.monotonic()
        if mode == "prealloc" and offset + len(chunk) > allocated:
            os.posix_fallocate(fd, allocated, PREALLOCATE_BYTES)
            allocated += PREALLOCATE_BYTES
        os.pwrite(fd, chunk, offset)
        offset += len(chunk)
        os.fdatasync(fd)
        latencies.append(time.monotonic() - before)
    elapsed = time.monotonic() - start
    os.close(fd)
    os.unlink(path)
    latencies.sort()
    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000
    print(f"BENCH mode={mode} lines_per_sync={lines} syncs={len(latencies)} "
          f"rate={len(latencies) / elapsed:.0f} lines_per_s={len(latencies) * lines / elapsed:.0f} "
          f"p50_ms={pct(0.5):.3f} p99_ms={pct(0.99):.3f} p999_ms={pct(0.999):.3f}")


if __name__ == "__main__":
    main()
