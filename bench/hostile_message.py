"""Memory of the gateway under one hostile message: a Fetch of one-character IDs, as large as asked.

Usage: python bench/hostile_message.py GATEWAY_BINARY SIZE_MB [SIZE_MB ...]
(the Python of scripts/test's .venv has grpcio). Starts `GATEWAY_BINARY serve --emulator` on free ports, sends each
message once, and prints the status it got, the process's peak resident memory (VmHWM, reset before each message)
and its resident memory after the answer (VmRSS).
"""
import subprocess
import sys
import time

import grpc


def kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise SystemExit(f"no {field}")


def reset_peak(pid):
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def hostile_fetch(size_mb):
    # Field 1 (ids), length 1, one character: three bytes an ID.
    n = size_mb * 1_000_000 // 3
    return b"\x0a\x01a" * n, n


def main():
    binary, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
    proc = subprocess.Popen(
        [binary, "serve", "--emulator", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = proc.stdout.readline()
        addr = first.split("listening on ")[1].split()[0]
        channel = grpc.insecure_channel(addr, options=[("grpc.max_send_message_length", -1),
                                                      ("grpc.max_receive_message_length", -1)])
        fetch = channel.unary_unary("/VectorService/Fetch")
        fetch(b"\x0a\x01a", timeout=10)  # warm: one real call
        time.sleep(0.5)
        print(f"idle: RSS {kib(proc.pid, 'VmRSS') / 1024:.1f} MB")
        print("| message | IDs | status | peak RSS | RSS after |")
        print("|---|---|---|---|---|")
        for size in sizes:
            reset_peak(proc.pid)
            body, n = hostile_fetch(size)
            started = time.monotonic()
            try:
                fetch(body, timeout=60)
                status = "OK"
            except grpc.RpcError as e:
                status = f"{e.code().name}: {e.details()[:70]}"
            took = time.monotonic() - started
            del body
            time.sleep(1.0)  # let the allocator hand memory back before reading RSS
            print(f"| {size} MB | {n:,} | {status} ({took:.2f} s) | {kib(proc.pid, 'VmHWM') / 1024:.1f} MB "
                  f"| {kib(proc.pid, 'VmRSS') / 1024:.1f} MB |")
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
