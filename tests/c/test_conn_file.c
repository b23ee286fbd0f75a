/* File response bodies: framing (cel_conn_response_file), the sendfile state
 * machine over a socketpair whose small buffers force partial sends, the
 * pread path of in-memory connections and its use as the sendfile fallback,
 * errors (file truncated, peer gone), and the server driving it all over
 * loopback TCP: pipelined requests after a file, a client that leaves
 * mid-file, no descriptor leaks. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "errors.h"
#include "server.h"
#include "test.h"

static cel_conn_config cfg;

/* A temporary file of n pattern bytes (byte i is (i * 7 + i / 251) & 255),
 * opened read-only; the name is unlinked at once. */
static unsigned char pattern(size_t i) { return (unsigned char)((i * 7 + i / 251) & 255); }

static int temp_file(size_t n)
{
    char name[] = "/tmp/celeris-file-XXXXXX";
    int w = mkstemp(name);
    CHECK(w >= 0);
    unsigned char buf[4096];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof buf ? n - done : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = pattern(done + i);
        CHECK_EQ_INT((int)write(w, buf, k), (int)k);
        done += k;
    }
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    unlink(name);
    close(w);
    return fd;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A connection with a parsed request head; `req` is e.g. "GET / HTTP/1.1\r\n\r\n". */
static void conn_with_request(cel_conn *c, const char *req)
{
    cel_conn_config_default(&cfg);
    cfg.date_header = 0;
    cfg.server_header = 0;
    cel_conn_init(c, -1, &cfg);
    cel_buf_append(&c->in, req, strlen(req));
    cel_http_request r;
    cel_header h[16];
    CHECK_EQ_INT(cel_conn_parse_head(c, &r, h, 16), 1);
}

static void start(cel_conn *c, int status, const char *cl)
{
    cel_header h[1] = { { { "content-length", 14 }, { cl, cl ? strlen(cl) : 0 } } };
    CHECK_EQ_INT(cel_conn_response_start(c, status, h, cl ? 1 : 0, NULL), 0);
    cel_buf_consume(&c->out, c->out.len);   /* the head is not under test here */
}

/* Read every queued byte through cel_conn_file_read in `chunk` steps. */
static size_t drain_read(cel_conn *c, size_t chunk, char *dst, size_t cap)
{
    size_t got = 0;
    for (int guard = 0; guard < 100000; guard++) {
        int rc = cel_conn_file_read(c, chunk);
        CHECK(rc >= 0);
        CHECK(c->out.len <= chunk + 8);
        CHECK(got + c->out.len <= cap);
        memcpy(dst + got, cel_buf_head(&c->out), c->out.len);
        got += c->out.len;
        cel_buf_consume(&c->out, c->out.len);
        if (rc == 1)
            break;
    }
    return got;
}

TEST(content_length_body_is_read_in_chunks)
{
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, "100000");
    int fds = count_fds();
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(100000), 0, 100000), 0);
    CHECK(c.resp_done);
    CHECK(cel_conn_file_pending(&c));
    static char got[100000];
    CHECK_EQ_INT((int)drain_read(&c, 4096, got, sizeof got), 100000);
    for (size_t i = 0; i < 100000; i++)
        if ((unsigned char)got[i] != pattern(i)) {
            CHECK(0);
            break;
        }
    CHECK(!cel_conn_file_pending(&c));
    CHECK_EQ_INT(count_fds(), fds);         /* closed when done */
    CHECK(c.keep_alive);
    cel_conn_release(&c);
}

TEST(chunked_body_is_one_chunk_and_the_terminator)
{
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, NULL);
    CHECK(c.resp_chunked);
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(300), 0, 300), 0);
    CHECK(c.out.len == 5 && memcmp(cel_buf_head(&c.out), "12c\r\n", 5) == 0);
    cel_buf_consume(&c.out, 5);
    char got[400];
    size_t n = drain_read(&c, 1000, got, sizeof got);
    CHECK_EQ_INT((int)n, 307);
    CHECK(memcmp(got + 300, "\r\n0\r\n\r\n", 7) == 0);
    CHECK((unsigned char)got[299] == pattern(299));
    cel_conn_release(&c);
}

TEST(empty_file_chunked_is_just_the_terminator)
{
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, NULL);
    int fds = count_fds();
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(0), 0, 0), 0);
    CHECK(!cel_conn_file_pending(&c));
    CHECK_EQ_INT(count_fds(), fds);
    CHECK(c.out.len == 5 && memcmp(cel_buf_head(&c.out), "0\r\n\r\n", 5) == 0);
    cel_conn_release(&c);
}

TEST(head_and_304_send_no_body_and_close_the_file)
{
    cel_conn c;
    conn_with_request(&c, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, "10");
    int fds = count_fds();
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(10), 0, 10), 0);
    CHECK(c.resp_done && !cel_conn_file_pending(&c) && c.out.len == 0);
    CHECK_EQ_INT(count_fds(), fds);
    cel_conn_release(&c);

    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 304, NULL);
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(10), 0, 10), 0);
    CHECK(c.resp_done && !cel_conn_file_pending(&c) && c.out.len == 0);
    CHECK_EQ_INT(count_fds(), fds);
    cel_conn_release(&c);
}

TEST(file_longer_than_content_length_is_cut_there)
{
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, "10");
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(50), 0, 50), 0);
    char got[64];
    CHECK_EQ_INT((int)drain_read(&c, 64, got, sizeof got), 10);
    CHECK(c.keep_alive);
    cel_conn_release(&c);
}

TEST(file_shorter_than_content_length_is_sent_then_the_connection_closes)
{
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, "100");
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(40), 0, 40), CEL_ERESPSHORT);
    CHECK(!c.keep_alive);
    char got[64];
    CHECK_EQ_INT((int)drain_read(&c, 64, got, sizeof got), 40);
    CHECK_EQ_INT(cel_conn_finish(&c), CEL_CONN_CLOSING);
    cel_conn_release(&c);
}

TEST(offset_starts_the_body_there)
{
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, "5");
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(50), 20, 5), 0);
    char got[8];
    CHECK_EQ_INT((int)drain_read(&c, 64, got, sizeof got), 5);
    CHECK((unsigned char)got[0] == pattern(20) && (unsigned char)got[4] == pattern(24));
    cel_conn_release(&c);
}

TEST(misuse_closes_the_descriptor)
{
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    int fds = count_fds();
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(5), 0, 5), CEL_ESTATE);   /* not started */
    start(&c, 200, "5");
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(5), 0, 5), 0);
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(5), 0, 5), CEL_ESTATE);   /* done */
    CHECK_EQ_INT(count_fds(), fds + 1);
    cel_conn_release(&c);                   /* closes the queued one */
    CHECK_EQ_INT(count_fds(), fds);
}

TEST(truncated_file_is_an_error)
{
    char name[] = "/tmp/celeris-trunc-XXXXXX";
    int w = mkstemp(name);
    char junk[1000] = { 0 };
    CHECK_EQ_INT((int)write(w, junk, sizeof junk), 1000);
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    unlink(name);
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, "1000");
    CHECK_EQ_INT(cel_conn_response_file(&c, fd, 0, 1000), 0);
    CHECK_EQ_INT(ftruncate(w, 100), 0);
    CHECK_EQ_INT(cel_conn_file_read(&c, 4096), CEL_ERESPSHORT);
    cel_conn_release(&c);

    /* the same through sendfile */
    int sp[2];
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    char name2[] = "/tmp/celeris-trunc-XXXXXX";
    int w2 = mkstemp(name2);
    CHECK_EQ_INT((int)write(w2, junk, sizeof junk), 1000);
    fd = open(name2, O_RDONLY | O_CLOEXEC);
    unlink(name2);
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, "1000");
    CHECK_EQ_INT(cel_conn_response_file(&c, fd, 0, 1000), 0);
    CHECK_EQ_INT(ftruncate(w2, 100), 0);
    CHECK_EQ_INT(cel_conn_file_send(&c, sp[0], 4096), CEL_ERESPSHORT);
    cel_conn_release(&c);
    close(w);
    close(w2);
    close(sp[0]);
    close(sp[1]);
}

/* A socketpair with small buffers: the sender's end is non-blocking. */
static void small_pair(int sp[2])
{
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    int small = 4096;
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK);
    fcntl(sp[1], F_SETFL, fcntl(sp[1], F_GETFL) | O_NONBLOCK);
}

/* Drive cel_conn_file_send (writing `out` between calls, as the server's
 * flush does) while reading the other end; returns the bytes received and
 * counts the calls that would block. */
static size_t pump_socket(cel_conn *c, int sp[2], char *dst, size_t cap, int *blocked, int *last_rc)
{
    size_t got = 0;
    *blocked = 0;
    for (int guard = 0; guard < 1000000; guard++) {
        while (c->out.len) {
            ssize_t n = write(sp[0], cel_buf_head(&c->out), c->out.len);
            if (n <= 0)
                break;
            cel_buf_consume(&c->out, (size_t)n);
        }
        int rc = 1;
        if (c->out.len == 0 && cel_conn_file_pending(c)) {
            rc = cel_conn_file_send(c, sp[0], 8192);
            *last_rc = rc;
            if (rc < 0)
                return got;
            if (rc == 0)
                (*blocked)++;
        }
        ssize_t r = got < cap ? read(sp[1], dst + got, cap - got) : 0;
        if (r > 0)
            got += (size_t)r;
        if (!cel_conn_file_pending(c) && c->out.len == 0) {
            while (got < cap && (r = read(sp[1], dst + got, cap - got)) > 0)
                got += (size_t)r;
            return got;
        }
    }
    return got;
}

TEST(sendfile_partial_sends_continue_until_done)
{
    enum { N = 1 << 20 };
    int sp[2];
    small_pair(sp);
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, NULL);                   /* chunked: the tail must follow the file */
    cel_buf_append(&c.out, "HEAD-BYTES", 10);   /* queued output goes first */
    int fds = count_fds();
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(N), 0, N), 0);
    static char got[N + 64];
    int blocked, last = 99;
    size_t n = pump_socket(&c, sp, got, sizeof got, &blocked, &last);
    CHECK(blocked > 0);                     /* the small buffer forced partial sends */
    CHECK_EQ_INT(last, 1);
    CHECK_EQ_INT((int)n, 10 + 8 + N + 7);
    CHECK(memcmp(got, "HEAD-BYTES100000\r\n", 18) == 0);
    int ok = 1;
    for (size_t i = 0; i < N && ok; i++)
        ok = (unsigned char)got[18 + i] == pattern(i);
    CHECK(ok);
    CHECK(memcmp(got + 18 + N, "\r\n0\r\n\r\n", 7) == 0);
    CHECK_EQ_INT(count_fds(), fds);
    cel_conn_release(&c);
    close(sp[0]);
    close(sp[1]);
}

TEST(sendfile_fallback_copies_through_out)
{
    enum { N = 200000 };
    int sp[2];
    small_pair(sp);
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, "200000");
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(N), 0, N), 0);
    c.file.no_sendfile = 1;                 /* as after sendfile's EINVAL */
    static char got[N];
    int blocked, last = 99;
    CHECK_EQ_INT((int)pump_socket(&c, sp, got, sizeof got, &blocked, &last), N);
    CHECK((unsigned char)got[N - 1] == pattern(N - 1));
    cel_conn_release(&c);
    close(sp[0]);
    close(sp[1]);
}

TEST(sendfile_to_a_closed_peer_is_an_io_error)
{
    int sp[2];
    small_pair(sp);
    close(sp[1]);
    cel_conn c;
    conn_with_request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    start(&c, 200, "100000");
    CHECK_EQ_INT(cel_conn_response_file(&c, temp_file(100000), 0, 100000), 0);
    CHECK_EQ_INT(cel_conn_file_send(&c, sp[0], 8192), CEL_EIO);
    CHECK(errno == EPIPE || errno == ECONNRESET);
    cel_conn_release(&c);
    close(sp[0]);
}

/* ---- through the server, over loopback TCP ---- */

typedef struct {
    cel_server *srv;
    int requests;
    size_t size;
} fctx;

static int on_file_request(void *ud, cel_conn *c, const cel_http_request *req)
{
    fctx *x = ud;
    x->requests++;
    int small = req->path.len == 6 && memcmp(req->path.p, "/small", 6) == 0;
    char cl[24];
    int k = snprintf(cl, sizeof cl, "%zu", small ? (size_t)1 : x->size);
    cel_header h[1] = { { { "content-length", 14 }, { cl, (size_t)k } } };
    cel_conn_response_start(c, 200, h, 1, cel_server_date());
    if (small)
        cel_conn_response_body(c, "x", 1, 0);
    else
        cel_conn_response_file(c, temp_file(x->size), 0, x->size);
    cel_server_response_done(x->srv, c);
    return 0;
}

static cel_server *file_server(fctx *x, int *port)
{
    cel_server_config scfg;
    cel_server_config_default(&scfg);
    cel_server_callbacks cb = { .ud = x, .on_request = on_file_request };
    x->srv = cel_server_new(&scfg, &cb);
    CHECK(x->srv != NULL);
    CHECK_EQ_INT(cel_server_listen_tcp(x->srv, "127.0.0.1", 0), 0);
    *port = cel_server_bound_port(x->srv);
    return x->srv;
}

static int tcp_client(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Length of the server's head for a response with this content-length. */
static size_t head_len(size_t cl)
{
    char h[160];
    return (size_t)snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\ndate: %29s\r\nserver: celeris\r\n"
                            "content-length: %zu\r\n\r\n", "", cl);
}

/* Poll the server and read from fd until `want` bytes arrived or EOF. */
static size_t serve_and_read(cel_server *s, int fd, char *buf, size_t want)
{
    size_t got = 0;
    for (int i = 0; i < 200000 && got < want; i++) {
        cel_server_poll(s);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 1) == 1) {
            ssize_t n = read(fd, buf + got, want - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    return got;
}

TEST(server_sends_files_in_pipeline_order)
{
    enum { N = 3 << 20 };
    fctx x = { .size = N };
    int port;
    int fds = count_fds();
    cel_server *s = file_server(&x, &port);
    int fd = tcp_client(port, 8192);
    const char *reqs = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ_INT((int)write(fd, reqs, strlen(reqs)), (int)strlen(reqs));
    static char buf[2 * (N + 200)];
    /* each response: head + N bytes; find the heads and check the bodies */
    size_t got = serve_and_read(s, fd, buf, 2 * (head_len(N) + N));
    CHECK_EQ_INT((int)got, (int)(2 * (head_len(N) + N)));
    char *h1 = buf;
    char *b1 = strstr(h1, "\r\n\r\n") + 4;
    CHECK(strncmp(h1, "HTTP/1.1 200 OK\r\n", 17) == 0);
    char *h2 = b1 + N;
    CHECK((size_t)(h2 - buf) < got && strncmp(h2, "HTTP/1.1 200 OK\r\n", 17) == 0);
    char *b2 = strstr(h2, "\r\n\r\n") + 4;
    CHECK_EQ_INT((int)(got - (size_t)(b2 - buf)), N);
    int ok = 1;
    for (size_t i = 0; i < N && ok; i++)
        ok = (unsigned char)b1[i] == pattern(i) && (unsigned char)b2[i] == pattern(i);
    CHECK(ok);
    CHECK_EQ_INT(x.requests, 2);
    close(fd);
    for (int i = 0; i < 50 && cel_server_num_connections(s); i++)
        cel_server_poll(s), usleep(1000);
    CHECK_EQ_INT((int)cel_server_num_connections(s), 0);
    cel_server_free(s);
    CHECK_EQ_INT(count_fds(), fds);
}

TEST(server_client_gone_mid_file_frees_the_connection_and_file)
{
    enum { N = 8 << 20 };
    fctx x = { .size = N };
    int port;
    cel_server *s = file_server(&x, &port);
    int fds_before = count_fds();
    int fd = tcp_client(port, 4096);
    const char *req = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ_INT((int)write(fd, req, strlen(req)), (int)strlen(req));
    static char buf[65536];
    CHECK(serve_and_read(s, fd, buf, sizeof buf) == sizeof buf);   /* mid-file */
    CHECK_EQ_INT((int)cel_server_num_connections(s), 1);
    struct linger lg = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);     /* RST: gone at once */
    close(fd);
    for (int i = 0; i < 2000 && cel_server_num_connections(s); i++) {
        cel_server_poll(s);
        usleep(500);
    }
    CHECK_EQ_INT((int)cel_server_num_connections(s), 0);
    CHECK_EQ_INT(count_fds(), fds_before);    /* socket and file both closed */
    /* and the server goes on serving */
    x.size = 1000;
    fd = tcp_client(port, 0);
    CHECK_EQ_INT((int)write(fd, req, strlen(req)), (int)strlen(req));
    size_t got = serve_and_read(s, fd, buf, head_len(1000) + 1000);
    CHECK_EQ_INT((int)got, (int)(head_len(1000) + 1000));
    CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    close(fd);
    cel_server_free(s);
}

TEST(server_memory_conn_reads_the_file_as_output_is_taken)
{
    enum { N = 1 << 20 };
    fctx x = { .size = N };
    cel_server_config scfg;
    cel_server_config_default(&scfg);
    cel_server_callbacks cb = { .ud = &x, .on_request = on_file_request };
    x.srv = cel_server_new(&scfg, &cb);
    cel_conn *c = cel_server_memory_conn(x.srv, NULL, 0);
    const char *reqs = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n";
    x.size = N;
    CHECK_EQ_INT(cel_server_feed(x.srv, c, reqs, strlen(reqs), 0), 0);
    CHECK(c->out.len <= scfg.write_high_water + 4096);    /* bounded, not the whole file */
    static char buf[N + 1000];
    size_t got = 0;
    for (int i = 0; i < 10000; i++) {
        size_t n = cel_server_take_output(x.srv, c, buf + got, sizeof buf - got);
        got += n;
        cel_server_run_pending(x.srv);
        if (!n && !c->out.len)
            break;
    }
    char *b = strstr(buf, "\r\n\r\n") + 4;
    int ok = 1;
    for (size_t i = 0; i < N && ok; i++)
        ok = (unsigned char)b[i] == pattern(i);
    CHECK(ok);
    CHECK_EQ_INT(x.requests, 2);       /* the pipelined request ran after the file */
    CHECK(strncmp(b + N, "HTTP/1.1 200 OK\r\n", 17) == 0);
    cel_server_close(x.srv, c);
    cel_server_free(x.srv);
}

__attribute__((constructor)) static void ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}
