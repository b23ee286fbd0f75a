/* WebSocket echo load generator for bench/run.py, in C (bench/ws_load.py is the Python one).
 *
 * N connections to ws://HOST:PORT/PATH, each with exactly one message in flight: send a masked
 * text frame of --size bytes ("x" * size), wait for the echo, check it byte for byte, send the
 * next.  Messages whose echo arrives in the --duration seconds after --warmup seconds are
 * counted, and every one of them has its round-trip latency (send to complete echo,
 * CLOCK_MONOTONIC) recorded.  Same command line and the same one-line JSON object as ws_load.py:
 * {"msgs", "seconds", "msgs_per_s", "errors", "connections", "p50_ms", "p99_ms", "avg_ms"}.
 * "connections" counts the connections that got their 101; "errors" counts failed connects,
 * handshakes that did not answer 101, wrong echoes, server close frames and connections lost.
 *
 * Single-threaded, epoll, no library beyond libc.  Sec-WebSocket-Accept is not verified.
 * A tool, not a test.  Build: cc -O2 -std=c11 -o build/bench/ws_load bench/ws_load.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum state { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };

struct conn {
    int fd;
    enum state st;
    unsigned events;          /* currently registered epoll events */
    unsigned char *rbuf;      /* bytes read and not yet consumed */
    size_t rlen, rcap;
    unsigned char *wbuf;      /* bytes to write: wbuf[woff..wlen) */
    size_t woff, wlen, wcap;
    unsigned char *frame;     /* this connection's masked message frame */
    size_t frame_len;
    size_t got;               /* payload bytes of the current echo seen so far */
    int in_message;           /* a data frame without FIN was seen */
    uint64_t sent_at;         /* ns */
};

static struct {
    const char *host, *path;
    int port, connections;
    double duration, warmup;
    long size;
} opt = {"127.0.0.1", "/ws", 0, 16, 5.0, 1.0, 32};

static int epfd = -1;
static unsigned char *payload;       /* the expected echo: "x" * size */
static uint64_t t_count0, t_count1;  /* counting window, ns */
static long long msgs, errors;
static int upgraded;
static uint64_t *lat;                /* ns, one per counted message */
static size_t nlat, caplat;
static int err_reports;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "ws_load: out of memory\n");
        exit(1);
    }
    return q;
}

static void random_bytes(unsigned char *out, size_t n) {
    static uint64_t x;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(out + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got == n)
        return;
    if (!x)
        x = now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15u;
    for (; got < n; got++) { /* xorshift64: a mask need not be secret for a benchmark */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[got] = (unsigned char)x;
    }
}

static void base64(const unsigned char *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
        out[o++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
}

/* A masked client frame: FIN + opcode, payload of n bytes (XORed with a fresh key). */
static size_t make_frame(unsigned char *out, unsigned opcode, const unsigned char *p, size_t n) {
    size_t h = 0;
    out[h++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        out[h++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(n >> 8);
        out[h++] = (unsigned char)n;
    } else {
        out[h++] = 0x80 | 127;
        for (int s = 56; s >= 0; s -= 8)
            out[h++] = (unsigned char)((uint64_t)n >> s);
    }
    unsigned char key[4];
    random_bytes(key, 4);
    memcpy(out + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = p[i] ^ key[i & 3];
    return h + n;
}

static void set_events(struct conn *c, unsigned ev) {
    if (c->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->events = ev;
}

static void close_conn(struct conn *c) {
    if (c->st == ST_CLOSED)
        return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->st = ST_CLOSED;
}

__attribute__((format(printf, 2, 3)))
static void fail(struct conn *c, const char *fmt, ...) {
    errors++;
    if (err_reports++ < 10) { /* a few reasons on stderr; stdout stays one JSON line */
        va_list ap;
        va_start(ap, fmt);
        fputs("ws_load: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    if (c)
        close_conn(c);
}

/* Append to the output buffer and write as much as the socket takes; 0, or -1 when closed. */
static int queue(struct conn *c, const unsigned char *p, size_t n) {
    if (c->woff == c->wlen)
        c->woff = c->wlen = 0;
    if (c->wlen + n > c->wcap) {
        c->wcap = (c->wlen + n) * 2;
        c->wbuf = xrealloc(c->wbuf, c->wcap);
    }
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += n;
    while (c->woff < c->wlen) {
        ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (w > 0) {
            c->woff += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, EPOLLIN | EPOLLOUT);
            return 0;
        } else {
            fail(c, "send: %s", strerror(errno));
            return -1;
        }
    }
    set_events(c, EPOLLIN);
    return 0;
}

static int flush(struct conn *c) {
    return queue(c, NULL, 0);
}

static int send_message(struct conn *c) {
    c->got = 0;
    c->in_message = 0;
    c->sent_at = now_ns();
    return queue(c, c->frame, c->frame_len);
}

static void record(uint64_t t, uint64_t sent_at) {
    if (t < t_count0 || t >= t_count1)
        return;
    msgs++;
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 65536;
        lat = xrealloc(lat, caplat * sizeof *lat);
    }
    lat[nlat++] = t - sent_at;
}

/* Consume whole frames from rbuf; -1 when the connection was closed. */
static int handle_frames(struct conn *c) {
    size_t pos = 0;
    while (c->rlen - pos >= 2) {
        const unsigned char *f = c->rbuf + pos;
        size_t avail = c->rlen - pos, off = 2;
        uint64_t n = f[1] & 0x7F;
        int fin = f[0] & 0x80;
        unsigned op = f[0] & 0x0F;
        if (f[0] & 0x70) {
            fail(c, "frame with RSV bits set (0x%02x)", f[0]);
            return -1;
        }
        if (f[1] & 0x80) {
            fail(c, "masked frame from the server");
            return -1;
        }
        if (n == 126) {
            if (avail < 4)
                break;
            n = (uint64_t)f[2] << 8 | f[3];
            off = 4;
        } else if (n == 127) {
            if (avail < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | f[2 + i];
            off = 10;
        }
        if (n > (uint64_t)opt.size + (1u << 20)) {
            fail(c, "frame of %llu bytes, more than the %ld sent", (unsigned long long)n,
                 opt.size);
            return -1;
        }
        if (avail < off + n) {
            if (c->rcap < pos + off + n) { /* room for the whole frame */
                c->rcap = pos + off + n;
                c->rbuf = xrealloc(c->rbuf, c->rcap);
            }
            break;
        }
        const unsigned char *p = f + off;
        pos += off + (size_t)n;
        if (op == 0x1 || op == 0x2 || op == 0x0) {
            if ((op == 0x0) != (c->in_message != 0)) {
                fail(c, op ? "data frame in the middle of a fragmented message"
                           : "continuation frame with no message started");
                return -1;
            }
            if (op == 0x2 || (op == 0x0 && c->in_message == 2)) {
                fail(c, "binary echo of a text message");
                return -1;
            }
            if (c->got + n > (uint64_t)opt.size || memcmp(payload + c->got, p, (size_t)n)) {
                fail(c, "echo does not match the message sent");
                return -1;
            }
            c->got += (size_t)n;
            if (!fin) {
                c->in_message = 1;
                continue;
            }
            if (c->got != (size_t)opt.size) {
                fail(c, "echo of %zu bytes, %ld sent", c->got, opt.size);
                return -1;
            }
            record(now_ns(), c->sent_at);
            if (send_message(c) < 0)
                return -1;
        } else if (op == 0x9) { /* ping: pong with the same payload */
            unsigned char pong[14 + 125];
            if (n > 125) {
                fail(c, "ping of %llu bytes", (unsigned long long)n);
                return -1;
            }
            if (queue(c, pong, make_frame(pong, 0xA, p, (size_t)n)) < 0)
                return -1;
        } else if (op == 0xA) { /* unsolicited pong: ignored */
        } else if (op == 0x8) {
            unsigned code = n >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;
            fail(c, "server sent a close frame (code %u)", code);
            return -1;
        } else {
            fail(c, "frame with opcode 0x%x", op);
            return -1;
        }
    }
    if (pos) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
    return 0;
}

static int handle_handshake(struct conn *c) {
    unsigned char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!end) {
        if (c->rlen > 16384) {
            fail(c, "handshake response headers over 16 KiB");
            return -1;
        }
        return 0;
    }
    if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.1 101", 12) != 0) {
        size_t l = (size_t)(end - c->rbuf);
        unsigned char *eol = memchr(c->rbuf, '\r', l);
        fail(c, "handshake answered %.*s", (int)(eol ? eol - c->rbuf : (long)l), c->rbuf);
        return -1;
    }
    size_t hl = (size_t)(end - c->rbuf) + 4;
    memmove(c->rbuf, c->rbuf + hl, c->rlen - hl);
    c->rlen -= hl;
    c->st = ST_OPEN;
    upgraded++;
    if (send_message(c) < 0)
        return -1;
    return handle_frames(c);
}

static void on_readable(struct conn *c) {
    if (c->rcap - c->rlen < 4096) {
        c->rcap = c->rcap * 2 + 4096;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
    ssize_t r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fail(c, "recv: %s", strerror(errno));
        return;
    }
    if (r == 0) {
        fail(c, c->st == ST_OPEN ? "server closed the connection"
                                 : "server closed the connection during the handshake");
        return;
    }
    c->rlen += (size_t)r;
    if (c->st == ST_HANDSHAKE)
        handle_handshake(c);
    else
        handle_frames(c);
}

static void on_connected(struct conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        fail(c, "connect: %s", strerror(err));
        return;
    }
    unsigned char key[16];
    char key64[32], req[2048];
    random_bytes(key, sizeof key);
    base64(key, sizeof key, key64);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     opt.path, opt.host, opt.port, key64);
    if (n < 0 || (size_t)n >= sizeof req) {
        fail(c, "handshake request too long");
        return;
    }
    c->st = ST_HANDSHAKE;
    queue(c, (const unsigned char *)req, (size_t)n);
}

static void on_event(struct conn *c, unsigned ev) {
    if (c->st == ST_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(c);
        return;
    }
    if (ev & EPOLLIN)
        on_readable(c);
    else if (ev & (EPOLLERR | EPOLLHUP)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        fail(c, "connection error: %s", err ? strerror(err) : "hang-up");
        return;
    }
    if (c->st != ST_CLOSED && (ev & EPOLLOUT) && c->woff < c->wlen)
        flush(c);
}

static void open_conn(struct conn *c, const struct addrinfo *ai) {
    c->st = ST_CLOSED;
    c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   ai->ai_protocol);
    if (c->fd < 0) {
        fail(NULL, "socket: %s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->st = ST_CONNECTING;
    c->events = EPOLLOUT;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) < 0) {
        fail(NULL, "epoll_ctl: %s", strerror(errno));
        close(c->fd);
        c->st = ST_CLOSED;
        return;
    }
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
        fail(c, "connect: %s", strerror(errno));
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *f) {
    fprintf(f, "usage: ws_load --port PORT [--host HOST] [--path PATH] [--connections N]\n"
               "               [--duration SECONDS] [--warmup SECONDS] [--size BYTES]\n"
               "WebSocket echo load generator (C); prints one JSON object.\n");
}

static int parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char name[32];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (strncmp(a, "--", 2) != 0 || nl >= sizeof name) {
            fprintf(stderr, "ws_load: unexpected argument %s\n", a);
            return -1;
        }
        memcpy(name, a, nl);
        name[nl] = '\0';
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else {
            fprintf(stderr, "ws_load: %s needs a value\n", name);
            return -1;
        }
        char *endp;
        errno = 0;
        if (!strcmp(name, "--host"))
            opt.host = v;
        else if (!strcmp(name, "--path"))
            opt.path = v;
        else if (!strcmp(name, "--port"))
            opt.port = (int)strtol(v, &endp, 10);
        else if (!strcmp(name, "--connections"))
            opt.connections = (int)strtol(v, &endp, 10);
        else if (!strcmp(name, "--size"))
            opt.size = strtol(v, &endp, 10);
        else if (!strcmp(name, "--duration"))
            opt.duration = strtod(v, &endp);
        else if (!strcmp(name, "--warmup"))
            opt.warmup = strtod(v, &endp);
        else {
            fprintf(stderr, "ws_load: unknown option %s\n", name);
            return -1;
        }
        if (strcmp(name, "--host") && strcmp(name, "--path") && (errno || *endp || endp == v)) {
            fprintf(stderr, "ws_load: bad value for %s: %s\n", name, v);
            return -1;
        }
    }
    if (opt.port <= 0 || opt.port > 65535) {
        fprintf(stderr, "ws_load: --port is required (1-65535)\n");
        return -1;
    }
    if (opt.connections < 1 || opt.size < 0 || opt.size > (1L << 24) || opt.duration <= 0 ||
        opt.warmup < 0) {
        fprintf(stderr, "ws_load: need --connections >= 1, 0 <= --size <= 16 MiB, "
                        "--duration > 0, --warmup >= 0\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (parse_args(argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char port[16];
    snprintf(port, sizeof port, "%d", opt.port);
    int gai = getaddrinfo(opt.host, port, &hints, &ai);
    if (gai) {
        fprintf(stderr, "ws_load: %s: %s\n", opt.host, gai_strerror(gai));
        return 2;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("ws_load: epoll_create1");
        return 2;
    }
    payload = xrealloc(NULL, (size_t)opt.size);
    memset(payload, 'x', (size_t)opt.size);

    int nconn = opt.connections;
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    if (!conns) {
        fprintf(stderr, "ws_load: out of memory\n");
        return 1;
    }
    uint64_t t0 = now_ns();
    t_count0 = t0 + (uint64_t)(opt.warmup * 1e9);
    t_count1 = t_count0 + (uint64_t)(opt.duration * 1e9);
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        c->frame = xrealloc(NULL, (size_t)opt.size + 14);
        c->frame_len = make_frame(c->frame, 0x1, payload, (size_t)opt.size);
        open_conn(c, ai);
    }
    freeaddrinfo(ai);

    struct epoll_event evs[256];
    for (;;) {
        uint64_t t = now_ns();
        if (t >= t_count1)
            break;
        uint64_t next = t < t_count0 ? t_count0 : t_count1;
        int timeout = (int)((next - t + 999999) / 1000000);
        int n = epoll_wait(epfd, evs, 256, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("ws_load: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }

    /* a close frame (1000) where the socket takes it, then close */
    static const unsigned char bye[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8};
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        if (c->st == ST_OPEN && c->woff == c->wlen)
            (void)!send(c->fd, bye, sizeof bye, MSG_NOSIGNAL | MSG_DONTWAIT);
        close_conn(c);
        free(c->rbuf);
        free(c->wbuf);
        free(c->frame);
    }
    free(conns);
    close(epfd);

    double secs = (double)(t_count1 - t_count0) / 1e9;
    printf("{\"msgs\": %lld, \"seconds\": %.3f, \"msgs_per_s\": %.1f, \"errors\": %lld, "
           "\"connections\": %d",
           msgs, secs, (double)msgs / secs, errors, upgraded);
    if (nlat) {
        qsort(lat, nlat, sizeof *lat, cmp_u64);
        size_t i99 = (size_t)((double)nlat * 0.99);
        if (i99 > nlat - 1)
            i99 = nlat - 1;
        long double sum = 0;
        for (size_t i = 0; i < nlat; i++)
            sum += lat[i];
        printf(", \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"avg_ms\": %.4f", lat[nlat / 2] / 1e6,
               lat[i99] / 1e6, (double)(sum / nlat) / 1e6);
    }
    printf("}\n");
    free(lat);
    free(payload);
    return 0;
}
