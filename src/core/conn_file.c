/* Response bodies sent from a file: the framing decision (conn.h
 * cel_conn_response_file) and the two ways the bytes leave -- sendfile(2)
 * straight from the page cache to a socket, or pread(2) into the
 * connection's `out` buffer (in-memory connections, and files sendfile
 * refuses).  No socket bookkeeping here: server.c calls these from its flush
 * and decides what an error means for the connection (docs/files.md). */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "errors.h"

/* One sendfile(2) call moves at most this much: the kernel caps a call near
 * 2 GiB anyway, and a smaller bound keeps one connection from holding the
 * loop while a fast peer drains a huge file. */
#define SENDFILE_MAX (4u << 20)

/* The response may carry a body (RFC 9110 6.4.1): not for HEAD, 1xx, 204, 304. */
static int body_allowed(const cel_conn *c)
{
    int st = c->resp_status;
    return !c->is_head && st >= 200 && st != 204 && st != 304;
}

void cel_conn_file_close(cel_conn *c)
{
    if (c->file.fd >= 0) {
        close(c->file.fd);
        c->file.fd = -1;
    }
    c->file.left = 0;
    c->file.tail_len = 0;
}

int cel_conn_response_file(cel_conn *c, int fd, uint64_t offset, uint64_t size)
{
    if (!c->resp_started || c->resp_done || cel_conn_file_pending(c)) {
        close(fd);
        return CEL_ESTATE;
    }
    if (!body_allowed(c)) {
        close(fd);
        c->resp_done = 1;
        return 0;
    }
    int rc = 0;
    uint64_t n = size;
    char tail[8];
    size_t tail_len = 0;
    if (c->resp_chunked) {
        if (size) {
            char sz[24];
            int k = snprintf(sz, sizeof sz, "%llx\r\n", (unsigned long long)size);
            if (cel_buf_append(&c->out, sz, (size_t)k)) {
                close(fd);
                return CEL_ENOMEM;
            }
            memcpy(tail, "\r\n0\r\n\r\n", 7);
            tail_len = 7;
        } else {
            memcpy(tail, "0\r\n\r\n", 5);
            tail_len = 5;
        }
    } else if (c->resp_has_length) {
        if (n > c->resp_left)
            n = c->resp_left;
        c->resp_left -= n;
        if (c->resp_left) {
            /* the file is shorter than promised: send it, then close */
            c->keep_alive = 0;
            rc = CEL_ERESPSHORT;
        }
    }
    c->resp_done = 1;
    if (n == 0) {
        close(fd);
        if (tail_len && cel_buf_append(&c->out, tail, tail_len))
            return CEL_ENOMEM;
        return rc;
    }
    c->file.fd = fd;
    c->file.off = offset;
    c->file.left = n;
    memcpy(c->file.tail, tail, tail_len);
    c->file.tail_len = (unsigned char)tail_len;
    c->file.no_sendfile = 0;
    return rc;
}

/* All file bytes are out: queue the framing tail and close the file. */
static int file_done(cel_conn *c)
{
    int rc = 0;
    if (c->file.tail_len && cel_buf_append(&c->out, c->file.tail, c->file.tail_len))
        rc = CEL_ENOMEM;
    cel_conn_file_close(c);
    return rc;
}

int cel_conn_file_read(cel_conn *c, size_t chunk)
{
    if (!cel_conn_file_pending(c))
        return 1;
    size_t want = c->file.left < chunk ? (size_t)c->file.left : chunk;
    if (want && cel_buf_reserve(&c->out, want))
        return CEL_ENOMEM;
    while (want) {
        ssize_t r = pread(c->file.fd, cel_buf_tail(&c->out), want, (off_t)c->file.off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return CEL_EIO;
        if (r == 0)
            return CEL_ERESPSHORT;     /* truncated since it was opened */
        c->out.len += (size_t)r;
        c->file.off += (uint64_t)r;
        c->file.left -= (uint64_t)r;
        want -= (size_t)r;
    }
    if (c->file.left)
        return 0;
    int rc = file_done(c);
    return rc ? rc : 1;
}

int cel_conn_file_send(cel_conn *c, int sock, size_t chunk)
{
    if (!cel_conn_file_pending(c))
        return 1;
    if (c->file.no_sendfile) {
        int rc = cel_conn_file_read(c, chunk);
        return rc < 0 ? rc : 1;
    }
    while (c->file.left) {
        size_t want = c->file.left < SENDFILE_MAX ? (size_t)c->file.left : SENDFILE_MAX;
        off_t off = (off_t)c->file.off;
        ssize_t r = sendfile(sock, c->file.fd, &off, want);
        if (r > 0) {
            c->file.off += (uint64_t)r;
            c->file.left -= (uint64_t)r;
            continue;
        }
        if (r == 0)
            return CEL_ERESPSHORT;     /* the file ended before the promised bytes */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno == EINVAL || errno == ENOSYS) {
            /* a file system without sendfile support: copy through `out` */
            c->file.no_sendfile = 1;
            int rc = cel_conn_file_read(c, chunk);
            return rc < 0 ? rc : 1;
        }
        return CEL_EIO;
    }
    int rc = file_done(c);
    return rc ? rc : 1;
}
