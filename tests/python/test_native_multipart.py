

def test_client_gone_mid_upload_leaves_no_spool_file():
    """A client that disconnects inside a file part past the spool size: the
    spool file (on disk by then) is closed, the server keeps serving."""
    proc = ServerProcess("upload_app:app").wait_started()
    try:
        with Conn(proc.addr) as c:
            pid = c.request("GET", "/pid").json()["pid"]
        upload(proc.addr, 3 * MiB, bytes(MiB))                 # warm-up
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        pre = (b'--' + B.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n')
        head = (f"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={B}\r\n"
                f"Content-Length: {len(pre) + 10 * MiB}\r\n\r\n").encode()
        with Conn(proc.addr) as c:
            c.send(head + pre + bytes(4 * MiB))
            time.sleep(0.3)          # let the server spool what it got (no timing asserted)
        deadline = time.monotonic() + 10
        while len(os.listdir(f"/proc/{pid}/fd")) != fds and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(os.listdir(f"/proc/{pid}/fd")) == fds
        assert upload(proc.addr, 10, b"0123456789")["size"] == 10
    finally:
        proc.stop()
